"""The figures of an evaluation: pass@k, bootstrap intervals and the paired comparison of two runs.

* pass@k: the unbiased estimator of the Codex paper (Chen et al. 2021): with n samples of a
  problem of which c pass, 1 - C(n-c, k) / C(n, k), averaged over problems.
* A run's interval: a seeded percentile bootstrap over problems (each problem's own pass@k is
  one draw), 95 % by default.
* Two runs on the same problems: the paired bootstrap of the mean per-problem difference, and
  McNemar's exact test on the problems where exactly one of the runs succeeds (a problem succeeds
  when at least half its samples pass; with one sample each, when that sample passes).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from math import comb
from typing import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
ALPHA = 0.05


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) passes."""
    if not 0 <= c <= n or n < 1:
        raise ValueError(f"need 0 <= c <= n and n >= 1 (n={n}, c={c})")
    if k < 1 or k > n:
        raise ValueError(f"k must be between 1 and n={n} (k={k})")
    if n - c < k:
        return 1.0
    # the product form of 1 - C(n-c, k) / C(n, k): no huge binomials
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def per_problem_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> np.ndarray:
    """pass@k of each problem from its (n, c)."""
    return np.array([pass_at_k(n, c, k) for n, c in counts], dtype=float)


def bootstrap_ci(scores: Sequence[float] | np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                 alpha: float = ALPHA) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-problem `scores` (problems drawn with
    replacement, `resamples` times, from a seeded generator)."""
    x = np.asarray(scores, dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    means = _resampled_means(x, resamples, seed)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


def _resampled_means(x: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty(resamples, dtype=float)
    block = max(1, 2_000_000 // max(1, x.size))    # bounded memory for large benchmarks
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        out[start:stop] = x[idx].mean(axis=1)
    return out


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b problems only run A solves, c only run B solves; under
    no difference each of the b + c discordant problems goes either way with probability 1/2."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n
    return float(min(1.0, 2 * tail))


@dataclass
class Comparison:
    n_problems: int
    pass_at_1_a: float
    pass_at_1_b: float
    difference: float                 # B - A, in pass@1 (a share, 0..1)
    ci: tuple[float, float]           # paired bootstrap interval of the difference
    bootstrap_p: float                # two-sided: twice the share of resamples on the other side of 0
    only_a: int                       # problems only A solves (McNemar's b)
    only_b: int                       # problems only B solves (McNemar's c)
    both: int
    neither: int
    mcnemar_p: float
    significant: bool                 # both tests agree the difference is not chance (5 % level)
    verdict: str                      # the sentence a person reads

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = list(self.ci)
        return d


def compare_scores(a: Sequence[float], b: Sequence[float], solved_a: Sequence[bool], solved_b: Sequence[bool], *,
                   label_a: str = "A", label_b: str = "B", resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                   alpha: float = ALPHA) -> Comparison:
    """Paired comparison of two runs' per-problem pass@1 (`a`, `b`, same problems in the same order)
    and their per-problem solved flags (for McNemar)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or len(solved_a) != x.size or len(solved_b) != x.size:
        raise ValueError("the two runs must score the same problems")
    if x.size == 0:
        raise ValueError("the two runs share no problem")
    d = y - x
    diffs = _resampled_means(d, resamples, seed)
    lo, hi = (float(v) for v in np.quantile(diffs, [alpha / 2, 1 - alpha / 2]))
    below, above = float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))
    boot_p = min(1.0, 2 * min(below, above)) if d.any() else 1.0
    only_a = sum(1 for p, q in zip(solved_a, solved_b) if p and not q)
    only_b = sum(1 for p, q in zip(solved_a, solved_b) if q and not p)
    both = sum(1 for p, q in zip(solved_a, solved_b) if p and q)
    p_mc = mcnemar_exact(only_a, only_b)
    diff = float(d.mean())
    interval_clear = lo > 0 or hi < 0
    significant = interval_clear and p_mc < alpha
    cmp = Comparison(int(x.size), float(x.mean()), float(y.mean()), diff, (lo, hi), boot_p, only_a, only_b,
                     both, int(x.size) - only_a - only_b - both, p_mc, significant, "")
    cmp.verdict = verdict(cmp, label_a, label_b, alpha)
    return cmp


def _pts(v: float) -> str:
    return f"{v * 100:+.1f}"


def verdict(c: Comparison, label_a: str, label_b: str, alpha: float = ALPHA) -> str:
    """What the comparison means, in words."""
    level = f"{(1 - alpha):.0%}"
    head = (f"{label_b} scores {c.pass_at_1_b:.1%} and {label_a} {c.pass_at_1_a:.1%} pass@1 on the same "
            f"{c.n_problems} problems: a difference of {_pts(c.difference)} points ({level} paired bootstrap "
            f"interval {_pts(c.ci[0])} to {_pts(c.ci[1])}); {c.only_b} problems only {label_b} solves, "
            f"{c.only_a} only {label_a} solves (McNemar exact p = {c.mcnemar_p:.3g}).")
    interval_clear = c.ci[0] > 0 or c.ci[1] < 0
    better, worse = (label_b, label_a) if c.difference > 0 else (label_a, label_b)
    if c.significant:
        return head + f" The difference is real: {better} is better than {worse} (both tests, {alpha:.0%} level)."
    if interval_clear or c.mcnemar_p < alpha:
        return head + (" The evidence is borderline: one test finds a difference, the other does not; "
                       "evaluate on more problems (or more samples) before trusting it.")
    if c.difference == 0 and c.only_a == c.only_b == 0:
        return head + " The two runs solve exactly the same problems: no difference."
    return head + (" The difference is not real at this size: it is within what chance alone gives "
                   "(the interval includes 0). More problems would be needed to tell the runs apart.")
