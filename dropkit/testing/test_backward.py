"""Backward: zero on dropped units, regeneration equals the stored mask, finite differences."""

from __future__ import annotations

import re

import array_api_compat
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dropkit
from dropkit.testing.profiles import suite_settings
from dropkit.testing.strategies import (
    arrays,
    float_dtypes,
    keys,
    shapes,
    to_namespace,
    to_numpy,
    widest_float,
)
from dropkit.testing.subnormals import as_backend_computes, flushes_subnormals, scaled

# ops on plain arrays go to the backend under test (dropkit.testing's plugin)
pytestmark = pytest.mark.usefixtures("dropkit_use_backend")

SETTINGS = suite_settings(max_examples=30)
modes = st.sampled_from(["inverted", "vanilla"])


@SETTINGS
@given(data=st.data(), p=st.floats(0.0, 0.99), key=keys(), mode=modes)
def test_gradient_is_zero_on_dropped_and_scaled_on_kept(dropkit_backend, data, p, key, mode):
    a = data.draw(arrays(widest_float(dropkit_backend.xp), shapes(min_dims=1)))
    g = data.draw(arrays(widest_float(dropkit_backend.xp), st.just(a.shape), finite=False))
    x, grad = to_namespace(dropkit_backend.xp, a), to_namespace(dropkit_backend.xp, g)
    _, mask = dropkit.dropout(x, p, rng=key, mode=mode, return_mask=True)
    from_mask = to_numpy(dropkit.dropout_backward(grad, p, mask=mask, mode=mode))
    regenerated = to_numpy(dropkit.dropout_backward(grad, p, rng=key, mode=mode))
    m = np.broadcast_to(to_numpy(mask), a.shape)
    scale = 1 / (1 - p) if mode == "inverted" else 1.0
    np.testing.assert_array_equal(from_mask, regenerated)
    assert np.all(from_mask[~m] == 0)
    np.testing.assert_array_equal(from_mask[m], scaled(dropkit_backend.xp, g[m], scale))


@SETTINGS
@given(spatial=st.sampled_from([1, 2, 3]), p=st.floats(0.05, 0.95), key=keys())
def test_channel_gradient_uses_the_channel_mask(dropkit_backend, spatial, p, key):
    fwd = getattr(dropkit, f"dropout{spatial}d")
    bwd = getattr(dropkit, f"dropout{spatial}d_backward")
    shape = (3, 4) + (2,) * spatial
    x = dropkit_backend.xp.ones(shape, dtype=dropkit_backend.xp.float32)
    y = to_numpy(fwd(x, p, rng=key))
    dx = to_numpy(bwd(x, p, rng=key))
    np.testing.assert_array_equal(dx, y)  # grad of ones == forward of ones
    layer = getattr(dropkit, f"Dropout{spatial}d")(p, rng=key)
    np.testing.assert_array_equal(to_numpy(layer(x)), y)
    np.testing.assert_array_equal(to_numpy(layer.backward(x)), y)


def test_p_one_gives_finite_zero_gradients(dropkit_backend):
    g = to_namespace(dropkit_backend.xp, np.array([1.0, np.inf, -3.0]))
    dx = to_numpy(dropkit.dropout_backward(g, 1.0, rng=0))
    assert np.all(dx == 0) and np.all(np.isfinite(dx))


def test_evaluation_gradient(dropkit_backend):
    g = to_namespace(dropkit_backend.xp, np.array([1.0, -2.0]))
    assert dropkit.dropout_backward(g, 0.25, training=False) is g
    np.testing.assert_allclose(
        to_numpy(dropkit.dropout_backward(g, 0.25, training=False, mode="vanilla")),
        [0.75, -1.5],
    )


def test_layer_backward_replays_its_own_draws(dropkit_backend):
    layer = dropkit.Dropout(0.5, rng=3)
    x = dropkit_backend.xp.ones(
        (200,), dtype=getattr(dropkit_backend.xp, widest_float(dropkit_backend.xp))
    )
    y1 = to_numpy(layer(x))
    np.testing.assert_array_equal(to_numpy(layer.backward(x)), y1)
    y2 = to_numpy(layer(x))
    assert not np.array_equal(y1, y2)  # P(equal) = 2**-200
    np.testing.assert_array_equal(to_numpy(layer.backward(x)), y2)


