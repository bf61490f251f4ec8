"""Shoal at a million snippets: ingest, embed, map build, map render, lasso, k-center, memory.

Corpus: the Python functions of the packages installed next to this interpreter (site-packages,
read with `ast`, 50-800 characters as ingest keeps by default), written as CodeSearchNet-shaped
JSONL records (repo, path, func_name, original_string, language, code, docstring, url, sha,
partition; no token lists) until `--n` records exist. Copy 0 of a function is as found; copy
r > 0 renames the function (``name`` -> ``name_<word>``, everywhere in its code, so recursive calls
follow) and its first parameter, and varies the docstring's first line, so every copy has its
own content hash and ingest keeps it. The records go through Shoal's real ingest path
(`core.ingest.run.ingest_sources`) into a DuckDB file on disk.

Embedding, per route:
* in-process fast backend (ONNX int8) and torch backend: throughput on samples of real snippets
  of this corpus (`--embed-sample`, `--torch-sample`); at ~170 snippets/s on 2 cores the fast
  backend would take well over an hour for 1M, so the full set is not embedded with it;
* import (`shoal embed --import`): the full 1M vectors come from a cheap deterministic embedder
  (hashed identifier and word tokens, count-sketched to 384 dims, L2-normalised; no model) written
  to Parquet and imported by `core.embed.imported`. Those vectors time everything after.
* Ray: see bench_embed (a local Ray instance on this 2-core machine measures overhead, not scale).
* `--backend static`: instead of the import, every snippet is embedded for real by the static backend
  (core.embed.static, `shoal embed --backend static`); the map and k-center then use those vectors.
  Results go to bench/results/scale_static.json.

Then: map build (`core.maps.build.build_map`: UMAP fit on a 20k sample, neighbour placement of the rest,
k-means, cluster names), map render in Chromium and lasso over 1M (bench_map_render's
measurement on this database), k-center exact and fast at k = 1% (`--k`), random at the same k
as a baseline (one draw, coverage on the true vectors), and the plain numpy greedy (one pass over
all vectors per pick) timed on its first `--ref-steps` picks and extrapolated to k (its cost per
pick is constant); its picks are checked against exact's. Peak RSS of this process is sampled
during every step (a thread reading /proc/self/statm every 0.2 s); the Streamlit server of the
render step is a separate process and not counted.

    python -m bench.bench_scale [--n 1080000] [--k 10000] [--ref-steps 20] [--skip embed,render,kcenter]
                                [--workdir DIR [--reuse]]
    python -m bench.bench_scale --demo      # the demo's first map: ingest stdlib, embed (auto), map
    python -m bench.bench_scale --backend static --n 2100000 --k 20000 --skip embed,render
                                            # >= 2M records, every one embedded for real (static backend)
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import resource
import shutil
import sysconfig
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from bench.common import RESULTS, write_result  # noqa: E402

DIM = 384
WORDS = ("impl", "fast", "safe", "v2", "new", "local", "cached", "inner", "checked", "simple", "alt", "core",
         "base", "util", "raw", "lazy", "strict", "quick", "plain", "main")
DOC_LEADS = ("", "Helper: ", "Internal: ", "Variant: ", "See also the original. ", "Note: ", "Utility: ",
             "Deprecated alias. ", "Wrapper: ", "Compat: ")


# --------------------------------------------------------------------------- memory

class PeakRss:
    """Peak resident set size of this process while a step runs (sampled every `every` s)."""

    def __init__(self, every: float = 0.2):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _now(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self._now())

    @contextmanager
    def step(self, out: dict, name: str) -> Iterator[None]:
        self.peak = self._now()
        self._stop.clear()
        th = threading.Thread(target=self._run, daemon=True)
        th.start()
        t0 = time.perf_counter()
        load0 = os.getloadavg()[0]
        try:
            yield
        finally:
            self._stop.set()
            th.join()
            self.peak = max(self.peak, self._now())
            out.setdefault("steps", {})[name] = {
                "seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": round(self.peak / 2 ** 20),
                "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)]}
            print(f"[{time.strftime('%H:%M:%S')}] {name}: {out['steps'][name]}", flush=True)


# --------------------------------------------------------------------------- corpus

def python_functions(root: Path, min_chars: int = 50, max_chars: int = 760) -> Iterator[dict]:
    """Functions of every .py file under root, as (repo, path, name, code, docstring, line span)."""
    for path in sorted(root.rglob("*.py")):
        try:
            src = path.read_text(encoding="utf-8")
            tree = ast.parse(src)
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError):
            continue
        lines = src.splitlines()
        rel = path.relative_to(root)
        repo = rel.parts[0] if len(rel.parts) > 1 else "site-packages"
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.end_lineno is None:
                continue
            start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            body = lines[start - 1:node.end_lineno]
            indent = min((len(s) - len(s.lstrip()) for s in body if s.strip()), default=0)
            code = "\n".join(s[indent:] for s in body)
            if min_chars <= len(code) <= max_chars:
                yield {"repo": repo, "path": str(rel), "name": node.name, "code": code,
                       "docstring": ast.get_docstring(node) or "", "start": start, "end": node.end_lineno,
                       "arg": next((a.arg for a in node.args.args if a.arg not in ("self", "cls")), None)}


def variant(fn: dict, r: int) -> dict:
    """CodeSearchNet-shaped record of copy r of a function (r = 0: as found)."""
    name, code, doc = fn["name"], fn["code"], fn["docstring"]
    repo = fn["repo"] if r == 0 else f"{fn['repo']}-fork{r}"
    if r:
        word = WORDS[(r - 1) % len(WORDS)] + (str((r - 1) // len(WORDS)) if r > len(WORDS) else "")
        new = f"{name}_{word}"
        code = re.sub(rf"\b{re.escape(name)}\b", new, code)
        if fn["arg"] and fn["arg"] != name:
            code = re.sub(rf"\b{re.escape(fn['arg'])}\b", f"{fn['arg']}_{word}", code)
        lead = DOC_LEADS[r % len(DOC_LEADS)]
        if doc and lead:
            code = code.replace(doc.split("\n", 1)[0], lead + doc.split("\n", 1)[0], 1)
            doc = lead + doc
        name = new
    sha = hashlib.sha1(f"{repo}/{fn['path']}".encode()).hexdigest()
    return {"repo": repo, "path": fn["path"], "func_name": name, "original_string": code, "language": "python",
            "code": code, "docstring": doc, "sha": sha, "partition": "train",
            "url": f"https://github.com/{repo}/blob/{sha}/{fn['path']}#L{fn['start']}-L{fn['end']}"}


def write_corpus(folder: Path, n: int, root: Path, shard: int = 100_000) -> dict:
    """At least `n` records in JSONL shards under `folder`; returns facts about the corpus."""
    base = list(python_functions(root))
    if not base:
        raise SystemExit(f"no Python functions under {root}")
    folder.mkdir(parents=True, exist_ok=True)
    written, copies, out = 0, 0, None
    while written < n:
        for fn in base:
            if written % shard == 0:
                if out:
                    out.close()
                out = open(folder / f"shard-{written // shard:03d}.jsonl", "w", encoding="utf-8")
            out.write(json.dumps(variant(fn, copies)) + "\n")
            written += 1
            if written >= n:
                break
        copies += 1
    if out:
        out.close()
    size = sum(p.stat().st_size for p in folder.glob("*.jsonl"))
    return {"base_functions": len(base), "records": written, "copies_per_function_max": copies,
            "jsonl_mb": round(size / 2 ** 20), "source": str(root)}


# --------------------------------------------------------------------------- embedding

def hashed_vectors(texts: list[str], dim: int = DIM) -> np.ndarray:
    """The cheap deterministic embedder: identifier pieces and words, hashed into `dim` signed
    buckets (scikit-learn's HashingVectorizer, sublinear counts), L2-normalised. No model."""
    from sklearn.feature_extraction.text import HashingVectorizer
    vec = HashingVectorizer(n_features=dim, token_pattern=r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])|\d+",
                            lowercase=True, alternate_sign=True, norm=None)
    out = np.empty((len(texts), dim), dtype=np.float32)
    for s in range(0, len(texts), 50_000):
        m = vec.transform(texts[s:s + 50_000])
        m.data = np.sign(m.data) * np.log1p(np.abs(m.data))
        block = m.toarray().astype(np.float32)
        block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        out[s:s + 50_000] = block
    return out


