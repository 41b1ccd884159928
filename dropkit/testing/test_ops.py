"""Forward semantics: values, edge cases, channel dropout, determinism, no mutation."""

from __future__ import annotations

import array_api_compat
import array_api_compat.numpy as npx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dropkit
from dropkit import philox
from dropkit.testing.profiles import suite_settings
from dropkit.testing.strategies import (
    arrays,
    drop_probabilities,
    float_dtypes,
    keys,
    shapes,
    to_namespace,
    to_numpy,
    widest_float,
)
from dropkit.testing.subnormals import scaled

# ops on plain arrays go to the backend under test (dropkit.testing's plugin)
pytestmark = pytest.mark.usefixtures("dropkit_use_backend")

SETTINGS = suite_settings(max_examples=30)
modes = st.sampled_from(["inverted", "vanilla"])


def _reference_mask(shape, p, key, counter=0):
    """The mask the reference Philox gives (NumPy, array-API code path)."""
    n = int(np.prod(shape))
    t = dropkit.keep_threshold(p)
    bits = np.asarray(philox.random_bits(npx, key, counter, n))
    return (bits >= t).reshape(shape)


@SETTINGS
@given(data=st.data(), p=drop_probabilities(), key=keys(), mode=modes)
def test_every_output_is_zero_or_scaled_input(dropkit_backend, data, p, key, mode):
    dtype = data.draw(st.sampled_from(float_dtypes(dropkit_backend.xp)))
    a = data.draw(arrays(dtype, finite=False))
    x = to_namespace(dropkit_backend.xp, a)
    with np.errstate(over="ignore"):
        overflows = mode == "inverted" and not np.isfinite(a.dtype.type(1 / (1 - p)))
    if overflows:  # a scale not finite in the dtype is refused, even for an empty array
        with pytest.raises(ValueError, match="not finite in"):
            dropkit.dropout(x, p, rng=key, mode=mode, return_mask=True)
        return
    y, mask = dropkit.dropout(x, p, rng=key, mode=mode, return_mask=True)
    got, m = to_numpy(y), to_numpy(mask)
    scale = a.dtype.type(1 / (1 - p) if mode == "inverted" else 1.0)
    assert got.dtype == a.dtype and got.shape == a.shape
    assert array_api_compat.device(y) == array_api_compat.device(x)
    np.testing.assert_array_equal(got[m], scaled(dropkit_backend.xp, a[m], scale))
    assert np.all(got[~m] == 0)
    # The mask is the reference Philox mask for this key, whatever the backend.
    np.testing.assert_array_equal(m, _reference_mask(a.shape, p, key) if p > 0 else True)


@SETTINGS
@given(data=st.data(), p=drop_probabilities(include_one=True), key=keys(), mode=modes)
def test_input_is_never_modified(dropkit_backend, data, p, key, mode):
    a = data.draw(arrays("float32"))
    x = to_namespace(dropkit_backend.xp, a)
    dropkit.dropout(x, p, rng=key, mode=mode)
    dropkit.dropout(x, p, training=False, mode=mode)
    np.testing.assert_array_equal(to_numpy(x), a)


@SETTINGS
@given(shape=shapes(max_side=6), key=keys(), p=st.floats(0.05, 0.95))
def test_same_key_same_mask_for_every_dtype(dropkit_backend, shape, key, p):
    masks = []
    for dtype in float_dtypes(dropkit_backend.xp):
        x = dropkit_backend.xp.ones(shape, dtype=getattr(dropkit_backend.xp, dtype))
        _, m = dropkit.dropout(x, p, rng=key, return_mask=True)
        masks.append(to_numpy(m))
    for m in masks:
        np.testing.assert_array_equal(m, masks[0])
    np.testing.assert_array_equal(masks[0], _reference_mask(shape, p, key))


@SETTINGS
@given(data=st.data(), key=keys(), mode=modes)
def test_p_zero_and_evaluation_return_the_input_and_draw_nothing(dropkit_backend, data, key, mode):
    a = data.draw(arrays(widest_float(dropkit_backend.xp)))
    x = to_namespace(dropkit_backend.xp, a)
    g = dropkit.Generator(key)
    assert dropkit.dropout(x, 0.0, rng=g, mode=mode) is x
    assert dropkit.dropout(x, 0.3, rng=g, training=False) is x
    np.testing.assert_array_equal(
        to_numpy(dropkit.dropout(x, 0.3, rng=g, training=False, mode="vanilla")),
        scaled(dropkit_backend.xp, a, 0.7),
    )
    assert g.counter == 0  # no random bits were drawn


