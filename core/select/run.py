"""Pick a small, diverse core set: k-center greedy (exact and fast), baselines, coverage.

k-center greedy (Sener & Savarese 2018; google/active-learning `kcenter_greedy.py`): start
from an existing selection (or one seed point), then repeatedly add the candidate whose
Euclidean distance to its nearest chosen centre is largest. Ties go to the lowest index.

* `kcenter_greedy` (method ``kcenter``) is exact: the same picks as the plain numpy loop
  (``min_d = minimum(min_d, norm(X - c, axis=1))``, argmax) in float32. Its speed comes from
  skipping work, with bounds that do not depend on the PCA spectrum (`_FarthestPoints`):
  nearest-centre distances are kept as lazy upper bounds and brought up to date only when a
  point could be the farthest one; a cheap k-means++ partition lets the triangle inequality
  skip every centre that cannot come closer to a group's points; the distances left are
  blocked float32 matrix products with a proven error bound, and near-ties within that bound
  are settled with ``norm(x - c)`` itself.
* `kcenter_greedy_fast` (method ``kcenter_fast``) is the (1+eps)-relaxed greedy (eps = 0.05):
  each pick is a point at least 1/(1+eps) as far from the centres as the farthest one. It was
  chosen over greedy on projected or quantized vectors because it works on the true vectors,
  keeps a proven bound (a 2(1+eps) approximation of the best k-center radius, against 2 for
  the exact greedy) and measured within a few percent of exact's max distance, while a PCA-64
  greedy measured no better than random on real vectors. It runs the same engine and stops a
  step as soon as such a point is known, instead of settling every near-top point.
* Baselines: `random_sample` and `stratified_sample` (random within each cluster, in
  proportion to cluster size).
* `coverage`: mean and max distance from every candidate to its nearest selected point
  (lower is better: the selection leaves no region far from a chosen example).
"""
from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Sequence

import duckdb
import numpy as np
import pandas as pd

from core.team import members as team
from core.errors import ShoalError
from core.progress import ProgressFn, check_cancel, report
from core.store import Store, register

METHODS = ("kcenter", "kcenter_fast", "random", "stratified")
BASELINES = ("random", "stratified")  # measured next to every new selection: one pass over the pool each
EXACT_BASELINE_WORK = 20_000_000  # candidates x budget up to which exact k-center is shown too (about a second)


# --------------------------------------------------------------------------- algorithms

_UNIT = 2.0 ** -24  # float32 unit roundoff
GROUP_SIZE = 256    # points per group of the partition that the pruning works on
FAST_EPSILON = 0.05


@contextmanager
def _single_thread_blas():
    """The greedy runs many small matrix products: one BLAS thread is faster for those (and
    much faster on a shared machine, where spinning BLAS threads wait on each other: 10x
    measured on 2 busy cores); its few large products lose at most the second core."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _kmeanspp_seeds(rows: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (D^2 sampling): m spread-out rows, no Lloyd iterations."""
    n = len(rows)
    sq = np.einsum("ij,ij->i", rows, rows)
    idx = [int(rng.integers(n))]
    d2 = np.maximum(sq + sq[idx[0]] - 2.0 * (rows @ rows[idx[0]]), 0.0)
    for _ in range(min(m, n) - 1):
        total = float(d2.sum())
        i = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        idx.append(i)
        np.minimum(d2, np.maximum(sq + sq[i] - 2.0 * (rows @ rows[i]), 0.0), out=d2)
    return rows[np.array(idx)]


def _nearest_seed(rows: np.ndarray, seeds: np.ndarray, chunk: int = 16384) -> np.ndarray:
    s_sq = np.einsum("ij,ij->i", seeds, seeds)
    out = np.empty(len(rows), dtype=np.int64)
    for s in range(0, len(rows), chunk):  # |x|^2 is common to all seeds: argmin |s|^2 - 2 x.s
        out[s:s + chunk] = np.argmin(s_sq[None, :] - 2.0 * (rows[s:s + chunk] @ seeds.T), axis=1)
    return out


