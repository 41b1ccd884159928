"""Statistical properties, each with an exact bound and a stated false-failure rate.

Every check compares a count that is exactly binomial for a correct
implementation with :func:`~dropkit.testing.stats.binomial_interval` at
``FALSE_FAILURE_RATE`` (1e-6) per example, split by the union bound where one
example makes several checks.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dropkit
from dropkit.testing.profiles import suite_settings
from dropkit.testing.stats import FALSE_FAILURE_RATE, binomial_interval
from dropkit.testing.strategies import keys, to_namespace, to_numpy, widest_float

# ops on plain arrays go to the backend under test (dropkit.testing's plugin)
pytestmark = pytest.mark.usefixtures("dropkit_use_backend")

SETTINGS = suite_settings(max_examples=25)
ALPHA = FALSE_FAILURE_RATE
interior_p = st.floats(0.01, 0.99)


def _mask(dropkit_backend, shape, p, rng):
    return to_numpy(dropkit.dropout_mask(shape, p, rng=rng, backend=dropkit_backend.name))


@SETTINGS
@given(
    p=st.one_of(st.sampled_from([0.0, 0.5, 0.2, 0.99]), st.floats(0, 1)),
    key=keys(),
    n=st.integers(1, 5000),
)
def test_kept_count_is_binomial(dropkit_backend, p, key, n):
    q = dropkit.keep_probability(p)
    kept = int(np.count_nonzero(_mask(dropkit_backend, (n,), p, key)))
    lo, hi = binomial_interval(n, q, ALPHA)
    assert lo <= kept <= hi, f"kept {kept} of {n} at p={p}: outside [{lo}, {hi}]"


@SETTINGS
@given(p=interior_p, key=keys())
def test_neighbouring_units_are_independent(dropkit_backend, p, key):
    # Disjoint pairs (2i, 2i+1), then (2i+1, 2i+2): both kept ~ Binomial(pairs, q**2) each.
    n = 20_000
    q = dropkit.keep_probability(p)
    m = _mask(dropkit_backend, (n,), p, key)
    for start in (0, 1):
        pairs = m[start : start + 2 * ((n - start) // 2)].reshape(-1, 2)
        both = int(np.count_nonzero(pairs[:, 0] & pairs[:, 1]))
        lo, hi = binomial_interval(pairs.shape[0], q * q, ALPHA / 2)
        assert lo <= both <= hi, f"pairs from {start}: {both} both kept, outside [{lo}, {hi}]"


@SETTINGS
@given(p=st.floats(0.05, 0.95), key=keys())
def test_successive_draws_differ(dropkit_backend, p, key):
    # Two draws of one generator agree on a unit with probability q**2 + (1-q)**2.
    n = 4096
    q = dropkit.keep_probability(p)
    g = dropkit.Generator(key)
    first, second = _mask(dropkit_backend, (n,), p, g), _mask(dropkit_backend, (n,), p, g)
    agree = int(np.count_nonzero(first == second))
    lo, hi = binomial_interval(n, q * q + (1 - q) ** 2, ALPHA)
    assert hi < n  # so identical masks would fail this test
    assert lo <= agree <= hi


@SETTINGS
@given(p=st.floats(0.05, 0.9), key=keys(), mode=st.sampled_from(["inverted", "vanilla"]))
def test_mean_output_converges_to_evaluation_output(dropkit_backend, p, key, mode):
    # T independent masks of x, as the T rows of one (T, d) draw. Unit i is kept
    # K_i ~ Binomial(T, q) times, so the mean training output is
    # x_i * scale * K_i / T; the bound on K_i (alpha / d per unit, union bound)
    # gives an exact bound on the distance from the evaluation output.
    xp = dropkit_backend.xp
    d, T = 16, 2000
    a = np.linspace(-2.0, 3.0, d).astype(widest_float(xp))
    x = to_namespace(xp, a)
    rows = to_namespace(xp, np.broadcast_to(a, (T, d)))
    mean = np.mean(to_numpy(dropkit.dropout(rows, p, rng=key, mode=mode)), axis=0)
    q = dropkit.keep_probability(p)
    scale = 1 / (1 - p) if mode == "inverted" else 1.0
    evaluation = to_numpy(dropkit.dropout(x, p, training=False, mode=mode))
    rtol = 1e-12 if a.dtype == np.float64 else 1e-6
    np.testing.assert_allclose(evaluation, a if mode == "inverted" else a * (1 - p), rtol=rtol)
    lo, hi = binomial_interval(T, q, ALPHA / d)
    low_mean, high_mean = a * scale * lo / T, a * scale * hi / T
    slack = 1e-9 if a.dtype == np.float64 else 1e-4  # rounding of the mean in the dtype
    bound_lo = np.minimum(low_mean, high_mean) - slack
    bound_hi = np.maximum(low_mean, high_mean) + slack
    assert np.all((bound_lo <= mean) & (mean <= bound_hi))
    # The expectation itself: x * scale * q equals the evaluation output to 2**-32.
    np.testing.assert_allclose(a * scale * q, evaluation, rtol=max(rtol, 1e-8), atol=1e-12)


@SETTINGS
@given(p=interior_p, key=keys())
def test_channel_mask_count_is_binomial(dropkit_backend, p, key):
    xp = dropkit_backend.xp
    x = xp.ones((64, 32, 2, 2), dtype=xp.float32)
    _, mask = dropkit.dropout2d(x, p, rng=key, return_mask=True)
    kept = int(np.count_nonzero(to_numpy(mask)))
    lo, hi = binomial_interval(64 * 32, dropkit.keep_probability(p), ALPHA)
    assert lo <= kept <= hi
