"""The same generation job from the CLI and from the app, side by side; writes bench/results/app_vs_cli.json.

One database is prepared (N synthetic Python functions and a selection of them) and copied twice, so
both runs plan the same items with the same prompts and neither is served from the other's cache.
Both talk to one fake OpenAI-compatible server (tests/support/openai_server.py, its own process)
that answers every call after a fixed latency L.

* CLI: `shoal generate --selection bench --mix default -l java -l go --json` in a subprocess.
* App: a real `streamlit run app.py` server (as tests/support/streamlit_server.py starts it), and
  headless Chromium (Playwright) that opens the Generate page, sets "At most" to N, clicks
  "Start job" and keeps watching the page (its job panel polls) until the job is done -- the way a
  person runs a job.

Throughput is measured the same way for both, from the database: LLM calls (and items) per second
over the job's active span, from the first request sent (llm_calls.created_at minus its latency) to
the last item stored (job_items.updated_at). Also reported: the HTTP latency of every call
(llm_calls.latency_ms), the concurrency the job asked for and what the endpoint's rate gate ended at,
and the time calls waited at the gate (endpoint_pacing). QUALITY.md: app ≥ 0.9 × CLI.

    python -m bench.bench_app_vs_cli [--items 80] [--latency 0.2] [--rounds 1]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from core.llm.concurrency import DEFAULT_CONCURRENCY  # noqa: E402
from core.store import open_store  # noqa: E402

SELECTION = "bench"
MODEL = "fake-model"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
APP_IDLE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.dataset.testScriptState === 'notRunning'
    && !document.querySelector('[data-testid="stElementContainer"][data-stale="true"]');
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


class Proc:
    """A subprocess stopped (terminate, then kill) on exit."""

    def __init__(self, args: list[str], env: dict | None = None, log: Path | None = None):
        self.log = open(log, "wb") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(args, cwd=str(ROOT), env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.log is not subprocess.DEVNULL:
            self.log.close()


# --------------------------------------------------------------------------- the database

def prepare_db(path: Path, n: int) -> None:
    """N small, distinct Python functions and a selection of all of them (as the Map page saves one)."""
    store = open_store(path)
    rows = []
    for i in range(n):
        code = (f"def transform_{i}(values, factor={i % 7 + 1}):\n"
                f"    \"\"\"Scale the positive values by factor and drop the rest (variant {i}).\"\"\"\n"
                f"    out = []\n    for v in values:\n        if v > {i % 5}:\n            out.append(v * factor)\n"
                f"    return out\n")
        rows.append((f"b{i:06d}", code))
    store.executemany("INSERT INTO snippets(id, kind, source, source_kind, language, code, n_chars) "
                      "VALUES (?, 'function', 'bench', 'stdlib', 'python', ?, 100)", rows)
    sel = store.scalar("INSERT INTO selections(name, method, n_items) VALUES (?, 'manual', ?) RETURNING id",
                       [SELECTION, n])
    store.executemany("INSERT INTO selection_items VALUES (?, ?, ?)", [(sel, r[0], k) for k, r in enumerate(rows)])
    store.checkpoint()
    store.close()


def measure(path: Path) -> dict:
    """The newest job's figures, read from its database after its process has stopped."""
    store = open_store(path)
    try:
        job = store.one("SELECT id, n_items, status, params FROM jobs ORDER BY id DESC LIMIT 1")
        if job is None:
            raise RuntimeError(f"no job in {path}")
        jid = int(job["id"])
        span = store.one(
            "SELECT epoch((SELECT max(updated_at) FROM job_items WHERE job_id = ?) - "
            "min(created_at - to_microseconds(CAST(latency_ms * 1000 AS BIGINT)))) AS s, count(*) AS calls, "
            "median(latency_ms) AS p50, quantile_cont(latency_ms, 0.9) AS p90, avg(latency_ms) AS mean "
            "FROM llm_calls", [jid])
        items = store.one("SELECT count(*) FILTER (WHERE status = 'succeeded') AS ok, "
                          "count(*) FILTER (WHERE status = 'failed') AS failed FROM job_items WHERE job_id = ?", [jid])
        pacing = store.rows("SELECT model, concurrency_limit, total_wait_s, requests_total FROM endpoint_pacing")
        params = json.loads(job["params"]) if isinstance(job["params"], str) else job["params"]
    finally:
        store.close()
    s = float(span["s"])
    return {"job": jid, "status": job["status"], "items": int(job["n_items"]), "succeeded": int(items["ok"]),
            "failed": int(items["failed"]), "calls": int(span["calls"]), "active_s": round(s, 3),
            "calls_per_s": round(span["calls"] / s, 3), "items_per_s": round(job["n_items"] / s, 3),
            "http_latency_ms": {"median": round(span["p50"], 1), "p90": round(span["p90"], 1),
                                "mean": round(span["mean"], 1)},
            "concurrency_asked": params.get("concurrency"),
            "gate": [{"concurrency_limit": p["concurrency_limit"], "total_wait_s": p["total_wait_s"],
                      "requests": p["requests_total"]} for p in pacing]}


