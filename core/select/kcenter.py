"""k-center greedy, exact and fast: the picks that leave no candidate far from a chosen one.

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
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Sequence

import numpy as np

from core.errors import ShoalError
from core.progress import ProgressFn, check_cancel, report

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