@pytest.mark.parametrize("mode", ["inverted", "vanilla"])
def test_finite_differences_through_a_small_network(dropkit_backend, mode):
    if "float64" not in float_dtypes(dropkit_backend.xp):
        pytest.skip(
            f"backend {dropkit_backend.name!r} has no float64 here (needed for differences)"
        )
    # loss = sum(c * (dropout(relu(x @ W1)) @ W2)), masks fixed by the seed.
    xp = dropkit_backend.xp
    rs = np.random.default_rng(0)
    x_np, w1_np = rs.normal(size=(5, 3)), rs.normal(size=(3, 4))
    w2_np, c_np = rs.normal(size=(4, 2)), rs.normal(size=(5, 2))
    x, w2, c = (to_namespace(xp, a) for a in (x_np, w2_np, c_np))
    p, seed = 0.4, 123

    def loss(w1_values):
        h = xp.maximum(x @ to_namespace(xp, w1_values), 0.0)
        return float(xp.sum(c * (dropkit.dropout(h, p, rng=seed, mode=mode) @ w2)))

    pre = x @ to_namespace(xp, w1_np)
    dh = dropkit.dropout_backward(c @ xp.matrix_transpose(w2), p, rng=seed, mode=mode)
    grad = to_numpy(xp.matrix_transpose(x) @ xp.where(pre > 0, dh, 0.0))

    eps = 1e-6
    numeric = np.zeros_like(w1_np)
    for idx in np.ndindex(*w1_np.shape):
        plus, minus = w1_np.copy(), w1_np.copy()
        plus[idx] += eps
        minus[idx] -= eps
        numeric[idx] = (loss(plus) - loss(minus)) / (2 * eps)
    assert np.min(np.abs(to_numpy(pre))) > 10 * eps  # no ReLU kink inside the stencil
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    mask = to_numpy(dropkit.dropout(xp.ones((5, 4), dtype=xp.float64), p, rng=seed)) != 0
    assert 0 < mask.sum() < mask.size  # the network really drops something


