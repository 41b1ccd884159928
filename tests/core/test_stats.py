from math import comb

import pytest

from dropkit.testing.stats import binomial_interval


@pytest.mark.parametrize(
    ("n", "q", "alpha"),
    [
        (1, 0.5, 0.5),
        (7, 0.5, 0.2),
        (20, 0.9, 0.01),
        (50, 0.3, 0.05),
        (200, 0.02, 1e-3),
        (300, 0.999, 1e-6),
        (120, 0.5, 1e-6),
    ],
)
def test_interval_is_the_tightest_exact_one(n, q, alpha):
    pmf = [comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(n + 1)]
    lo, hi = binomial_interval(n, q, alpha)
    assert sum(pmf[:lo]) <= alpha / 2
    assert sum(pmf[hi + 1 :]) <= alpha / 2
    # Tightest: moving either end inwards would exceed alpha / 2.
    if lo < n:
        assert sum(pmf[: lo + 1]) > alpha / 2
    if hi > 0:
        assert sum(pmf[hi:]) > alpha / 2


def test_degenerate_probabilities():
    assert binomial_interval(10, 0.0, 1e-6) == (0, 0)
    assert binomial_interval(10, 1.0, 1e-6) == (10, 10)
    assert binomial_interval(0, 0.5, 1e-6) == (0, 0)


def test_large_n_is_centred_and_fast():
    lo, hi = binomial_interval(10**7, 0.5, 1e-6)
    assert lo < 5 * 10**6 < hi
    assert hi - 5 * 10**6 == 5 * 10**6 - lo  # symmetric for q = 1/2
    assert hi - lo < 20_000  # about 2 * 5.3 sigma, sigma = 1581