def embed_routes(store, ids: list[str], sample: int, torch_sample: int, seed: int = 0) -> dict:
    """In-process throughput of the fast and torch backends on real snippets of this corpus
    (disjoint random samples; each backend's model is loaded on 16 other snippets first)."""
    from core.embed.run import embed_corpus
    rng = np.random.default_rng(seed)
    out = {}
    order = rng.permutation(len(ids))
    used = 0
    for backend, n in (("fast", sample), ("torch", torch_sample)):
        if n <= 0:
            continue
        warm = [ids[i] for i in order[used:used + 16]]   # loads the model: not part of the throughput
        pick = [ids[i] for i in order[used + 16:used + 16 + n]]
        used += 16 + n
        embed_corpus(store, backend=backend, snippet_ids=warm)
        t0 = time.perf_counter()
        r = embed_corpus(store, backend=backend, snippet_ids=pick)
        wall = time.perf_counter() - t0
        out[backend] = {"snippets": r.n_embedded, "seconds": round(wall, 1),
                        "per_s": round(r.n_embedded / wall, 1), "model_key": r.model_key}
    if "fast" in out and "torch" in out:
        out["fast_over_torch_ratio"] = round(out["fast"]["per_s"] / out["torch"]["per_s"], 2)
    return out


def import_cheap_vectors(store, tmp: Path, model: str = "hashed-tokens-384") -> dict:
    """The 1M vectors: computed by the cheap embedder, written to Parquet, imported (timed apart)."""
    from core.embed.imported import import_vectors, write_vectors_parquet
    from core.embed.run import snippet_frame
    t0 = time.perf_counter()
    frame = snippet_frame(store).drop_duplicates("content_hash")
    hashes, texts = frame["content_hash"].tolist(), frame["text"].tolist()
    del frame
    read_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    X = hashed_vectors(texts)
    del texts
    compute_s = time.perf_counter() - t1
    path = write_vectors_parquet(tmp / "vectors.parquet", X, model, content_hashes=hashes)
    del X, hashes
    t2 = time.perf_counter()
    res = import_vectors(store, path)
    import_s = time.perf_counter() - t2
    path.unlink()
    return {"model": model, "texts_read_seconds": round(read_s, 1), "cheap_embedder_seconds": round(compute_s, 1),
            "import_seconds": round(import_s, 1), "imported": res.n_imported,
            "import_per_s": round(res.n_imported / max(import_s, 1e-9)), "model_key": res.model_key}


