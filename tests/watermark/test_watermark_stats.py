"""Exact binomial p-values, checked against brute-force rational arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from watermark.stats import binomial_sf, bonferroni, critical_count, z_score


def brute_force_sf(k: int, n: int, p: float) -> Fraction:
    q = Fraction(p)
    return sum((math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(k, n + 1)), Fraction(0))


@pytest.mark.parametrize("n", [1, 2, 7, 31, 64])
@pytest.mark.parametrize("p", [0.25, 0.5, 0.125])
def test_binomial_tail_matches_brute_force(n, p):
    for k in range(n + 2):
        exact = brute_force_sf(k, n, p)
        got = binomial_sf(k, n, p)
        if exact == 0:
            assert got == 0.0
        else:
            assert abs(Fraction(got) - exact) / exact < 1e-12, (k, n, p, got, float(exact))


def test_far_tail_is_exact_where_the_normal_approximation_fails():
    # all 200 tokens green at gamma 0.25: p = 0.25**200 exactly, ~1e-121
    assert binomial_sf(200, 200, 0.25) == pytest.approx(0.25**200, rel=1e-12)
    z = z_score(200, 200, 0.25)
    normal_tail = 0.5 * math.erfc(z / math.sqrt(2))
    assert normal_tail < 1e-300 or abs(math.log10(normal_tail) - math.log10(0.25**200)) > 10


def test_tail_edges_and_monotonicity():
    assert binomial_sf(0, 50, 0.25) == 1.0
    assert binomial_sf(51, 50, 0.25) == 0.0
    tails = [binomial_sf(k, 300, 0.25) for k in range(301)]
    assert all(a >= b for a, b in zip(tails, tails[1:]))
    with pytest.raises(ValueError):
        binomial_sf(1, 10, 1.0)


def test_critical_count_is_the_smallest_significant_count():
    for n, alpha in [(200, 1e-4), (64, 1e-2), (10, 1e-4), (1000, 1e-6)]:
        k = critical_count(n, 0.25, alpha)
        assert binomial_sf(k, n, 0.25) <= alpha
        assert k == 0 or binomial_sf(k - 1, n, 0.25) > alpha
    assert critical_count(3, 0.25, 1e-4) == 4  # 3 tokens can never reach 1e-4 (0.25**3 > 1e-4)


def test_bonferroni():
    assert bonferroni(1e-5, 3) == pytest.approx(3e-5)
    assert bonferroni(0.6, 2) == 1.0
