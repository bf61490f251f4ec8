"""pass@k, bootstrap intervals and McNemar's exact test against hand computations."""
from __future__ import annotations

from math import comb

import numpy as np
import pytest

from core.evaluate.stats import bootstrap_ci, compare_scores, mcnemar_exact, pass_at_k


def test_pass_at_k_is_the_codex_estimator():
    assert pass_at_k(1, 1, 1) == 1.0 and pass_at_k(1, 0, 1) == 0.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - 21 / 45)        # 1 - C(7,2)/C(10,2)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)       # 1 - C(7,5)/C(10,5)
    assert pass_at_k(10, 8, 3) == 1.0                               # fewer than k wrong samples
    assert pass_at_k(5, 0, 5) == 0.0
    for n, c, k in [(20, 4, 7), (200, 13, 100), (50, 49, 10)]:
        assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))
    with pytest.raises(ValueError):
        pass_at_k(5, 2, 6)


def test_mcnemar_exact_by_hand():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1, 6) == pytest.approx(2 * (comb(7, 0) + comb(7, 1)) / 2 ** 7)   # 0.125
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 2 ** 6)                               # 0.03125
    assert mcnemar_exact(6, 0) == mcnemar_exact(0, 6)
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 9) == pytest.approx(2 / 512)


def test_bootstrap_by_hand_and_against_a_plain_loop():
    # two problems, one solved: a resample's mean is 0, 1/2 or 1 with chances 1/4, 1/2, 1/4
    lo, hi = bootstrap_ci([0.0, 1.0], resamples=20_000, seed=3)
    assert (lo, hi) == (0.0, 1.0)
    assert bootstrap_ci([0.4] * 12) == pytest.approx((0.4, 0.4))
    scores = np.array([1.0] * 7 + [0.0] * 13)
    rng = np.random.default_rng(0)                                   # the textbook loop, same seed
    means = [scores[rng.integers(0, 20, size=20)].mean() for _ in range(10_000)]
    assert bootstrap_ci(scores, seed=0) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    lo, hi = bootstrap_ci(scores, seed=0)
    se = (0.35 * 0.65 / 20) ** 0.5                                   # the normal approximation, roughly
    assert lo == pytest.approx(0.35 - 1.96 * se, abs=0.06) and hi == pytest.approx(0.35 + 1.96 * se, abs=0.06)
    assert bootstrap_ci(scores, seed=0) == bootstrap_ci(scores, seed=0)   # seeded: the same every time


def _flags(solved: set[int], n: int = 20) -> list[bool]:
    return [i in solved for i in range(n)]


def test_a_small_gain_is_called_chance_and_a_large_one_real():
    a = _flags(set(range(7)))
    small = compare_scores([float(x) for x in a], [float(x) for x in _flags(set(range(10)))], a,
                           _flags(set(range(10))), label_a="base", label_b="tuned")
    assert (small.only_a, small.only_b, small.both, small.neither) == (0, 3, 7, 10)
    assert small.mcnemar_p == pytest.approx(0.25)
    assert small.difference == pytest.approx(0.15)
    assert not small.significant and "not real" in small.verdict and "tuned" in small.verdict
    big_b = _flags(set(range(16)))
    big = compare_scores([float(x) for x in a], [float(x) for x in big_b], a, big_b, label_a="base", label_b="tuned")
    assert big.mcnemar_p == pytest.approx(2 / 512)
    assert big.ci[0] > 0 and big.significant
    assert "real: tuned is better than base" in big.verdict
    same = compare_scores([float(x) for x in a], [float(x) for x in a], a, a)
    assert same.mcnemar_p == 1.0 and same.bootstrap_p == 1.0 and "same problems" in same.verdict


def test_paired_bootstrap_interval_by_hand():
    # every problem differs by exactly +0.5: every resample's mean difference is 0.5
    cmp = compare_scores([0.0, 0.5, 0.0], [0.5, 1.0, 0.5], [False, True, False], [True, True, True])
    assert cmp.ci == pytest.approx((0.5, 0.5)) and cmp.difference == pytest.approx(0.5)
    assert cmp.bootstrap_p == 0.0 and cmp.only_b == 2 and cmp.mcnemar_p == pytest.approx(0.5)
    assert not cmp.significant and "borderline" in cmp.verdict      # the interval is clear, McNemar is not
