"""Generation throughput against the loopback fake server; writes bench/results/generate.json.

A job of N items (generator call → pre-filter → judge call each, every result written to DuckDB)
runs against a fake OpenAI server that answers every call after a fixed latency L. With C items
in flight the best any client can do with `calls` requests, C at a time, is the wave bound
calls / (ceil(calls / C) · L); the absolute limit is C / L. Reported: calls per second over the whole
`run_job` call (job start-up, every DuckDB write and the final checkpoint included) and their
ratios to both (QUALITY.md target: ≥ 0.9 of the wave bound, ≈ 0.85 of C/L). A second run of the
same job is served entirely from the cache (zero requests) and reported as items per second.

    python -m bench.bench_generate [--items 400] [--latency 0.5] [--concurrency 32]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core.llm  # noqa: E402,F401  (imports openai now, so its import time is not measured as job time)
from core.config import Profile  # noqa: E402
from core.generate.items import PoolConfig  # noqa: E402
from core.generate.jobs import create_job, run_job  # noqa: E402
from core.store import open_store  # noqa: E402
from core.tasks import DEFAULT_MIX  # noqa: E402
from tests.support.openai_server import FakeOpenAIServer  # noqa: E402
from tests.support.shoal_responder import shoal_responder  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "generate.json"


def _snippets(store, n: int) -> list[str]:
    rows = []
    for i in range(n):
        code = (f"def transform_{i}(values, factor={i % 7 + 1}):\n"
                f"    \"\"\"Scale the positive values by factor and drop the rest (variant {i}).\"\"\"\n"
                f"    out = []\n    for v in values:\n        if v > {i % 5}:\n            out.append(v * factor)\n"
                f"    return out\n")
        rows.append((f"b{i:06d}", code))
    store.executemany("INSERT INTO snippets(id, kind, source, source_kind, language, code, n_chars) "
                      "VALUES (?, 'function', 'bench', 'stdlib', 'python', ?, 100)", rows)
    return [r[0] for r in rows]


class _ServerProcess:
    """The fake server in its own process (as a real server would be), so that its request handling
    does not compete with the client for this process's GIL."""

    def __init__(self, latency: float):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.openai_server", "--port", str(self.port),
                                      "--latency", str(latency), "--responder", "shoal"], cwd=str(ROOT),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.base_url + "/models", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError("the fake server did not start")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)


def run(items: int, latency: float, concurrency: int, in_process: bool = False) -> dict:
    load_before = os.getloadavg()[0]   # the machine is shared: record how busy it was
    server = FakeOpenAIServer(shoal_responder, latency_s=latency) if in_process else _ServerProcess(latency)
    with tempfile.TemporaryDirectory() as tmp, server as srv:
        store = open_store(Path(tmp) / "bench.duckdb")
        ids = _snippets(store, items)
        profiles = {r: Profile(role=r, base_url=srv.base_url, model="fake-model", timeout_s=30, max_tokens=256)
                    for r in ("generator", "judge")}
        # one pool snapshot for the whole job, so that the replay below (results deleted) assembles the
        # same prompts; refreshing costs a few reads per block of items
        job = create_job(store, ids, profiles=profiles, mix=DEFAULT_MIX, concurrency=concurrency,
                         target_languages=["go", "java"], pool=PoolConfig(refresh_every=items))
        t0, c0, l0 = time.perf_counter(), time.process_time(), time.thread_time()
        summary = run_job(store, job)   # its event loop runs in this thread
        wall, cpu, loop_cpu = time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - l0
        calls = int(store.scalar("SELECT count(*) FROM llm_calls"))   # every HTTP request is logged
        span = store.one("SELECT epoch(max(created_at) - min(created_at)) AS s FROM llm_calls")["s"]
        active = float(span) + latency   # first answer logged - L .. last answer logged
        http = store.one("SELECT avg(latency_ms) AS mean, quantile_cont(latency_ms, 0.95) AS p95, "
                         "sum(latency_ms) / 1000 AS busy FROM llm_calls")
        stored = int(store.scalar("SELECT count(*) FROM generations WHERE job_id = ?", [job]))
        judged = int(store.scalar("SELECT count(*) FROM judgments j JOIN generations g ON g.id = j.generation_id "
                                  "WHERE g.job_id = ?", [job]))
        wave_bound = calls / (math.ceil(calls / concurrency) * latency)
        limit = concurrency / latency
        cps = calls / wall

        # the same work again, from the cache: reset the items, delete the results, rerun
        store.execute("DELETE FROM judgments")
        store.execute("DELETE FROM generations")
        store.execute("UPDATE job_items SET status = 'pending', generation_id = NULL WHERE job_id = ?", [job])
        before = int(store.scalar("SELECT count(*) FROM llm_calls"))
        t1 = time.perf_counter()
        run_job(store, job)
        cached_wall = time.perf_counter() - t1
        rerun_requests = int(store.scalar("SELECT count(*) FROM llm_calls")) - before
        store.close()
    return {
        "items": items, "latency_s": latency, "concurrency": concurrency,
        "calls": calls, "generations_stored": stored, "judgments_stored": judged,
        "succeeded": summary["items"]["succeeded"], "failed": summary["items"]["failed"],
        "wall_s": round(wall, 3), "cpu_s_this_process": round(cpu, 3),
        "cpu_ms_per_call": {"process": round(cpu / calls * 1000, 2), "event_loop_thread": round(loop_cpu / calls * 1000, 2)}, "calls_per_s": round(cps, 2),
        "wave_bound_calls_per_s": round(wave_bound, 2), "limit_C_over_L": round(limit, 2),
        "ratio_to_wave_bound": round(cps / wave_bound, 3), "ratio_to_C_over_L": round(cps / limit, 3),
        "active_s_first_request_to_last_answer": round(active, 3),
        "ratio_to_wave_bound_active_span": round(calls / active / wave_bound, 3),
        "http_latency_ms": {"mean": round(http["mean"], 1), "p95": round(http["p95"], 1)},
        # share of the C slots x wall time spent waiting on an HTTP answer (1.0 = never idle)
        "slot_utilisation": round(float(http["busy"]) / (concurrency * wall), 3),
        "server": "in-process thread" if in_process else "separate process",
        "cached_rerun_wall_s": round(cached_wall, 3), "cached_rerun_requests": rerun_requests,
        "cached_rerun_items_per_s": round(items / cached_wall, 1),
        "load_average_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "target": "calls_per_s >= 0.9 x wave bound",
        "meets_target": cps >= 0.9 * wave_bound,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--in-process-server", action="store_true", help="Run the fake server as a thread here.")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = run(args.items, args.latency, args.concurrency, args.in_process_server)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