def embed_static(store) -> dict:
    """Every snippet embedded for real with the static backend (`shoal embed --backend static`)."""
    from core.embed.model import load_model
    from core.embed.run import embed_corpus
    t0 = time.perf_counter()
    enc = load_model(None, "static")        # the table: distilled once per machine (shoal warmup)
    load_s = time.perf_counter() - t0
    t1, c1 = time.perf_counter(), time.process_time()
    r = embed_corpus(store, backend="static")
    wall, cpu = time.perf_counter() - t1, time.process_time() - c1
    return {"model_key": r.model_key, "embedded": r.n_embedded, "cached": r.n_cached, "snippets": r.n_snippets,
            "seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "per_s": round(r.n_embedded / max(wall, 1e-9)),
            "table_seconds": round(load_s, 1), "table": getattr(enc, "info", {})}


# --------------------------------------------------------------------------- k-center

def kcenter_at_scale(X: np.ndarray, k: int, ref_steps: int, out: dict, rss: PeakRss) -> dict:
    from bench.bench_kcenter import numpy_reference
    from core.select.baselines import coverage, random_sample
    from core.select.kcenter import kcenter_greedy, kcenter_greedy_fast
    n = len(X)
    first = int(np.random.default_rng(0).integers(n))  # kcenter_greedy's first pick for seed=0
    half = max(1, ref_steps // 2)
    t0 = time.perf_counter()
    plain_a = numpy_reference(X, half, first)
    plain_a_s = time.perf_counter() - t0
    with rss.step(out, "kcenter_exact"):
        t0 = time.perf_counter()
        exact, exact_d = kcenter_greedy(X, k, seed=0)
        exact_s = time.perf_counter() - t0
    with rss.step(out, "kcenter_fast"):
        t0 = time.perf_counter()
        fast, fast_d = kcenter_greedy_fast(X, k, seed=0)
        fast_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain_b = numpy_reference(X, half, first)
    plain_b_s = time.perf_counter() - t0
    with rss.step(out, "kcenter_random_baseline"):
        t0 = time.perf_counter()
        rnd = random_sample(n, k, seed=0)
        rnd_cov = coverage(X, X[rnd])
        rnd_s = time.perf_counter() - t0
    per_pick = (plain_a_s + plain_b_s) / (2 * half)
    plain_s = per_pick * k
    ex = {"coverage_max": float(exact_d.max()), "coverage_mean": float(exact_d.mean())}
    fa = {"coverage_max": float(fast_d.max()), "coverage_mean": float(fast_d.mean())}
    return {
        "n": n, "k": k, "plain_steps_timed": 2 * half, "plain_seconds_per_pick": round(per_pick, 3),
        "plain_seconds_for_k_extrapolated": round(plain_s, 1),
        "exact_seconds": round(exact_s, 1), "fast_seconds": round(fast_s, 1),
        "random_seconds_with_coverage": round(rnd_s, 1),
        "exact_speedup_ratio": round(plain_s / exact_s, 1), "fast_speedup_ratio": round(plain_s / fast_s, 1),
        "exact_same_picks_as_plain": list(exact[:half]) == plain_a and plain_a == plain_b,
        "exact": ex, "fast": fa, "random": rnd_cov,
        "fast_over_exact_max_ratio": round(fa["coverage_max"] / ex["coverage_max"], 4),
        "exact_over_random_max_ratio": round(ex["coverage_max"] / rnd_cov["coverage_max"], 4),
        "fast_over_random_max_ratio": round(fa["coverage_max"] / rnd_cov["coverage_max"], 4),
        "fast_within_10pct_and_below_random": bool(fa["coverage_max"] <= 1.10 * ex["coverage_max"]
                                                   and fa["coverage_max"] < rnd_cov["coverage_max"]),
    }


# --------------------------------------------------------------------------- demo

def knn_preservation(X: np.ndarray, coords: np.ndarray, k: int = 10, sample: int = 2000, seed: int = 0) -> float:
    """Share of a point's k nearest neighbours by cosine that stay among its k nearest on the map
    (a seeded sample of points, neighbours among all points)."""
    rows = np.random.default_rng(seed).choice(len(X), min(sample, len(X)), replace=False)
    Xn = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    sim = Xn[rows] @ Xn.T
    sim[np.arange(len(rows)), rows] = -np.inf
    d2 = ((coords[rows, None, :] - coords[None, :, :]) ** 2).sum(-1)
    d2[np.arange(len(rows)), rows] = np.inf
    emb = np.argpartition(-sim, k, axis=1)[:, :k]
    mp = np.argpartition(d2, k, axis=1)[:, :k]
    return round(float(np.mean([len(set(a) & set(b)) / k for a, b in zip(emb, mp)])), 4)


def demo_first_map(tmp: Path, fresh_cache: bool) -> dict:
    """The demo as a new user meets it: `shoal ingest stdlib`, then the Map page's "Embed and build
    map" (the page's background task: default backend auto, batch 32, automatic clusters), in this
    fresh process. Times when the first map is stored (a first look at a sample when the corpus is
    big) and when the full map is. `fresh_cache`: no exported ONNX model and no backend choice yet,
    as on a new machine (they are made once per machine)."""
    from core.background import latest_task
    from core.embed.run import load_embeddings
    from core.ingest.run import ingest_sources
    from core.maps.build import map_points
    from core.maps.start import EMBED_MAP, start_embed_and_map
    from core.store import open_store
    if fresh_cache:
        os.environ["SHOAL_CACHE_DIR"] = str(tmp / "cache")
    out: dict = {"load_avg_1m_start": round(os.getloadavg()[0], 2), "fresh_cache": fresh_cache}
    with open_store(tmp / "demo.duckdb") as store:
        c0, t0 = time.process_time(), time.perf_counter()
        got = ingest_sources(store, ["stdlib"])
        out["ingest"] = {"snippets": got.ingested, "seconds": round(time.perf_counter() - t0, 1),
                         "cpu_seconds": round(time.process_time() - c0, 1)}
        c0, t0 = time.process_time(), time.perf_counter()
        task = start_embed_and_map(store, None, "auto", 32, 0, "kmeans")
        maps: list[dict] = []
        stages: list[list] = []       # [seconds, stage, note] each time the task's stage changes
        while not task.wait(0.5):
            if not maps and store.scalar("SELECT count(*) FROM maps WHERE status = 'done'"):
                maps.append({"seconds": round(time.perf_counter() - t0, 1)})
            now = (task.ctx.stage_name, task.ctx.note.split(" · ")[0])
            if not stages or stages[-1][1:] != list(now):
                stages.append([round(time.perf_counter() - t0, 1), *now])
        out["stages"] = stages
        rec = latest_task(store, EMBED_MAP.name)
        if rec is None or rec.status != "done":
            raise RuntimeError(f"the embed + map task did not finish: {rec and rec.error}")
        out["full_map_seconds"] = round(time.perf_counter() - t0, 1)
        out["cpu_seconds"] = round(time.process_time() - c0, 1)
        out["first_map_seconds"] = maps[0]["seconds"] if maps else out["full_map_seconds"]
        out["maps"] = store.rows("SELECT id, name, n_points, n_clusters FROM maps ORDER BY id")
        out["summary"] = (rec.result or {}).get("summary")
        ids, X, _ = load_embeddings(store)
        pts = map_points(store, rec.result["map_id"]).set_index("snippet_id").loc[ids]
        out["knn10_preservation"] = knn_preservation(X, pts[["x", "y"]].to_numpy(np.float32))
    out["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    out["meets_2_min"] = out["first_map_seconds"] < 120
    return out


# --------------------------------------------------------------------------- run

def render_step(db: Path, n: int, reloads: int) -> dict:
    from playwright.sync_api import sync_playwright

    from bench.bench_map_render import measure_page
    with sync_playwright() as pw:
        return measure_page(pw, db, n, reloads)


def print_table(res: dict) -> None:
    rows = []
    st = res.get("steps", {})
    if "ingest" in res:
        i = res["ingest"]
        rows.append(("ingest (CodeSearchNet JSONL -> DuckDB file)", f"{i['ingested']:,} snippets in {i['seconds']} s "
                     f"= {i['per_s']:,.0f}/s", st.get("ingest")))
    e = res.get("embed", {})
    for b in ("fast", "torch"):
        if b in e:
            rows.append((f"embed in-process {b} ({e[b]['snippets']} real snippets)", f"{e[b]['per_s']}/s", None))
    if "import" in res:
        m = res["import"]
        rows.append(("embed --import (cheap vectors, Parquet)", f"{m['imported']:,} in {m['import_seconds']} s "
                     f"= {m['import_per_s']:,}/s", st.get("embed_import")))
    if "static" in res:
        m = res["static"]
        rows.append(("embed --backend static (real vectors)", f"{m['embedded']:,} in {m['seconds']} s = "
                     f"{m['per_s']:,}/s (CPU {m['cpu_seconds']} s)", st.get("embed_static")))
    if "map" in res:
        m = res["map"]
        rows.append(("map build", f"{m['seconds']} s (fit {m['fit_seconds']} s, place {m['place_seconds']} s, "
                     f"clusters {m['cluster_seconds']} s)", st.get("map_build")))
    if "render" in res:
        r = res["render"]
        rows.append(("map render in Chromium (once computed)", f"{r['reload_median_seconds']} s "
                     f"(first visit {r['first_visit_seconds']} s)", None))
        rows.append(("lasso over the map -> ids", f"{r['lasso_server']['resolve_median_seconds'] * 1000:.0f} ms "
                     f"(browser mouse-up -> count {r['lasso_browser_seconds']} s)", None))
    if "kcenter" in res:
        k = res["kcenter"]
        rows.append((f"k-center exact k={k['k']:,}", f"{k['exact_seconds']} s = {k['exact_speedup_ratio']}x plain "
                     f"({k['plain_seconds_for_k_extrapolated']} s extrapolated), same picks "
                     f"{k['exact_same_picks_as_plain']}", st.get("kcenter_exact")))
        rows.append((f"k-center fast k={k['k']:,}", f"{k['fast_seconds']} s = {k['fast_speedup_ratio']}x plain; "
                     f"max distance {k['fast']['coverage_max']:.4f} vs exact {k['exact']['coverage_max']:.4f}, "
                     f"random {k['random']['coverage_max']:.4f}", st.get("kcenter_fast")))
    print()
    for what, fig, step in rows:
        mem = f"  peak RSS {step['peak_rss_mb']:,} MB" if step else ""
        print(f"{what:48s} {fig}{mem}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_200_000,
                    help="records written (ingest drops duplicates and out-of-window lengths: >= 1M are kept)")
    ap.add_argument("--k", type=int, default=10_000, help="k-center budget (1%% of 1M)")
    ap.add_argument("--ref-steps", type=int, default=20, help="plain numpy greedy picks timed")
    ap.add_argument("--embed-sample", type=int, default=2000)
    ap.add_argument("--torch-sample", type=int, default=300)
    ap.add_argument("--reloads", type=int, default=2)
    ap.add_argument("--source", default=sysconfig.get_paths()["purelib"])
    ap.add_argument("--skip", default="", help="comma-separated: embed,render,kcenter")
    ap.add_argument("--workdir", default=None, help="keep the corpus and database here (default: a temp dir)")
    ap.add_argument("--reuse", action="store_true", help="with --workdir: reuse its ingested database")
    ap.add_argument("--result", default=None, help="results name (default: scale, or scale_static)")
    ap.add_argument("--backend", choices=("hashed", "static"), default="hashed",
                    help="the full set's vectors: hashed tokens imported from Parquet (no model), or the "
                    "static backend embedding every snippet for real")
    ap.add_argument("--demo", action="store_true", help="only: the demo's first map (stdlib, default backend)")
    ap.add_argument("--fresh-cache", action="store_true", help="with --demo: as on a new machine (no ONNX "
                    "export, no backend choice cached)")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    a.result = a.result or ("scale_static" if a.backend == "static" else "scale")
    tmp = Path(a.workdir or tempfile.mkdtemp(prefix="shoal-bench-scale-"))
    tmp.mkdir(parents=True, exist_ok=True)
    if a.demo:
        try:
            write_result("demo_first_map", demo_first_map(tmp, a.fresh_cache))
        finally:
            if not a.workdir:
                shutil.rmtree(tmp, ignore_errors=True)
        return
    rss = PeakRss()
    res: dict = {"target": "1M snippets: ingest, embed per route, map build, render < 3 s, lasso < 1 s, "
                           "k-center exact/fast at k = 1% against plain numpy greedy and random"}
    from core.ingest.run import ingest_sources
    from core.store import open_store
    db = tmp / "scale.duckdb"
    reuse = a.reuse and db.exists() and (RESULTS / f"{a.result}.json").exists()
    if reuse:  # a rerun of the later steps on the database an earlier run ingested (its figures kept)
        earlier = json.loads((RESULTS / f"{a.result}.json").read_text())
        res.update({k: earlier[k] for k in ("corpus", "ingest", "steps") if k in earlier})
    try:
        if not reuse:
            with rss.step(res, "corpus"):
                res["corpus"] = write_corpus(tmp / "corpus", a.n, Path(a.source))
        with open_store(db) as store:
            if not reuse:
                with rss.step(res, "ingest"):
                    t0 = time.perf_counter()
                    got = ingest_sources(store, [str(tmp / "corpus")])
                    wall = time.perf_counter() - t0
                res["ingest"] = {"ingested": got.ingested, "seconds": round(wall, 1),
                                 "per_s": round(got.ingested / wall), "db_mb": round(db.stat().st_size / 2 ** 20)}
                shutil.rmtree(tmp / "corpus")
                write_result(a.result, res)
            ids = [r[0] for r in store.execute("SELECT id FROM snippets ORDER BY id").fetchall()]
            if "embed" not in skip:
                with rss.step(res, "embed_in_process"):
                    res["embed"] = embed_routes(store, ids, a.embed_sample, a.torch_sample)
            del ids
            if a.backend == "static":
                with rss.step(res, "embed_static"):
                    res["static"] = embed_static(store)
                key = res["static"]["model_key"]
            else:
                with rss.step(res, "embed_import"):
                    res["import"] = import_cheap_vectors(store, tmp)
                key = res["import"]["model_key"]
            write_result(a.result, res)
            from core.maps.build import build_map
            with rss.step(res, "map_build"):
                m = build_map(store, model=key)
            u = m.params["umap"]
            res["map"] = {"points": m.n_points, "clusters": m.n_clusters, "seconds": m.seconds,
                          "fit_points": u.get("fit_points"), "fit_seconds": u.get("fit_seconds"),
                          "placement": u.get("placement"), "place_seconds": u.get("transform_seconds"),
                          "cluster_seconds": m.params.get("cluster_seconds")}
            write_result(a.result, res)
            if "kcenter" not in skip:
                from core.embed.run import load_embeddings
                with rss.step(res, "load_vectors"):
                    _, X, _ = load_embeddings(store, key)
                res["kcenter"] = kcenter_at_scale(X, a.k, a.ref_steps, res, rss)
                del X
                write_result(a.result, res)
        if "render" not in skip:
            try:
                res["render"] = render_step(db, res["map"]["points"], a.reloads)
            except Exception as exc:  # noqa: BLE001 - the other figures are still worth the table
                res["render_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        res["peak_rss_mb_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print_table(res)
        write_result(a.result, res)
    finally:
        if not a.workdir:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