@SETTINGS
@given(data=st.data(), p=st.floats(0.0, 0.99), key=keys(), mode=modes)
def test_packed_mask_gives_the_same_gradient(dropkit_backend, data, p, key, mode):
    a = data.draw(arrays("float32", shapes(min_dims=1)))
    x = to_namespace(dropkit_backend.xp, a)
    _, mask = dropkit.dropout(x, p, rng=key, mode=mode, return_mask=True)
    _, packed = dropkit.dropout(x, p, rng=key, mode=mode, return_mask="packed")
    assert packed.nbytes == -(-a.size // 8)  # ceil(n / 8): 8x smaller than bool
    np.testing.assert_array_equal(to_numpy(dropkit.unpack_mask(packed)), to_numpy(mask))
    np.testing.assert_array_equal(
        to_numpy(dropkit.dropout_backward(x, p, mask=packed, mode=mode)),
        to_numpy(dropkit.dropout_backward(x, p, mask=mask, mode=mode)),
    )


@SETTINGS
@given(data=st.data(), p=st.floats(0.0, 1.0), key=keys(), mode=modes, training=st.booleans())
def test_relu_dropout_equals_dropout_of_relu(dropkit_backend, data, p, key, mode, training):
    xp = dropkit_backend.xp
    a = data.draw(arrays("float32", shapes(min_dims=1), finite=False))
    g = data.draw(arrays("float32", st.just(a.shape)))
    x, grad = to_namespace(xp, a), to_namespace(xp, g)
    # ReLU as torch.relu: x <= 0 gives 0, NaN stays NaN (and passes gradient)
    relu = xp.where(x <= 0, xp.zeros((), dtype=x.dtype), x)
    want = to_numpy(dropkit.dropout(relu, p, rng=key, mode=mode, training=training))
    h = dropkit.relu_dropout(x, p, rng=key, mode=mode, training=training)
    np.testing.assert_array_equal(to_numpy(h), want)
    inplace = to_namespace(xp, a)
    if array_api_compat.is_writeable_array(inplace):  # (JAX arrays are immutable)
        out = dropkit.relu_dropout(inplace, p, rng=key, mode=mode, training=training, inplace=True)
        assert out is inplace
        np.testing.assert_array_equal(to_numpy(inplace), want)
    # backward from h alone equals the composed backward (dropout, then ReLU)
    if training:
        composed = dropkit.dropout_backward(grad, p, rng=key, mode=mode)
    else:
        composed = dropkit.dropout_backward(grad, p, training=False, mode=mode)
    composed = np.where(a <= 0, 0, to_numpy(composed))
    got = to_numpy(dropkit.relu_dropout_backward(grad, h, p, mode=mode, training=training))
    # documented limits: vanilla evaluation may underflow a positive input to 0
    # (and a backend that flushes subnormals, XLA on CPU, flushes more of them)
    factor = a.dtype.type(1 - p if (mode == "vanilla" and not training) else 1)
    lost = (a > 0) & (as_backend_computes(xp, as_backend_computes(xp, a) * factor) == 0)
    exact = ~lost
    np.testing.assert_array_equal(got[exact], composed[exact])


@pytest.mark.parametrize("training", [False, True])
def test_relu_dropout_backward_on_subnormal_input(dropkit_backend, training):
    """A positive subnormal input: gradient flows iff the backend's ReLU passes it.

    (Found by hypothesis on JAX, whose XLA CPU code treats subnormals as zero.)
    """
    xp = dropkit_backend.xp
    tiny = np.finfo(np.float32).smallest_subnormal
    a = np.array([tiny, 1.0, -1.0], dtype=np.float32)
    x = to_namespace(xp, a)
    h = dropkit.relu_dropout(x, 0.0, rng=0, training=training)
    got = to_numpy(dropkit.relu_dropout_backward(xp.ones_like(x), h, 0.0, training=training))
    passes = not flushes_subnormals(xp)
    np.testing.assert_array_equal(got, np.array([1.0 if passes else 0.0, 1.0, 0.0], np.float32))
    np.testing.assert_array_equal(to_numpy(h) > 0, got > 0)


@pytest.mark.parametrize("p", [0.0, 0.5])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("mode", ["inverted", "vanilla"])
def test_relu_backward_passes_a_subnormal_gradient_as_dropout_backward(
    dropkit_backend, mode, training, p
):
    """A subnormal gradient: the ReLU backward and the plain backward agree, bit for bit.

    Both multiply only where the factor is not 1, with the backend's flushing
    (:mod:`dropkit.testing.subnormals`). (Issue 18: JAX's ReLU backward
    multiplied by 1 and flushed 3.95e-42 to 0 where the plain backward kept it.)
    """
    xp = dropkit_backend.xp
    tiny = np.float32(3.95e-42)  # subnormal in float32
    a = np.ones(64, dtype=np.float32)
    x, grad = to_namespace(xp, a), to_namespace(xp, np.full(64, tiny, dtype=np.float32))
    h = dropkit.relu_dropout(x, p, rng=7, mode=mode, training=training)
    if training:
        plain = to_numpy(dropkit.dropout_backward(grad, p, rng=7, mode=mode))
    else:
        plain = to_numpy(dropkit.dropout_backward(grad, p, training=False, mode=mode))
    got = to_numpy(dropkit.relu_dropout_backward(grad, h, p, mode=mode, training=training))
    np.testing.assert_array_equal(got, plain)
    kept = to_numpy(h) != 0
    assert kept.any()
    factor = (
        (1 / (1 - p) if mode == "inverted" else 1.0)
        if training
        else (1.0 if mode == "inverted" else 1 - p)
    )
    want = scaled(xp, np.full(int(kept.sum()), tiny, dtype=np.float32), factor)
    np.testing.assert_array_equal(got[kept], want)
    assert np.all(got[~kept] == 0)


@pytest.mark.parametrize("training", [True, False])
def test_relu_dropout_keeps_nan_as_torch_relu(dropkit_backend, training):
    """ReLU keeps NaN (``torch.relu`` does): a kept NaN stays NaN and passes gradient."""
    xp = dropkit_backend.xp
    a = np.array([np.nan, 1.0, -1.0, np.nan, np.inf, -np.inf, 0.0, -0.0] * 4, dtype=np.float32)
    x = to_namespace(xp, a)
    h = dropkit.relu_dropout(x, 0.5, rng=5, training=training)
    keep = to_numpy(dropkit.dropout_mask(a.shape, 0.5, rng=5)) if training else True
    scale = np.float32(2.0 if training else 1.0)
    want = np.where(keep, np.where(a <= 0, np.float32(0), a) * scale, np.float32(0))
    np.testing.assert_array_equal(to_numpy(h), want)
    assert np.isnan(want).any()  # (seed 5 keeps some NaN)
    got = to_numpy(dropkit.relu_dropout_backward(xp.ones_like(x), h, 0.5, training=training))
    np.testing.assert_array_equal(got, np.where(want <= 0, np.float32(0), scale))


def test_a_mask_of_another_shape_than_the_forwards_is_refused(dropkit_backend):
    """Every backward takes only the mask its forward returns (the op's noise shape).

    An element-wise mask given to a channel or sample backward (or a channel mask to
    the element-wise one) would give per-element gradients of another op.
    """
    xp = dropkit_backend.xp
    g = xp.ones((2, 3, 4, 4), dtype=getattr(xp, widest_float(xp)))
    full = xp.asarray(np.arange(96).reshape(2, 3, 4, 4) % 3 > 0)
    channel = xp.asarray(np.array([True, False, True] * 2).reshape(2, 3, 1, 1))
    for call, expected in (
        (lambda: dropkit.dropout2d_backward(g, 0.5, mask=full), (2, 3, 1, 1)),
        (lambda: dropkit.dropout1d_backward(g[0, ...], 0.5, mask=full[0, ...]), (3, 4, 1)),
        (lambda: dropkit.drop_path_backward(g, 0.5, mask=full), (2, 1, 1, 1)),
        (lambda: dropkit.dropout_backward(g, 0.5, mask=full, noise_shape=(2, 3, 1, 1)), None),
        (lambda: dropkit.dropout_backward(g, 0.5, mask=channel), (2, 3, 4, 4)),
    ):
        shape = expected or (2, 3, 1, 1)
        with pytest.raises(
            ValueError, match=rf"forward pass.s mask .* has shape {re.escape(str(shape))}: pass"
        ):
            call()
    # the right shapes are accepted and give the channel gradient
    dx = to_numpy(dropkit.dropout2d_backward(g, 0.5, mask=channel))
    np.testing.assert_array_equal(dx, np.broadcast_to(to_numpy(channel) * 2.0, (2, 3, 4, 4)))
