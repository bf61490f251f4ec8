"""The baselines a selection is measured against, and the measure itself.

* `random_sample` and `stratified_sample` (random within each cluster, in proportion to
  cluster size).
* `coverage`: mean and max distance from every candidate to its nearest selected point
  (lower is better: the selection leaves no region far from a chosen example).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from core.errors import ShoalError


def random_sample(n: int, budget: int, seed: int = 0, exclude: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    pool = np.setdiff1d(np.arange(n), np.asarray(exclude if exclude is not None else [], dtype=np.int64))
    if budget > len(pool):
        raise ShoalError(f"Budget {budget} is larger than the {len(pool)} candidates left to pick from.")
    return np.random.default_rng(seed).choice(pool, size=budget, replace=False).astype(np.int64)


def stratified_sample(labels: np.ndarray, budget: int, seed: int = 0,
                      exclude: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Random picks within each cluster, in proportion to its size (largest remainders)."""
    labels = np.asarray(labels)
    free = np.ones(len(labels), dtype=bool)
    if exclude is not None and len(exclude):
        free[np.asarray(exclude, dtype=np.int64)] = False
    if budget > int(free.sum()):
        raise ShoalError(f"Budget {budget} is larger than the {int(free.sum())} candidates left to pick from.")
    groups = sorted(set(labels[free].tolist()))
    members = {g: np.flatnonzero(free & (labels == g)) for g in groups}
    sizes = np.array([len(members[g]) for g in groups], dtype=np.float64)
    quota = sizes / sizes.sum() * budget
    take = np.floor(quota).astype(int)
    for j in np.argsort(-(quota - take), kind="stable")[: budget - int(take.sum())]:
        take[j] += 1
    rng = np.random.default_rng(seed)
    out = [rng.choice(members[g], size=int(t), replace=False) for g, t in zip(groups, take) if t]
    picks = np.concatenate(out) if out else np.array([], dtype=np.int64)
    return rng.permutation(picks).astype(np.int64)


def nearest_distances(X: np.ndarray, centres: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Distance from each row of X to its nearest row of `centres` (chunked matrix products)."""
    X = np.asarray(X, dtype=np.float32)
    C = np.asarray(centres, dtype=np.float32)
    if len(C) == 0:
        return np.full(len(X), np.inf, dtype=np.float32)
    c_sq = np.einsum("ij,ij->i", C, C)
    out = np.empty(len(X), dtype=np.float32)
    for s in range(0, len(X), chunk):
        block = X[s:s + chunk]
        d = np.einsum("ij,ij->i", block, block)[:, None] + c_sq[None, :] - 2.0 * (block @ C.T)
        out[s:s + chunk] = np.sqrt(np.maximum(d.min(axis=1), 0.0))
    return out


def coverage(X: np.ndarray, centres: np.ndarray) -> dict:
    """Mean and max distance from every candidate to its nearest selected point."""
    if len(X) == 0:
        return {"coverage_mean": None, "coverage_max": None}
    d = nearest_distances(X, centres)
    return {"coverage_mean": float(d.mean()), "coverage_max": float(d.max())}


def coverage_of_picks(X: np.ndarray, already: Sequence[int], idx: np.ndarray, extra: np.ndarray | None = None,
                      min_d: np.ndarray | None = None) -> dict:
    """Coverage of `already` + `idx` (+ `extra`, centres outside the pool) over X: from the distances
    the method computed on the way (`min_d`), or one pass of blocked matrix products."""
    if min_d is not None:
        return {"coverage_mean": float(min_d.mean()), "coverage_max": float(min_d.max())}
    centres = X[np.concatenate([np.array(already, dtype=np.int64), np.asarray(idx, dtype=np.int64)])]
    if extra is not None and len(extra):
        centres = np.vstack([centres, extra])
    return coverage(X, centres)