def partition_groups(X: np.ndarray, group_size: int = GROUP_SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A cheap two-level k-means++ partition into groups of about `group_size` points.

    About sqrt(n / group_size) coarse seeds, then as many sub-seeds inside each coarse group;
    every point goes to its nearest seed (two matrix products of n x ~sqrt(groups)). Returns
    (order, starts): X[order] lists the groups one after another, group g is
    order[starts[g]:starts[g + 1]]. Any partition keeps k-center exact; a tight one prunes more.
    """
    n = len(X)
    rng = np.random.default_rng(seed)
    n_groups = max(1, n // max(1, group_size))
    n_top = max(1, round(float(np.sqrt(n_groups))))
    sample = X[rng.choice(n, min(n, max(512, 16 * n_top)), replace=False)]
    top = _nearest_seed(X, _kmeanspp_seeds(sample, n_top, rng)) if n_top > 1 else np.zeros(n, np.int64)
    labels = np.empty(n, dtype=np.int64)
    used = 0
    for members in np.split(np.argsort(top, kind="stable"), np.cumsum(np.bincount(top, minlength=n_top))[:-1]):
        if not len(members):
            continue
        n_sub = max(1, round(len(members) / group_size))
        rows = X[members]
        if n_sub > 1:
            pool = rows[rng.choice(len(rows), min(len(rows), max(512, 16 * n_sub)), replace=False)]
            labels[members] = used + _nearest_seed(rows, _kmeanspp_seeds(pool, n_sub, rng))
        else:
            labels[members] = used
        used += n_sub
    order = np.argsort(labels, kind="stable")
    sizes = np.bincount(labels, minlength=used)
    return order, np.concatenate([[0], np.cumsum(sizes[sizes > 0])])


class _FarthestPoints:
    """State of a farthest-point (k-center greedy) run over X, with work skipped two ways.

    * Lazily: each point keeps U, its squared distance to the nearest centre among the first
      T centres (an upper bound once more centres exist). A point is brought up to date only
      when its bound reaches the top, so most points are never compared with most centres.
    * By the triangle inequality: X is split into groups (`partition_groups`) with centroid m
      and, per point, s = |x - m|. A centre c cannot come closer to x than |c - m| - s, so a
      centre with |c - m| - s >= sqrt(U) is skipped for x; a group keeps the max of its U,
      so the farthest point is found in one group.
    The distances that must be computed come from blocked float32 matrix products on centred
    vectors (|x|^2 + |c|^2 - 2 x.c); `err2` bounds their error against the plain float32
    ``norm(x - c)``. Near-ties within that bound are settled with ``norm(x - c)`` itself, so
    the picks are those of the plain loop, ties to the lowest index.
    """

    def __init__(self, X: np.ndarray, capacity: int, extra_norm: float = 0.0, seed: int = 0,
                 group_size: int = GROUP_SIZE):
        self.X = X
        n, d = X.shape
        self.order, self.starts = partition_groups(X, group_size, seed)
        self.pos_of = np.empty(n, dtype=np.int64)
        self.pos_of[self.order] = np.arange(n)
        sizes = np.diff(self.starts)
        self.G = len(sizes)
        self.gid = np.repeat(np.arange(self.G), sizes)
        self.mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.Xs = X[self.order]
        self.Xs -= self.mean
        self.sq = np.einsum("ij,ij->i", self.Xs, self.Xs)
        big = max(float(np.sqrt(self.sq.max())), extra_norm)
        # |error| of a squared distance from the expansion, plus that of the plain norm (x - c)
        self.err2 = np.float32(2.0 * (d + 8) * _UNIT * (2.0 * big) ** 2 + 1e-30)
        self.cent = np.stack([self.Xs[a:b].mean(axis=0) for a, b in zip(self.starts[:-1], self.starts[1:])])
        self.cent_sq = np.einsum("ij,ij->i", self.cent, self.cent)
        s2 = np.empty(n, np.float32)
        for s in range(0, n, 16384):
            g = self.gid[s:s + 16384]
            s2[s:s + 16384] = np.einsum("ij,ij->i", self.Xs[s:s + 16384], self.cent[g])
        s2 = self.sq + self.cent_sq[self.gid] - 2.0 * s2
        self.s_hi = np.sqrt(np.maximum(s2, 0.0) + self.err2) * np.float32(1 + 1e-5)
        self.C = np.empty((capacity, d), np.float32)        # centres, centred
        self.C_orig = np.empty((capacity, d), np.float32)   # centres as given (for the exact recheck)
        self.csq = np.empty(capacity, np.float32)
        self.E = np.empty((capacity, self.G), np.float32)   # lower bound of |centre - centroid|
        self.j = 0
        self.U = np.full(n, np.inf, np.float32)
        self.A = np.full(n, -1, np.int64)                    # nearest centre found so far
        self.T = np.zeros(n, np.int32)
        self.gmax = np.full(self.G, np.inf, np.float32)
        self.pairs = 0                                       # point-centre distances computed

    def add_centre(self, vec: np.ndarray) -> None:
        j = self.j
        self.C_orig[j] = vec
        self.C[j] = vec - self.mean
        self.csq[j] = float(self.C[j] @ self.C[j])
        e2 = self.cent_sq + self.csq[j] - 2.0 * (self.cent @ self.C[j])
        self.E[j] = np.sqrt(np.maximum(e2 - self.err2, 0.0)) * np.float32(1 - 1e-5)
        self.j = j + 1

    def mark_picked(self, pos: int) -> None:
        self.U[pos] = -np.inf
        self.A[pos] = self.j - 1

    def exact_group_maxima(self) -> None:
        self.gmax[:] = np.maximum.reduceat(self.U, self.starts[:-1])

    def refresh(self, S: np.ndarray) -> None:
        """Bring the points at sorted positions S up to date with every centre."""
        j = self.j
        Tn = self.T[S]
        stale = Tn < j
        S, Tn = S[stale], Tn[stale]
        if not len(S):
            return
        by_t = np.argsort(Tn, kind="stable")
        Ts = Tn[by_t]
        s = 0
        while s < len(S):  # points seen up to about the same centre share one block of centres
            t0 = int(Ts[s])
            e = int(np.searchsorted(Ts, t0 + max(8, (j - t0) // 4), side="right"))
            rows = np.sort(S[by_t[s:e]])
            s = e
            step = max(256, 4_000_000 // (j - t0))
            for c in range(0, len(rows), step):
                self._refresh_block(rows[c:c + step], t0, j)
        self.T[S] = j
        groups = np.unique(self.gid[S])
        if len(groups) > 16:
            self.exact_group_maxima()
        else:  # otherwise gmax stays an upper bound: `next_pick` tightens it where it matters
            for g in groups:
                self.gmax[g] = self.U[self.starts[g]:self.starts[g + 1]].max()

    def _refresh_block(self, rows: np.ndarray, t0: int, t1: int) -> None:
        U = self.U[rows]
        g = self.gid[rows]
        firsts = np.concatenate([[0], np.flatnonzero(np.diff(g)) + 1])
        reach = np.sqrt(np.maximum(U, 0.0) + self.err2) * np.float32(1 + 1e-5) + self.s_hi[rows]
        reach = np.maximum.reduceat(reach, firsts)
        cols = t0 + np.flatnonzero((self.E[t0:t1][:, g[firsts]] < reach[None, :]).any(axis=1))
        if not len(cols):
            return
        D2 = self.sq[rows, None] + self.csq[cols][None, :] - 2.0 * (self.Xs[rows] @ self.C[cols].T)
        best = D2.argmin(axis=1)
        val = D2[np.arange(len(rows)), best]
        better = val < U
        self.U[rows[better]] = val[better]
        self.A[rows[better]] = cols[best[better]]
        self.pairs += len(rows) * len(cols)

    def at_least(self, lo: float) -> np.ndarray:
        """Sorted positions whose bound U is >= lo."""
        groups = np.flatnonzero(self.gmax >= lo)
        if len(groups) > 32:
            return np.flatnonzero(self.U >= lo)
        st = self.starts
        return np.concatenate([st[g] + np.flatnonzero(self.U[st[g]:st[g + 1]] >= lo) for g in groups])

    def next_pick(self, relax: float = 1.0, batch: int = 512) -> int:
        """Position of the farthest point. relax > 1: any point within that factor of the farthest."""
        j, U, T, gmax, st = self.j, self.U, self.T, self.gmax, self.starts
        band = 2.0 * float(self.err2)
        relax_sq = relax * relax
        best, best_pos = -np.inf, -1  # the largest up-to-date distance seen in this step
        while True:
            g = int(np.argmax(gmax))
            Ug = U[st[g]:st[g + 1]]
            t = int(np.argmax(Ug))
            if Ug[t] < gmax[g]:  # the group's bound was loose: tighten it and look again
                gmax[g] = Ug[t]
                continue
            if best_pos >= 0 and best * relax_sq >= gmax[g] and relax > 1.0:
                return best_pos
            if T[st[g] + t] == j:
                if relax > 1.0:
                    return int(st[g] + t)
                cont = self.at_least(float(Ug[t]) - band)
                if (T[cont] < j).any():
                    self.refresh(cont)
                    continue
                return int(cont[0]) if len(cont) == 1 else self._settle_tie(cont)
            if best_pos < 0:  # first look in this step: the top group, above the runner-up group
                top = gmax[g]
                gmax[g] = -np.inf
                second = float(gmax.max())
                gmax[g] = top
                S = st[g] + np.flatnonzero((Ug >= second - band) & (T[st[g]:st[g + 1]] < j))
            else:  # then every stale point that could still beat the best one seen
                S = self.at_least(best * relax_sq - band)  # only these can beat (or block) the best
                S = S[T[S] < j]
                if len(S) > batch:
                    S = np.sort(S[np.argpartition(-U[S], batch)[:batch]])
            self.refresh(S)
            k = int(np.argmax(U[S]))
            if U[S[k]] > best:
                best, best_pos = float(U[S[k]]), int(S[k])

    def _settle_tie(self, cont: np.ndarray) -> int:
        """Among near-tied points, the one the plain float32 loop takes (lowest index on ties).

        Each point's value is recomputed as min ``norm(x - c)`` over the centres c whose
        approximate distance is within the error bound of its nearest one.
        """
        D2 = self.sq[cont, None] + self.csq[None, :self.j] - 2.0 * (self.Xs[cont] @ self.C[:self.j].T)
        row, col = np.nonzero(D2 <= D2.min(axis=1, keepdims=True) + 2.0 * self.err2)  # row-major order
        dist = np.linalg.norm(self.C_orig[col] - self.X[self.order[cont[row]]], axis=1)
        value = np.minimum.reduceat(dist, np.concatenate([[0], np.flatnonzero(np.diff(row)) + 1]))
        idx = self.order[cont]
        winner = np.lexsort((idx, -value))[0]  # largest value, then lowest index
        return int(cont[winner])

    def distances(self, chunk: int = 16384) -> np.ndarray:
        """Every point's float32 distance to its nearest centre, in the original order."""
        self.refresh(np.arange(len(self.U)))
        out = np.empty(len(self.U), dtype=np.float32)
        for s in range(0, len(out), chunk):
            idx = self.order[s:s + chunk]
            out[idx] = np.linalg.norm(self.X[idx] - self.C_orig[self.A[s:s + chunk]], axis=1)
        return out


def _first_pick(n: int, seed: int, first: int | None) -> int:
    if first is not None:
        if not 0 <= first < n:
            raise ShoalError(f"Seed point {first} is not one of the {n} candidates.")
        return int(first)
    return int(np.random.default_rng(seed).integers(n))


def _check_budget(n: int, budget: int, already: Sequence[int]) -> list[int]:
    already = [int(i) for i in already]
    if budget < 0:
        raise ShoalError("The budget must be a positive number of snippets.")
    left = n - len(set(already))
    if budget > left:
        raise ShoalError(f"Budget {budget} is larger than the {left} candidates left to pick from.")
    return already


def _greedy(X: np.ndarray, budget: int, already: Sequence[int] | None, extra_centres: np.ndarray | None,
            seed: int, first: int | None, relax: float, distances: bool, group_size: int,
            progress: ProgressFn | None, cancel: threading.Event | None, label: str):
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = len(X)
    already = _check_budget(n, budget, already if already is not None else [])
    extra = np.zeros((0, X.shape[1]), np.float32) if extra_centres is None else \
        np.asarray(extra_centres, dtype=np.float32).reshape(-1, X.shape[1])
    mean = X.mean(axis=0) if n else 0.0
    extra_norm = float(np.linalg.norm(extra - mean, axis=1).max()) if len(extra) else 0.0
    picks: list[int] = []
    with _single_thread_blas():
        fp = _FarthestPoints(X, len(already) + len(extra) + budget, extra_norm, seed, group_size)
        for i in already:
            fp.add_centre(X[i])
        for vec in extra:
            fp.add_centre(vec)
        if fp.j:  # one pass over X for the starting centres
            fp.refresh(np.arange(n))
            for i in set(already):
                fp.mark_picked(int(fp.pos_of[i]))
            fp.exact_group_maxima()
        for step in range(budget):
            pos = fp.next_pick(relax) if fp.j else int(fp.pos_of[_first_pick(n, seed, first)])
            picks.append(int(fp.order[pos]))
            fp.add_centre(X[picks[-1]])
            fp.mark_picked(pos)
            if fp.j == 1:
                fp.refresh(np.arange(n))
                fp.exact_group_maxima()
            if step % 25 == 0 or step == budget - 1:
                check_cancel(cancel)
                report(progress, step + 1, budget, label)
        if not distances:
            return np.array(picks, dtype=np.int64), None
        min_d = fp.distances() if fp.j else np.full(n, np.inf, dtype=np.float32)
    return np.array(picks, dtype=np.int64), min_d


def kcenter_greedy(X: np.ndarray, budget: int, already: Sequence[int] | None = None,
                   extra_centres: np.ndarray | None = None, seed: int = 0, first: int | None = None,
                   distances: bool = True, group_size: int = GROUP_SIZE, progress: ProgressFn | None = None,
                   cancel: threading.Event | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Exact k-center greedy. Returns (picked indices in order, final nearest-centre distances).

    `already`: indices of X that are centres from the start (an existing selection);
    `extra_centres`: vectors outside X that also count as centres (never picked).
    With neither, the first pick is `first` or a random point drawn with `seed`.
    `distances=False` skips the final distances (None is returned in their place).
    """
    return _greedy(X, budget, already, extra_centres, seed, first, 1.0, distances, group_size,
                   progress, cancel, "k-center greedy")


def kcenter_greedy_fast(X: np.ndarray, budget: int, already: Sequence[int] | None = None,
                        extra_centres: np.ndarray | None = None, seed: int = 0, first: int | None = None,
                        epsilon: float = FAST_EPSILON, distances: bool = True, group_size: int = GROUP_SIZE,
                        progress: ProgressFn | None = None,
                        cancel: threading.Event | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(1+epsilon)-relaxed k-center greedy: each pick is a point whose distance to its nearest
    centre is at least 1/(1+epsilon) of the largest such distance, on the true vectors.

    Same engine and pruning as `kcenter_greedy`, but a step stops as soon as a point within
    that factor of every other point's bound is known, instead of bringing all near-top points
    up to date and settling ties exactly. The greedy 2-approximation becomes 2(1+epsilon).
    Returns (picked indices, true nearest-centre distances).
    """
    if epsilon <= 0:
        raise ShoalError("epsilon must be positive (use kcenter_greedy for the exact greedy).")
    return _greedy(X, budget, already, extra_centres, seed, first, 1.0 + epsilon, distances, group_size,
                   progress, cancel, "k-center greedy (fast)")


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


# --------------------------------------------------------------------------- store side

@dataclass
class Candidates:
    """The pool a selection is drawn from: snippet ids, their vectors, and their clusters."""
    ids: list[str]
    X: np.ndarray
    clusters: np.ndarray | None  # cluster per candidate (None when no map is used)
    model: str
    map_id: int | None


def load_candidates(store: Store, model: str | None = None, map_id: int | None = None,
                    clusters: Sequence[int] | None = None, ids: Sequence[str] | None = None) -> Candidates:
    """Embedded snippets, optionally restricted to clusters of a map and/or a set of ids."""
    from core.embed.run import load_embeddings
    from core.maps.build import get_map

    if map_id is not None or clusters:
        m = get_map(store, map_id)  # latest map when map_id is None
        map_id = int(m["id"])
        if model is None:
            model = m["model"]
    emb_ids, X, model = load_embeddings(store, model)
    labels = None
    if map_id is not None:
        pts = store.df("SELECT snippet_id, cluster FROM map_points WHERE map_id = ?", [map_id])
        cl = dict(zip(pts["snippet_id"], pts["cluster"].astype(int)))
        keep = [j for j, s in enumerate(emb_ids) if s in cl]
        emb_ids = [emb_ids[j] for j in keep]
        X = X[keep]
        labels = np.array([cl[s] for s in emb_ids], dtype=np.int64)
        if clusters:
            wanted = {int(c) for c in clusters}
            unknown = wanted - set(labels.tolist())
            if unknown:
                raise ShoalError(f"Map {map_id} has no cluster {sorted(unknown)}; "
                                 f"its clusters are {sorted(set(labels.tolist()))}.")
            mask = np.isin(labels, list(wanted))
            emb_ids = [s for s, k in zip(emb_ids, mask) if k]
            X, labels = X[mask], labels[mask]
    if ids is not None:
        wanted_ids = set(ids)
        mask = np.array([s in wanted_ids for s in emb_ids], dtype=bool)
        if not mask.any():
            raise ShoalError("None of the given snippet ids has an embedding in this pool.")
        emb_ids = [s for s, k in zip(emb_ids, mask) if k]
        X = X[mask]
        labels = labels[mask] if labels is not None else None
    if not emb_ids:
        raise ShoalError("No candidate snippets: the chosen clusters or ids are empty.")
    return Candidates(emb_ids, X, labels, model, map_id)


def selection_ids(store: Store, name: str) -> list[str]:
    row = store.one("SELECT id FROM selections WHERE name = ?", [name])
    if row is None:
        raise ShoalError(f"No selection named {name!r}.")
    return [r[0] for r in store.execute(
        "SELECT snippet_id FROM selection_items WHERE selection_id = ? ORDER BY rank", [row["id"]]).fetchall()]


@dataclass
class SelectionResult:
    id: int
    name: str
    method: str
    budget: int
    n_items: int
    n_candidates: int
    coverage_mean: float | None
    coverage_max: float | None
    seconds: float
    model: str
    map_id: int | None
    snippet_ids: list[str] = field(repr=False, default_factory=list)
    baselines: dict = field(default_factory=dict)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("snippet_ids")
        return d


def pick_with_distances(method: str, cands: Candidates, budget: int, already: list[int],
                        extra: np.ndarray | None, seed: int, progress: ProgressFn | None = None,
                        cancel: threading.Event | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(indices into `cands` chosen by `method`, excluding `already`; each candidate's distance
    to its nearest centre when the method computed them on the way, else None)."""
    if method in ("kcenter", "kcenter_fast"):
        fn = kcenter_greedy if method == "kcenter" else kcenter_greedy_fast
        return fn(cands.X, budget, already=already, extra_centres=extra, seed=seed, progress=progress,
                  cancel=cancel)
    if method == "random":
        return random_sample(len(cands.X), budget, seed=seed, exclude=already), None
    if method == "stratified":
        if cands.clusters is None:
            raise ShoalError("Stratified sampling needs a map (clusters): build one with `shoal map`.")
        return stratified_sample(cands.clusters, budget, seed=seed, exclude=already), None
    raise ShoalError(f"Unknown selection method {method!r}; use one of {', '.join(METHODS)}.")


def pick(method: str, cands: Candidates, budget: int, already: list[int], extra: np.ndarray | None,
         seed: int, progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> np.ndarray:
    """Indices into `cands` chosen by `method` (excluding `already`)."""
    return pick_with_distances(method, cands, budget, already, extra, seed, progress, cancel)[0]


def _coverage_of(cands: Candidates, already: list[int], idx: np.ndarray, extra: np.ndarray | None,
                 min_d: np.ndarray | None) -> dict:
    """Coverage of `already` + `idx` (+ outside centres) over the pool: from the distances the
    method computed, or one pass of blocked matrix products."""
    if min_d is not None:
        return {"coverage_mean": float(min_d.mean()), "coverage_max": float(min_d.max())}
    centres = cands.X[np.concatenate([np.array(already, dtype=np.int64), np.asarray(idx, dtype=np.int64)])]
    if extra is not None:
        centres = np.vstack([centres, extra])
    return coverage(cands.X, centres)


def baseline_methods(method: str, n_candidates: int, budget: int, has_clusters: bool) -> list[str]:
    """The baselines measured next to a `method` selection: random, stratified (with a map) and
    exact k-center only when it is cheap; never the method itself."""
    out = [m for m in BASELINES if m != method and (m != "stratified" or has_clusters)]
    if method != "kcenter" and n_candidates * budget <= EXACT_BASELINE_WORK:
        out.append("kcenter")
    return out


def select(store: Store, name: str, budget: int, method: str = "kcenter", model: str | None = None,
           map_id: int | None = None, clusters: Sequence[int] | None = None, ids: Sequence[str] | None = None,
           extend: str | None = None, seed: int = 0, replace: bool = False, baselines: bool = True,
           actor: str | None = None, progress: ProgressFn | None = None,
           cancel: threading.Event | None = None) -> SelectionResult:
    """Choose `budget` snippets from the candidates and store them as selection `name`.

    `extend`: the name of an existing selection whose items are kept first and act as
    centres. Coverage is measured over the candidates against every item of the result
    (k-center computes it on the way); with `baselines`, the random and (with a map)
    stratified baselines of the same budget are measured too, one pass each, plus exact
    k-center when it is cheap (`baseline_methods`); they are not stored as selections.
    """
    team.authorize(store, actor, "select", target=name, audit_allowed=False)    # a selection is audited below
    name = (name or "").strip()
    if not name:
        raise ShoalError("Give the selection a name.")
    if method not in METHODS:
        raise ShoalError(f"Unknown selection method {method!r}; use one of {', '.join(METHODS)}.")
    if budget is None or int(budget) <= 0:
        raise ShoalError("The budget must be a positive number of snippets.")
    budget = int(budget)
    taken = f"A selection named “{name}” already exists. Pick another name (or replace it)."
    existing = store.one("SELECT id FROM selections WHERE name = ?", [name])
    if existing and not replace:
        raise ShoalError(taken)
    if map_id is None and method == "stratified":
        from core.maps.build import get_map
        map_id = int(get_map(store)["id"])
    cands = load_candidates(store, model=model, map_id=map_id, clusters=clusters, ids=ids)
    base_ids = selection_ids(store, extend) if extend else []
    pos = {s: j for j, s in enumerate(cands.ids)}
    already = [pos[s] for s in base_ids if s in pos]
    outside = [s for s in base_ids if s not in pos]
    extra = None
    if outside:
        from core.embed.run import load_embeddings
        o_ids, o_X, _ = load_embeddings(store, cands.model, snippet_ids=outside)
        extra = o_X if len(o_ids) else None
    t0 = time.perf_counter()
    chosen, min_d = pick_with_distances(method, cands, budget, already, extra, seed, progress, cancel)
    seconds = time.perf_counter() - t0
    new_ids = [cands.ids[i] for i in chosen]
    all_ids = base_ids + new_ids
    cov = _coverage_of(cands, already, chosen, extra, min_d)
    base_cov: dict = {}
    t1 = time.perf_counter()
    if baselines:  # each one pass over the pool (exact k-center only when cheap): never a second selection
        for bm in baseline_methods(method, len(cands.ids), budget, cands.clusters is not None):
            idx, d = pick_with_distances(bm, cands, budget, already, extra, seed)
            base_cov[bm] = _coverage_of(cands, already, idx, extra, d)
    params = {"seed": seed, "clusters": sorted(int(c) for c in clusters) if clusters else None,
              "n_ids": len(ids) if ids is not None else None, "extend": extend,
              "seconds": round(seconds, 4), "baselines": base_cov,
              "baseline_seconds": round(time.perf_counter() - t1, 4)}
    def save(cur) -> int:
        if existing:
            cur.execute("DELETE FROM selection_items WHERE selection_id = ?", [existing["id"]])
            cur.execute("DELETE FROM selections WHERE id = ?", [existing["id"]])
        new_id = cur.execute(
            "INSERT INTO selections(name, method, map_id, model, params, budget, n_items, n_candidates, "
            "coverage_mean, coverage_max) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [name, method, cands.map_id, cands.model, json.dumps(params), budget, len(all_ids),
             len(cands.ids), cov["coverage_mean"], cov["coverage_max"]]).fetchone()[0]
        items = pd.DataFrame({"selection_id": new_id, "snippet_id": all_ids,
                              "rank": np.arange(len(all_ids), dtype=np.int32)})
        register(cur, "_sel_items", items)
        cur.execute("INSERT INTO selection_items SELECT selection_id, snippet_id, rank FROM _sel_items")
        cur.unregister("_sel_items")
        return new_id

    try:
        sel_id = store.write(save)
    except duckdb.ConstraintException:      # saved a moment ago by another tab, process or a second click
        raise ShoalError(taken) from None
    store.audit("select", "selection", sel_id, after={"name": name, "method": method, "budget": budget,
                                                       "n_items": len(all_ids)}, actor=actor)
    return SelectionResult(int(sel_id), name, method, budget, len(all_ids), len(cands.ids),
                           cov["coverage_mean"], cov["coverage_max"], seconds, cands.model, cands.map_id,
                           all_ids, base_cov)


def list_selections(store: Store) -> pd.DataFrame:
    return store.df("SELECT id, name, method, map_id, model, budget, n_items, n_candidates, coverage_mean, "
                    "coverage_max, params, created_at FROM selections ORDER BY id DESC")


def compare_coverage(store: Store, selection_id: int) -> pd.DataFrame:
    """Coverage of a stored selection next to the baselines measured with it (same pool, same budget)."""
    sel = store.one("SELECT * FROM selections WHERE id = ?", [selection_id])
    if sel is None:
        raise ShoalError(f"No selection with id {selection_id}.")
    params = json.loads(sel["params"]) if sel["params"] else {}
    rows = [{"method": f"{sel['method']} (this selection)", "coverage_mean": sel["coverage_mean"],
             "coverage_max": sel["coverage_max"]}]
    for m, c in (params.get("baselines") or {}).items():
        rows.append({"method": m, "coverage_mean": c["coverage_mean"], "coverage_max": c["coverage_max"]})
    out = pd.DataFrame(rows)
    out["picks"] = sel["n_items"]
    out["candidates"] = sel["n_candidates"]
    return out
