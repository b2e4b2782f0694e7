"""Exact binomial tails for detection p-values, written out because scipy is not a dependency.

Under the null hypothesis (text written without the key) each scored, distinct n-gram is
green with probability gamma independently, so the green count of n scored tokens is
Binomial(n, gamma) and the exact one-sided p-value is P(X >= k). It is summed in log space
from log-factorials (math.lgamma, accurate to ~1e-15 relative), so it stays exact in the far
tail (p-values like 1e-300) where the normal approximation behind a z-score is off by orders
of magnitude. The Gumbel scheme's scores are Exp(1) under the null, so their sum has
the Gamma(n, 1) tail `gamma_sf`, exact in the same way. `tests/watermark/test_stats.py` checks it against brute-force rational sums.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

_log_factorial = np.zeros(1, dtype=np.float64)


def log_factorials(n: int) -> np.ndarray:
    """log(i!) for i = 0..n, from math.lgamma (cached and grown on demand)."""
    global _log_factorial
    if len(_log_factorial) <= n:
        size = max(n + 1, 2 * len(_log_factorial))
        _log_factorial = np.array([math.lgamma(i + 1.0) for i in range(size)], dtype=np.float64)
    return _log_factorial[: n + 1]


def log_binomial_pmf(n: int, p: float) -> np.ndarray:
    """log P(X = i) for i = 0..n, X ~ Binomial(n, p), 0 < p < 1."""
    lf = log_factorials(n)
    i = np.arange(n + 1, dtype=np.float64)
    return lf[n] - lf - lf[::-1] + i * math.log(p) + (n - i) * math.log1p(-p)


@lru_cache(maxsize=512)
def _log_tail(n: int, p: float) -> np.ndarray:
    """log P(X >= k) for k = 0..n: a reversed cumulative log-sum-exp of the pmf, from the far tail up."""
    log_tail = np.logaddexp.accumulate(log_binomial_pmf(n, p)[::-1])[::-1]
    log_tail.setflags(write=False)
    return log_tail


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the exact one-sided p-value of k successes in n trials."""
    if n < 0 or not 0.0 < p < 1.0:
        raise ValueError(f"binomial_sf: need n >= 0 and 0 < p < 1, got n={n}, p={p}")
    k = int(k)
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return min(1.0, math.exp(float(_log_tail(int(n), float(p))[k])))


@lru_cache(maxsize=4096)
def critical_count(n: int, p: float, alpha: float) -> int:
    """Smallest k with P(X >= k) <= alpha for X ~ Binomial(n, p); n + 1 if no k qualifies."""
    if n <= 0:
        return n + 1
    qualifying = np.nonzero(_log_tail(int(n), float(p)) <= math.log(alpha))[0]
    return int(qualifying[0]) if len(qualifying) else n + 1


def z_score(k: float, n: float, p: float) -> float:
    """(k - n p) / sqrt(n p (1 - p)); 0 for n = 0. Reported beside the exact p-value, as in KGW."""
    if n <= 0:
        return 0.0
    return (k - n * p) / math.sqrt(n * p * (1.0 - p))


def bonferroni(p_value: float, tests: int) -> float:
    """Family-wise correction valid under any dependence between the tests."""
    return min(1.0, p_value * max(1, tests))


def gamma_sf(x: float, n: int) -> float:
    """P(X >= x) for X ~ Gamma(n, 1), n a positive integer: the exact p-value of a sum of n Exp(1) scores.

    For integer n this is P(Poisson(x) <= n - 1) = sum_{k < n} exp(-x) x^k / k!, summed in log
    space from log-factorials, so it stays exact far in the tail like `binomial_sf`.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"gamma_sf: need n >= 1, got {n}")
    if x <= 0.0:
        return 1.0
    k = np.arange(n, dtype=np.float64)
    log_terms = k * math.log(x) - x - log_factorials(n - 1)
    return min(1.0, math.exp(float(np.logaddexp.reduce(log_terms))))


@lru_cache(maxsize=4096)
def gamma_critical(n: int, alpha: float) -> float:
    """Smallest x with P(Gamma(n, 1) >= x) <= alpha (bisection to ~1e-9 relative; n >= 1)."""
    low, high = float(n), float(n) + 10.0 * math.sqrt(n) + 50.0 - math.log(alpha)
    while gamma_sf(high, n) > alpha:
        high *= 2.0
    for _ in range(100):
        middle = 0.5 * (low + high)
        if gamma_sf(middle, n) > alpha:
            low = middle
        else:
            high = middle
        if high - low <= 1e-9 * high:
            break
    return high
