"""k-center greedy, k=1000 of 100k x 384: Shoal exact and fast vs the straightforward numpy reference.

The reference is the textbook loop: `min_d = minimum(min_d, norm(X - X[i], axis=1))`, argmax.
Its cost per pick is constant (one full pass over X), so by default it is timed over its first
`--ref-steps` picks and scaled to k (say `--ref-steps 1000` for the full run); Shoal's exact picks
are checked against the reference's picks over the steps that ran.

    python -m bench.bench_kcenter [--n 100000] [--k 1000] [--ref-steps 200]
"""
from __future__ import annotations

import argparse

import numpy as np

from bench.common import embedding_like, timed, write_result
from core.select import coverage, kcenter_greedy, kcenter_greedy_fast, random_sample


def numpy_reference(X: np.ndarray, k: int, first: int) -> list[int]:
    picks = [first]
    min_d = np.linalg.norm(X - X[first], axis=1)
    for _ in range(k - 1):
        i = int(np.argmax(min_d))
        picks.append(i)
        min_d = np.minimum(min_d, np.linalg.norm(X - X[i], axis=1))
    return picks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--ref-steps", type=int, default=200)
    a = ap.parse_args()
    X = embedding_like(a.n, a.dim)
    first = int(np.random.default_rng(0).integers(a.n))
    steps = min(a.ref_steps, a.k)
    ref_picks, ref_wall, ref_cpu = timed(lambda: numpy_reference(X, steps, first))
    scale = a.k / steps
    (exact, _), ex_wall, ex_cpu = timed(lambda: kcenter_greedy(X, a.k, seed=0))
    (fast, _), fa_wall, fa_cpu = timed(lambda: kcenter_greedy_fast(X, a.k, seed=0))
    rnd = random_sample(a.n, a.k, seed=0)
    same = list(exact[:steps]) == ref_picks
    res = {
        "data": f"synthetic embedding-like unit vectors, n={a.n}, dim={a.dim}, 200 topics",
        "k": a.k, "reference_steps_timed": steps,
        "reference_seconds_for_k": round(ref_wall * scale, 2),
        "exact_seconds": round(ex_wall, 2), "fast_seconds": round(fa_wall, 2),
        "exact_speedup_ratio": round(ref_wall * scale / ex_wall, 2),
        "fast_speedup_ratio": round(ref_wall * scale / fa_wall, 2),
        "exact_cpu_speedup_ratio": round(ref_cpu * scale / ex_cpu, 2),
        "fast_cpu_speedup_ratio": round(ref_cpu * scale / fa_cpu, 2),
        "exact_same_picks_as_reference": same,
        "fast_overlap_with_exact": round(len(set(fast) & set(exact)) / a.k, 3),
        "coverage_exact": coverage(X, X[exact]), "coverage_fast": coverage(X, X[fast]),
        "coverage_random": coverage(X, X[rnd]),
        "target": "k=1000 of 100k >= 10x faster than the numpy reference",
    }
    res["meets_target"] = bool(min(res["exact_speedup_ratio"], res["fast_speedup_ratio"]) >= 10 and same)
    write_result("kcenter", res)


if __name__ == "__main__":
    main()
