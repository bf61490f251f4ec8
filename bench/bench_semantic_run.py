"""The semantic checks end to end on N synthetic examples (default 10k); writes bench/results/semantic_run.json.

Unlike bench_checks' semantic part (embedding rate on a sample, search on replicated vectors), this
runs the real `run_semantic_duplicates` and `run_semantic_decontamination` on N examples: the first
run embeds every example (the cost that dominates), the second check reuses those cached vectors,
and a rerun of both embeds nothing. Before that, PyTorch and the fast backend (ONNX int8) are timed
on the same sample of example texts, interleaved.

    python -m bench.bench_semantic_run [--examples 10000] [--backend auto] [--rate-sample 256]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_checks import DEFAULT_MBPP, fill, synthetic  # noqa: E402
from bench.common import write_result  # noqa: E402
from core.checks import semantic  # noqa: E402
from core.checks.examples import load_examples  # noqa: E402
from core.store import open_store  # noqa: E402


def backend_rates(texts: list[str]) -> dict:
    """Texts per second of each backend on the same texts (two interleaved rounds, best kept)."""
    from core.embed_model import encode, load_model
    models = {b: load_model(None, b) for b in ("torch", "fast")}
    for m in models.values():
        encode(m, texts[:8])
    best = {b: float("inf") for b in models}
    for _ in range(2):
        for b, m in models.items():
            t0 = time.perf_counter()
            encode(m, texts, 32)
            best[b] = min(best[b], time.perf_counter() - t0)
    return {f"{b}_texts_per_s": round(len(texts) / s, 1) for b, s in best.items()}


def per_10k(seconds: float, n: int) -> float:
    return round(seconds * 10_000 / n, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--rate-sample", type=int, default=256)
    args = ap.parse_args()
    spec = "humaneval" + (f",mbpp={DEFAULT_MBPP}" if Path(DEFAULT_MBPP).exists() else "")
    res: dict = {"examples": args.examples, "benchmarks": spec.split("=")[0]}
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "bench.duckdb")
        fill(store, synthetic(args.examples))
        texts = load_examples(store)["text"].tolist()
        if args.rate_sample:
            res["backend_rates"] = backend_rates(texts[:args.rate_sample])
        t0 = time.perf_counter()
        dups = semantic.run_semantic_duplicates(store, backend=args.backend)
        t1 = time.perf_counter()
        leaks = semantic.run_semantic_decontamination(store, spec, backend=args.backend)
        t2 = time.perf_counter()
        again_d = semantic.run_semantic_duplicates(store, backend=args.backend)
        t3 = time.perf_counter()
        again_l = semantic.run_semantic_decontamination(store, spec, backend=args.backend)
        t4 = time.perf_counter()
        preview, t_preview = semantic.preview_duplicates(store, 0.85), time.perf_counter() - t4
        store.close()
    n = args.examples
    res.update({
        "model_key": dups["model_key"],
        "duplicates_first_run": {"total_s": round(t1 - t0, 1), "embed_s": dups["seconds_embed"],
                                 "search_and_grouping_s": dups["seconds_search"], "embedded": dups["n_embedded"],
                                 "groups": dups["n_groups"], "flagged": dups["n_flagged"]},
        "leaks_after_duplicates": {"total_s": round(t2 - t1, 1), "embed_s": leaks["seconds_embed"],
                                   "search_s": leaks["seconds_search"], "embedded": leaks["n_embedded"],
                                   "problems": leaks["n_problems"], "flagged": leaks["n_flagged"]},
        "rerun_cached": {"duplicates_s": round(t3 - t2, 2), "leaks_s": round(t4 - t3, 2),
                         "embedded": again_d["n_embedded"] + again_l["n_embedded"]},
        "threshold_preview_s": round(t_preview, 2), "preview_groups_at_0.85": preview.get("n_groups"),
        "per_10k_s": {"first_run_both_checks": per_10k(t2 - t0, n), "embedding_share": round(
            (dups["seconds_embed"] + leaks["seconds_embed"]) / max(t2 - t0, 1e-9), 3),
            "rerun_both_checks": per_10k(t4 - t2, n)},
    })
    write_result("semantic_run", res)


if __name__ == "__main__":
    main()