# --------------------------------------------------------------------------- the two ways to run it

def llm_env(base_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SHOAL_GENERATOR_", "SHOAL_JUDGE_"))}
    env.update(SHOAL_GENERATOR_BASE_URL=base_url, SHOAL_GENERATOR_MODEL=MODEL, HF_HUB_OFFLINE="1",
               USER=env.get("USER") or "bench")
    return env


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a live process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants_cpu_s(root: int) -> float:
    """CPU seconds (user + system) of every live descendant process of `root` (the browser's)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, pp in parent.items() if pp in frontier and pid not in found}
        found |= frontier
    total = 0.0
    for pid in found:
        try:
            total += cpu_s(pid)
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_cli(db: Path, base_url: str, items: int) -> dict:
    t0 = time.perf_counter()
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, "-m", "core.cli.main", "--db", str(db), "generate", "--selection", SELECTION,
                          "--mix", "default", "-l", "java", "-l", "go", "--limit", str(items), "--json"],
                         cwd=str(ROOT), env=llm_env(base_url), capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"shoal generate failed: {out.stderr[-2000:]}")
    return {**measure(db), "wall_s_process": round(wall, 2),
            "cpu_s_process": round(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime, 2)}


def _wait_idle(page, timeout_ms: float = 60_000) -> None:
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    for _ in range(2):
        page.wait_for_function(APP_IDLE, timeout=timeout_ms)
        page.wait_for_timeout(300)


def _judge_on_embedded_model(page) -> None:
    """In the Models panel, put the judge on the embedded local model: what the panel's judge stayed on
    before it followed the generator (issue 20: a user who set only the generator got this)."""
    page.get_by_text("Models", exact=True).first.click()
    _wait_idle(page)
    page.locator("[data-testid='stSelectbox']").filter(has_text="judge endpoint").first.click()
    page.get_by_role("option").filter(has_text="Embedded local model").first.click()
    _wait_idle(page)


def _start_from_page(page, url: str, items: int, judge_local: bool = False) -> tuple[float, str]:
    """Open the Generate page, ask for N items and click Start; the time of the click and what the page
    said the job would use."""
    page.goto(url + "/Generate")
    _wait_idle(page)
    if judge_local:
        _judge_on_embedded_model(page)
    page.locator("[data-testid='stMetric']").filter(has_text="Items").wait_for()
    at_most = page.get_by_role("spinbutton", name="At most")
    at_most.fill(str(items))
    at_most.press("Tab")
    page.wait_for_function(
        "n => [...document.querySelectorAll('[data-testid=stMetric]')].some(e => e.innerText.includes('Items')"
        " && e.querySelector('[data-testid=stMetricValue]').innerText.trim() === String(n))", arg=items,
        timeout=60_000)
    _wait_idle(page)
    shown = page.get_by_text("The job will use", exact=False).first.inner_text()[:300]
    t_click = time.perf_counter()
    page.get_by_role("button", name="Start job").click()
    return t_click, shown


def run_app(db: Path, base_url: str, items: int, log: Path, watch: bool = True, judge_local: bool = False) -> dict:
    """`watch`: the browser stays on the Generate page while the job runs (as a person watches it);
    else it leaves for a blank page right after the click (nothing polls)."""
    from playwright.sync_api import sync_playwright
    port = free_port()
    env = {**llm_env(base_url), "SHOAL_DB": str(db)}
    args = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
            "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    url = f"http://127.0.0.1:{port}"
    with Proc(args, env=env, log=log) as app:
        wait_http(url + "/_stcore/health", 120, app.proc)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(60_000)
            c0, b0 = cpu_s(app.proc.pid), descendants_cpu_s(os.getpid()) - cpu_s(app.proc.pid)
            t_click, shown = _start_from_page(page, url, items, judge_local)
            if watch:
                page.get_by_text(f"done · {items}/{items} items").wait_for(timeout=900_000)
            else:
                page.get_by_text(re.compile(r"Job \d+ started")).first.wait_for(timeout=120_000)   # then away
                page.goto("about:blank")
                _wait_job_done(db, items, app)
            wall = time.perf_counter() - t_click
            cpu = cpu_s(app.proc.pid) - c0
            browser_cpu = descendants_cpu_s(os.getpid()) - cpu_s(app.proc.pid) - b0
            browser.close()
    return {**measure(db), "wall_s_click_to_done": round(wall, 2), "cpu_s_app_process": round(cpu, 2),
            "cpu_s_browser_and_server": round(browser_cpu, 2),
            "browser_watching": watch, "page_says": shown}


def _wait_job_done(db: Path, items: int, app: Proc, timeout: float = 900) -> None:
    """Without a browser to watch: wait until the app process has gone quiet (its job ended): its CPU use
    stops growing. (The database is the app's while it runs.)"""
    deadline = time.time() + timeout
    last, still = cpu_s(app.proc.pid), 0
    while time.time() < deadline:
        time.sleep(1.0)
        now = cpu_s(app.proc.pid)
        still = still + 1 if now - last < 0.05 else 0
        last = now
        if still >= 3:
            return
    raise RuntimeError("the app's job did not end")


# --------------------------------------------------------------------------- one run, side by side

def run(items: int, latency: float, rounds: int, diagnose: bool = False, judge_local_items: int = 0) -> dict:
    load_before = os.getloadavg()[0]
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    out: dict = {"items": items, "latency_s": latency, "concurrency": DEFAULT_CONCURRENCY, "rounds": []}
    with tempfile.TemporaryDirectory() as tmp, \
            Proc([sys.executable, "-m", "tests.support.openai_server", "--port", str(port), "--latency", str(latency),
                  "--responder", "shoal"]) as server:
        wait_http(base_url + "/models", 30, server.proc)
        seed = Path(tmp) / "seed.duckdb"
        prepare_db(seed, items)
        for r in range(rounds):
            dbs = {mode: Path(tmp) / f"{mode}-{r}.duckdb" for mode in ("cli", "app", "app_unwatched")}
            for db in dbs.values():
                shutil.copy(seed, db)
            cli = run_cli(dbs["cli"], base_url, items)
            app = run_app(dbs["app"], base_url, items, Path(tmp) / f"app-{r}.log")
            ratio = round(app["calls_per_s"] / cli["calls_per_s"], 3)
            one = {"cli": cli, "app": app, "ratio_app_to_cli": ratio}
            if diagnose:      # the same app job with nobody watching the page: what the page's polling costs
                one["app_unwatched"] = run_app(dbs["app_unwatched"], base_url, items, Path(tmp) / f"app-u{r}.log",
                                               watch=False)
                one["ratio_unwatched_to_cli"] = round(one["app_unwatched"]["calls_per_s"] / cli["calls_per_s"], 3)
            out["rounds"].append(one)
        if judge_local_items:   # the set-up: generator on the server, judge left on the embedded model
            db = Path(tmp) / "app-judge-local.duckdb"
            shutil.copy(seed, db)
            out["app_judge_on_embedded_model"] = run_app(db, base_url, judge_local_items, Path(tmp) / "app-jl.log",
                                                         judge_local=True)
            print(f"round {r + 1}: CLI {cli['calls_per_s']:.2f} calls/s, app {app['calls_per_s']:.2f} calls/s, "
                  f"ratio {ratio:.3f}", flush=True)
    ratios = [x["ratio_app_to_cli"] for x in out["rounds"]]
    out.update(ratio_app_to_cli=round(statistics.median(ratios), 3), target="app calls/s >= 0.9 x CLI calls/s",
               meets_target=statistics.median(ratios) >= 0.9,
               load_average_1m_before_after=[round(load_before, 2), round(os.getloadavg()[0], 2)])
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=80)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--rounds", type=int, default=1, help="CLI then app, this many times (median ratio).")
    ap.add_argument("--diagnose", action="store_true",
                    help="Also run the app's job with the browser gone after the click (no page polling).")
    ap.add_argument("--judge-local-items", type=int, default=0,
                    help="Also run this many items from the app with the judge on the embedded model (issue 20's "
                         "set-up before the judge followed the generator).")
    args = ap.parse_args(argv)
    result = run(args.items, args.latency, args.rounds, args.diagnose, args.judge_local_items)
    write_result("app_vs_cli", result)
    print(f"app / CLI throughput: {result['ratio_app_to_cli']:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
