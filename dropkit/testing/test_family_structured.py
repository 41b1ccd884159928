"""Structured dropout: drop path's binomial count and DropBlock's blocks, rate and mask.

Statistical checks state their false-failure rate (``FALSE_FAILURE_RATE``,
1e-6 per example; see :mod:`dropkit.testing.test_family`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dropkit
from dropkit.dropblock import dropblock_drop_rate
from dropkit.philox import random_bits
from dropkit.testing.profiles import suite_settings
from dropkit.testing.stats import FALSE_FAILURE_RATE, binomial_interval
from dropkit.testing.strategies import keys, to_numpy

# ops on plain arrays go to the backend under test (dropkit.testing's plugin)
pytestmark = pytest.mark.usefixtures("dropkit_use_backend")

SETTINGS = suite_settings(max_examples=4)
ALPHA = FALSE_FAILURE_RATE
# a few values of p, not arbitrary floats: JAX compiles once per p (a static threshold)
interior_p = st.sampled_from([0.05, 0.2, 0.5, 0.75, 0.9])


# ---------------------------------------------------------------- drop path


@SETTINGS
@given(
    p=st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]),
    key=keys(),
    mode=st.sampled_from(["inverted", "vanilla"]),
)
def test_drop_path_drops_whole_samples_with_a_binomial_count(dropkit_backend, p, key, mode):
    xp = dropkit_backend.xp
    n = 3000
    x = xp.ones((n, 2, 3), dtype=xp.float32)
    y = to_numpy(dropkit.drop_path(x, p, rng=key, mode=mode)).reshape(n, -1)
    assert np.all(y.min(axis=1) == y.max(axis=1)), "a sample was partly dropped"
    kept = int(np.count_nonzero(y[:, 0]))
    if p == 1.0:
        assert kept == 0
        return
    lo, hi = binomial_interval(n, dropkit.keep_probability(p), ALPHA)
    assert lo <= kept <= hi
    scale = np.float32(1 / (1 - p)) if mode == "inverted" else np.float32(1)
    assert np.all(y[y[:, 0] != 0] == scale)


# ---------------------------------------------------------------- DropBlock


def _blocks_cover(dropped: np.ndarray, k: int) -> bool:
    """Whether the dropped units of each (H, W) map are a union of k x k blocks in the map."""
    *_lead, h, w = dropped.shape
    full = np.ones((*dropped.shape[:-2], h - k + 1, w - k + 1), dtype=bool)
    for i in range(k):
        for j in range(k):
            full &= dropped[..., i : i + h - k + 1, j : j + w - k + 1]
    covered = np.zeros_like(dropped)
    for i in range(k):
        for j in range(k):
            covered[..., i : i + h - k + 1, j : j + w - k + 1] |= full
    return bool(np.array_equal(covered, dropped))


@SETTINGS
@given(
    p=st.sampled_from([0.02, 0.1, 0.25, 0.4]),
    key=keys(),
    k=st.sampled_from([1, 3, 5]),
    side=st.just(9),
    channels_last=st.booleans(),
)
def test_dropblock_zeros_form_whole_blocks_at_the_exact_expected_rate(
    dropkit_backend, p, key, k, side, channels_last
):
    xp = dropkit_backend.xp
    maps_n, maps_c = 40, 10
    shape = (maps_n, side, side + 1, maps_c) if channels_last else (maps_n, maps_c, side, side + 1)
    x = xp.ones(shape, dtype=xp.float32)
    axis = -1 if channels_last else 1
    y, keep = dropkit.dropblock2d(x, p, block_size=k, rng=key, channel_axis=axis, return_mask=True)
    y, keep = to_numpy(y), to_numpy(keep)
    if channels_last:
        y, keep = np.moveaxis(y, -1, 1), np.moveaxis(keep, -1, 1)
    dropped = ~keep
    np.testing.assert_array_equal(y == 0, dropped)
    assert _blocks_cover(dropped, k), "dropped units that no whole block covers"
    kept = int(np.count_nonzero(keep))
    if kept:
        np.testing.assert_array_equal(y[keep], np.float32(keep.size / kept))
    # maps are independent; each map's dropped fraction is in [0, 1]: Hoeffding
    rate = dropblock_drop_rate(p, k, side, side + 1)
    assert rate <= p + 2**-32  # overlapping blocks drop at most p
    fractions = dropped.reshape(maps_n * maps_c, -1).mean(axis=1)
    bound = math.sqrt(math.log(2.0 / ALPHA) / (2 * fractions.size))
    assert abs(fractions.mean() - rate) <= bound, (fractions.mean(), rate, bound)


@SETTINGS
@given(p=interior_p, key=keys(), counter=st.integers(0, 2**40), k=st.sampled_from([1, 4]))
def test_dropblock_mask_equals_the_reference_from_the_words(dropkit_backend, p, key, counter, k):
    # Recomputed here from the reference words: a seed where word < round(gamma * 2**32) in
    # the (N, C, H - k + 1, W - k + 1) positions (C order), each seed covering k x k units.
    import array_api_compat.numpy as npx

    from dropkit.structured import dropblock_gamma

    n, c, h, w = 3, 2, 7, 6
    x = dropkit_backend.xp.ones((n, c, h, w), dtype=dropkit_backend.xp.float32)
    _, keep = dropkit.dropblock2d(
        x, p, block_size=k, rng=dropkit.Generator(key, counter), return_mask=True
    )
    seeds_shape = (n, c, h - k + 1, w - k + 1)
    gamma = dropblock_gamma(p, k, h, w)
    words = random_bits(npx, key, counter, math.prod(seeds_shape))
    seeds = (words < dropkit.keep_threshold(gamma)).reshape(seeds_shape)
    dropped = np.zeros((n, c, h, w), dtype=bool)
    for i in range(k):
        for j in range(k):
            dropped[:, :, i : i + h - k + 1, j : j + w - k + 1] |= seeds
    np.testing.assert_array_equal(to_numpy(keep), ~dropped)