@SETTINGS
@given(data=st.data(), mode=modes)
def test_p_one_gives_zeros(dropkit_backend, data, mode):
    a = data.draw(arrays("float32", finite=False))
    x = to_namespace(dropkit_backend.xp, a)
    y = to_numpy(dropkit.dropout(x, 1.0, rng=0, mode=mode))
    assert y.shape == a.shape and y.dtype == a.dtype
    assert np.all(y == 0)


@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2)])
def test_empty_and_zero_dimensional_arrays(dropkit_backend, shape):
    x = dropkit_backend.xp.ones(shape, dtype=dropkit_backend.xp.float32)
    y, m = dropkit.dropout(x, 0.5, rng=1, return_mask=True)
    assert tuple(y.shape) == shape and tuple(m.shape) == shape
    assert np.all(to_numpy(y)[to_numpy(m)] == 2.0)


@SETTINGS
@given(
    spatial=st.sampled_from([1, 2, 3]),
    n=st.integers(1, 4),
    c=st.integers(1, 6),
    side=st.integers(1, 3),
    channels_last=st.booleans(),
    p=st.floats(0.05, 0.95),
    key=keys(),
)
def test_channel_dropout_zeros_whole_maps(
    dropkit_backend, spatial, n, c, side, channels_last, p, key
):
    fn = {1: dropkit.dropout1d, 2: dropkit.dropout2d, 3: dropkit.dropout3d}[spatial]
    axis = -1 if channels_last else 1
    shape = (n, *(side,) * spatial, c) if channels_last else (n, c, *(side,) * spatial)
    a = np.arange(1, np.prod(shape) + 1, dtype=np.float32).reshape(shape)
    y, mask = fn(
        to_namespace(dropkit_backend.xp, a), p, rng=key, channel_axis=axis, return_mask=True
    )
    m = to_numpy(mask)
    expected_shape = tuple(
        s if i in (0, len(shape) - 1 if channels_last else 1) else 1 for i, s in enumerate(shape)
    )
    assert m.shape == expected_shape
    got = to_numpy(y)
    full = np.broadcast_to(m, shape)
    np.testing.assert_array_equal(got[full], a[full] * np.float32(1 / (1 - p)))
    assert np.all(got[~full] == 0)
    np.testing.assert_array_equal(m, _reference_mask(expected_shape, p, key))


@SETTINGS
@given(key=keys(), p=st.floats(0.05, 0.95))
def test_noise_shape_shares_the_mask(dropkit_backend, key, p):
    x = dropkit_backend.xp.ones(
        (5, 4, 3), dtype=getattr(dropkit_backend.xp, widest_float(dropkit_backend.xp))
    )
    y, m = dropkit.dropout(x, p, rng=key, noise_shape=(None, 1, 3), return_mask=True)
    assert tuple(m.shape) == (5, 1, 3)
    got = to_numpy(y)
    assert np.all(got == got[:, :1, :])


@SETTINGS
@given(data=st.data(), p=drop_probabilities(include_one=True), key=keys(), mode=modes)
def test_inplace_overwrites_the_input_with_the_same_result(dropkit_backend, data, p, key, mode):
    a = data.draw(arrays("float32"))
    expected = to_numpy(dropkit.dropout(to_namespace(dropkit_backend.xp, a), p, rng=key, mode=mode))
    x = to_namespace(dropkit_backend.xp, a)
    try:
        y = dropkit.dropout(x, p, rng=key, mode=mode, inplace=True)
    except (TypeError, ValueError, NotImplementedError) as exc:
        pytest.skip(f"arrays of backend {dropkit_backend.name!r} are immutable: {exc}")
    assert y is x
    np.testing.assert_array_equal(to_numpy(x), expected)


def test_generator_advances_once_per_draw(dropkit_backend):
    g = dropkit.Generator(11)
    x = dropkit_backend.xp.ones((64,), dtype=dropkit_backend.xp.float32)
    first = to_numpy(dropkit.dropout(x, 0.5, rng=g))
    second = to_numpy(dropkit.dropout(x, 0.5, rng=g))
    assert g.counter == 2
    np.testing.assert_array_equal(first != 0, _reference_mask((64,), 0.5, 11, 0))
    np.testing.assert_array_equal(second != 0, _reference_mask((64,), 0.5, 11, 1))


def test_layers_switch_between_train_and_eval(dropkit_backend):
    x = dropkit_backend.xp.ones((4, 3, 2, 2), dtype=dropkit_backend.xp.float32)
    for layer in (dropkit.Dropout(0.5, rng=0), dropkit.Dropout2d(0.5, rng=0)):
        assert layer.training
        y = to_numpy(layer(x))
        assert set(np.unique(y)) <= {0.0, 2.0}
        assert layer.eval()(x) is x
        assert not layer.training
        assert layer.train().training
