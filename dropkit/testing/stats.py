"""Exact binomial acceptance intervals for the statistical properties.

Every statistical test in the suite states its false-failure rate: it checks a
count that, if the implementation is correct, follows Binomial(n, q) exactly,
against an interval that contains it with probability at least ``1 - alpha``.

Examples
--------
>>> lo, hi = binomial_interval(1000, 0.5, 1e-6)
>>> lo, hi
(423, 577)
>>> binomial_interval(10, 0.0, 1e-6)
(0, 0)
"""

from __future__ import annotations

import math

__all__ = ["FALSE_FAILURE_RATE", "binomial_interval"]

#: The false-failure rate of each statistical check in the suite (per example).
FALSE_FAILURE_RATE = 1e-6
# Probability terms below this are dropped: their total is far below any alpha used.
_NEGLIGIBLE = 1e-40


def _tail(n: int, q: float, mode: int, pm: float, step: int) -> list[tuple[int, float]]:
    """Probabilities of k = mode + step, mode + 2 step, ... until negligible."""
    terms = []
    k, v = mode, pm
    while k > 0 if step < 0 else k < n:
        if step < 0:
            v *= k / (n - k + 1) * (1.0 - q) / q
        else:
            v *= (n - k) / (k + 1) * q / (1.0 - q)
        k += step
        terms.append((k, v))
        if v < _NEGLIGIBLE:
            break
    return terms


def binomial_interval(n: int, q: float, alpha: float) -> tuple[int, int]:
    """The interval ``[lo, hi]`` with P(K < lo) <= alpha/2 and P(K > hi) <= alpha/2.

    ``lo`` is the largest and ``hi`` the smallest integer with that property,
    for K ~ Binomial(n, q), computed from exact probabilities (terms below
    1e-40 are neglected). A correct implementation falls outside with
    probability at most ``alpha``.

    Parameters
    ----------
    n : int
        Number of trials.
    q : float
        Success probability.
    alpha : float
        Two-sided false-failure rate.

    Examples
    --------
    >>> binomial_interval(20, 0.9, 0.01)
    (14, 20)
    """
    if n == 0 or q <= 0.0:
        return 0, 0
    if q >= 1.0:
        return n, n
    mode = min(n, math.floor((n + 1) * q))
    log_pm = (
        math.lgamma(n + 1)
        - math.lgamma(mode + 1)
        - math.lgamma(n - mode + 1)
        + mode * math.log(q)
        + (n - mode) * math.log1p(-q)
    )
    pm = math.exp(log_pm)
    half = alpha / 2.0

    lo = 0
    cumulative = 0.0
    for k, v in reversed(_tail(n, q, mode, pm, -1)):  # ascending k below the mode
        cumulative += v
        if cumulative > half:
            break
        lo = k + 1
    hi = n
    cumulative = 0.0
    for k, v in reversed(_tail(n, q, mode, pm, +1)):  # descending k above the mode
        cumulative += v
        if cumulative > half:
            break
        hi = k - 1
    return lo, hi
