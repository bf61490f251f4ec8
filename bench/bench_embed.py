"""Embedding throughput: Shoal's cached embedder vs raw `SentenceTransformer.encode` (same model,
same texts, same batch size, same run), the cache re-run speedup, and the fast backend
(ONNX Runtime int8) ratio and cosine agreement with the PyTorch vectors.

Rounds are interleaved (raw, shoal, fast, raw, shoal, fast, ...) and ratios are medians of the
per-round ratios, because this machine is shared and its load changes minute to minute.
Wall and CPU-time ratios are both reported.

Routes (`--route-n` texts, torch backend, same model): in-process `embed_corpus`, a local Ray
instance (`--engine ray`, 2 CPU actors; Ray's start-up timed apart) and `--import` of vectors
computed elsewhere (raw `encode`, written to Parquet; the import alone is timed). Each route's
throughput is given as a ratio to the in-process route's, and its vectors' cosine to them.

    python -m bench.bench_embed [--n 160] [--batch-size 32] [--rounds 3] [--route-n 300] [--no-routes]
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from bench.common import interleaved, median_ratio, timed, write_result  # noqa: E402
from core.embed import run as embed  # noqa: E402
from core.store import open_store  # noqa: E402


def stdlib_rows(n: int):
    import ast
    import hashlib
    import sysconfig

    import pandas as pd
    rows, seen = [], set()
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            src = path.read_text(encoding="utf-8")
            tree = ast.parse(src)
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                code = ast.get_source_segment(src, node)
                if code and 50 <= len(code) <= 800:
                    sid = hashlib.sha256(code.encode()).hexdigest()[:32]
                    if sid not in seen:
                        seen.add(sid)
                        rows.append({"id": sid, "kind": "function", "source": "stdlib", "source_kind": "stdlib",
                                     "language": "python", "code": code, "n_chars": len(code),
                                     "func_name": node.name, "docstring": ast.get_docstring(node)})
                if len(rows) >= n:
                    return pd.DataFrame(rows)
    return pd.DataFrame(rows)


def _cosine_to(ref: dict, store, key: str) -> tuple[float, float]:
    ids, X, _ = embed.load_embeddings(store, key)
    R = np.stack([ref[i] for i in ids])
    cos = (X * R).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(R, axis=1)
    return round(float(cos.mean()), 6), round(float(cos.min()), 6)


def routes(n: int, batch_size: int, tmp: Path) -> dict:
    """In-process vs Ray local vs import: throughput ratios and cosine agreement."""
    from core.embed.imported import import_vectors, write_vectors_parquet
    rows = stdlib_rows(n)
    key = "all-MiniLM-L6-v2"
    with open_store(tmp / "route-local.duckdb") as s:
        s.insert_df("snippets", rows)
        r, local_w, _ = timed(lambda: embed.embed_corpus(s, backend="torch", batch_size=batch_size))
        ids, X, _ = embed.load_embeddings(s, key)
        frame = embed.snippet_frame(s)
    ref = dict(zip(ids, X))
    out = {"route_texts": r.n_embedded, "in_process_per_s": round(r.n_embedded / local_w, 1)}
    vectors = embed.encode(embed.load_model(None, "torch"), frame["text"].tolist(), batch_size)  # "elsewhere"
    path = write_vectors_parquet(tmp / "route-vectors.parquet", vectors, key, snippet_ids=frame["snippet_id"].tolist())
    with open_store(tmp / "route-import.duckdb") as s:
        s.insert_df("snippets", rows)
        imp, import_w, _ = timed(lambda: import_vectors(s, path))
        out.update(import_per_s=round(imp.n_imported / import_w, 1),
                   import_ratio_vs_in_process=round(local_w / import_w, 1))
        out["import_cosine_mean"], out["import_cosine_min"] = _cosine_to(ref, s, key)
    try:
        from core.embed import ray_route as embed_ray
    except ImportError:
        return {**out, "ray": "not installed (pip install -e '.[ray]')"}
    _, startup_w, _ = timed(lambda: embed_ray.connect(None, num_cpus=2))
    try:
        with open_store(tmp / "route-ray.duckdb") as s:
            s.insert_df("snippets", rows)
            rr, ray_w, _ = timed(lambda: embed_ray.embed_with_ray(
                s, backend="torch", batch_size=batch_size, shard_size=max(32, n // 8), shard_dir=tmp / "shards"))
            out.update(ray_startup_s=round(startup_w, 1), ray_actors=rr.n_actors,
                       ray_per_s=round(rr.n_embedded / ray_w, 1),
                       ray_ratio_vs_in_process=round(local_w / ray_w, 3),
                       ray_ratio_vs_in_process_with_startup=round(local_w / (ray_w + startup_w), 3))
            out["ray_cosine_mean"], out["ray_cosine_min"] = _cosine_to(ref, s, key)
    finally:
        import ray
        ray.shutdown()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--route-n", type=int, default=300)
    ap.add_argument("--no-routes", action="store_true")
    ap.add_argument("--only-routes", action="store_true")
    a = ap.parse_args()
    if a.only_routes:
        tmp = Path(tempfile.mkdtemp(prefix="shoal-bench-embed-"))
        write_result("embed_routes", {**routes(a.route_n, a.batch_size, tmp),
                                      "target": "every route's cosine to in-process >= 0.999"})
        return
    rows = stdlib_rows(a.n)
    texts = [embed.snippet_text(r.func_name, r.docstring, r.code) for r in rows.itertuples()]
    tmp = Path(tempfile.mkdtemp(prefix="shoal-bench-embed-"))
    os.environ.setdefault("SHOAL_CACHE_DIR", str(tmp / "cache"))
    model = embed.load_model(None, "torch")
    fast = embed.load_model(None, "fast")  # exports + quantizes once (not timed)
    embed.encode(model, texts[:8]); embed.encode(fast, texts[:8])  # warm-up
    counter = iter(range(10_000))

    def shoal_cold(backend: str):
        with open_store(tmp / f"db{next(counter)}.duckdb") as s:
            s.insert_df("snippets", rows)
            r = embed.embed_corpus(s, batch_size=a.batch_size, backend=backend)
            assert r.n_embedded == len(set(texts))

    raw_vectors = {}
    times = interleaved({
        "raw_encode": lambda: raw_vectors.setdefault("torch", embed.encode(model, texts, a.batch_size)),
        "shoal_embed": lambda: shoal_cold("torch"),
        "shoal_fast": lambda: shoal_cold("fast"),
    }, a.rounds)
    # cache: the second run over an unchanged corpus
    with open_store(tmp / "cache.duckdb") as s:
        s.insert_df("snippets", rows)
        _, cold_w, _ = timed(lambda: embed.embed_corpus(s, batch_size=a.batch_size))
        r, warm_w, _ = timed(lambda: embed.embed_corpus(s, batch_size=a.batch_size))
        assert r.n_embedded == 0
        embed.embed_corpus(s, batch_size=a.batch_size, backend="fast")
        _, A, _ = embed.load_embeddings(s, "all-MiniLM-L6-v2")
        _, B, _ = embed.load_embeddings(s, "all-MiniLM-L6-v2+onnx-int8")
    cos = (A * B).sum(1) / np.linalg.norm(A, axis=1) / np.linalg.norm(B, axis=1)
    n = len(texts)
    res = {
        "model": "all-MiniLM-L6-v2 (max_seq_length 256)", "texts": n, "batch_size": a.batch_size,
        "rounds": a.rounds,
        "raw_snippets_per_s": [round(n / t, 1) for t in times["raw_encode"]["wall"]],
        "shoal_snippets_per_s": [round(n / t, 1) for t in times["shoal_embed"]["wall"]],
        "fast_snippets_per_s": [round(n / t, 1) for t in times["shoal_fast"]["wall"]],
        "throughput_ratio_vs_raw": median_ratio(times, "raw_encode", "shoal_embed"),
        "throughput_cpu_ratio_vs_raw": median_ratio(times, "raw_encode", "shoal_embed", "cpu"),
        "fast_backend_ratio_vs_raw": median_ratio(times, "raw_encode", "shoal_fast"),
        "fast_backend_cpu_ratio_vs_raw": median_ratio(times, "raw_encode", "shoal_fast", "cpu"),
        "fast_backend_cosine_mean": round(float(cos.mean()), 5),
        "fast_backend_cosine_min": round(float(cos.min()), 5),
        "cache_rerun_seconds": round(warm_w, 3), "cold_run_seconds": round(cold_w, 2),
        "cache_rerun_speedup_ratio": round(cold_w / warm_w, 1),
        "target": "shoal >= 0.9x raw; cache re-run >= 50x; fast >= 2x raw with cosine >= 0.99; "
                  "every route's cosine to in-process >= 0.999",
    }
    if not a.no_routes:
        res["routes"] = routes(a.route_n, a.batch_size, tmp)
    write_result("embed", res)


if __name__ == "__main__":
    main()
