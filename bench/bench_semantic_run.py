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
from core.dataset.checks import semantic, semantic_preview  # noqa: E402
from core.dataset.checks.examples import load_examples  # noqa: E402
from core.store import open_store  # noqa: E402


def backend_rates(texts: list[str]) -> dict:
    """Texts per second of each backend on the same texts (two interleaved rounds, best kept)."""
    from core.embed.model import encode, load_model
    models = {b: load_model(None, b) for b in ("torch", "fast")}
    for m in models.values():
        encode(m, texts[:8])
    best = {b: float("inf") for b in models}
    cpu = {b: float("inf") for b in models}
    for _ in range(2):
        for b, m in models.items():
            t0, c0 = time.perf_counter(), time.process_time()
            encode(m, texts, 32)
            best[b] = min(best[b], time.perf_counter() - t0)
            cpu[b] = min(cpu[b], time.process_time() - c0)
    return {**{f"{b}_texts_per_s": round(len(texts) / s, 1) for b, s in best.items()},
            **{f"{b}_cpu_s_per_1k_texts": round(s * 1000 / len(texts), 1) for b, s in cpu.items()}}


def per_10k(seconds: float, n: int) -> float:
    return round(seconds * 10_000 / n, 1)


class Clock:
    """Wall and CPU seconds (all threads of this process) since the last `lap`: on a shared machine
    the CPU seconds are the work, the wall seconds what this run waited."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> dict:
        w, c = time.perf_counter(), time.process_time()
        out = {"wall_s": round(w - self.wall, 2), "cpu_s": round(c - self.cpu, 2)}
        self.wall, self.cpu = w, c
        return out


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
        clock = Clock()
        dups = semantic.run_semantic_duplicates(store, backend=args.backend)
        t_dups = clock.lap()
        leaks = semantic.run_semantic_decontamination(store, spec, backend=args.backend)
        t_leaks = clock.lap()
        again_d = semantic.run_semantic_duplicates(store, backend=args.backend)
        t_again_d = clock.lap()
        again_l = semantic.run_semantic_decontamination(store, spec, backend=args.backend)
        t_again_l = clock.lap()
        preview = semantic_preview.preview_duplicates(store, 0.85)
        t_preview = clock.lap()
        store.close()
    n = args.examples
    first = {k: t_dups[k] + t_leaks[k] for k in t_dups}
    rerun = {k: t_again_d[k] + t_again_l[k] for k in t_dups}
    embed_wall = dups["seconds_embed"] + leaks["seconds_embed"]
    res.update({
        "model_key": dups["model_key"],
        "duplicates_first_run": {**t_dups, "embed_wall_s": dups["seconds_embed"],
                                 "search_and_grouping_wall_s": dups["seconds_search"], "embedded": dups["n_embedded"],
                                 "groups": dups["n_groups"], "flagged": dups["n_flagged"]},
        "leaks_after_duplicates": {**t_leaks, "embed_wall_s": leaks["seconds_embed"],
                                   "search_wall_s": leaks["seconds_search"], "embedded": leaks["n_embedded"],
                                   "problems": leaks["n_problems"], "flagged": leaks["n_flagged"]},
        "rerun_cached": {"duplicates": t_again_d, "leaks": t_again_l,
                         "embedded": again_d["n_embedded"] + again_l["n_embedded"]},
        "threshold_preview": {**t_preview, "groups_at_0.85": preview.get("n_groups")},
        "per_10k": {"first_run_both_checks_wall_s": per_10k(first["wall_s"], n),
                    "first_run_both_checks_cpu_s": per_10k(first["cpu_s"], n),
                    "embedding_share_of_wall": round(embed_wall / max(first["wall_s"], 1e-9), 3),
                    "rerun_both_checks_wall_s": per_10k(rerun["wall_s"], n),
                    "rerun_both_checks_cpu_s": per_10k(rerun["cpu_s"], n)},
    })
    write_result("semantic_run", res)


if __name__ == "__main__":
    main()
