"""A backend's optional fused kernels equal the array-API path bit for bit."""

from __future__ import annotations

from typing import Any

import array_api_compat.numpy as npx
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dropkit import philox
from dropkit.testing.profiles import suite_settings
from dropkit.testing.strategies import arrays, float_dtypes, keys, shapes, to_namespace, to_numpy
from dropkit.testing.subnormals import as_backend_computes, scaled

# ops on plain arrays go to the backend under test (dropkit.testing's plugin)
pytestmark = pytest.mark.usefixtures("dropkit_use_backend")

SETTINGS = suite_settings(max_examples=40)


@SETTINGS
@given(
    data=st.data(),
    key=keys(),
    counter=st.integers(0, 2**63 - 1),
    threshold=st.integers(0, 2**32 - 1),
    relu=st.booleans(),
    inplace=st.booleans(),
)
def test_fused_dropout_equals_array_api_path(
    dropkit_backend, data, key, counter, threshold, relu, inplace
):
    fused = getattr(dropkit_backend, "dropout_fused", None)
    if fused is None:
        pytest.skip(f"backend {dropkit_backend.name!r} has no fused dropout kernel")
    xp = dropkit_backend.xp
    dtype = data.draw(st.sampled_from(float_dtypes(xp)))
    a = data.draw(arrays(dtype, finite=False))
    scale = float(data.draw(st.sampled_from([1.0, 2.0, 1.0 / 0.7, 1.0 / 0.01])))
    x = to_namespace(xp, a)
    y = fused(x, key, counter, threshold, scale, relu=relu, out=x if inplace else None)
    if y is None:
        return  # declined (e.g. this dtype): the generic path serves it
    bits = np.asarray(philox.random_bits(npx, key, counter, a.size)).reshape(a.shape)
    keep = bits >= threshold
    seen = as_backend_computes(xp, a)
    if relu:
        keep &= ~(seen <= 0)  # ReLU keeps NaN, as torch.relu does
    want = np.where(keep, scaled(xp, a, scale), a.dtype.type(0))
    got = to_numpy(y)
    assert got.dtype == a.dtype and got.shape == a.shape
    np.testing.assert_array_equal(got, want)
    if inplace:
        assert y is x
    else:
        np.testing.assert_array_equal(to_numpy(x), a)  # input untouched


@SETTINGS
@given(
    data=st.data(),
    nesterov=st.booleans(),
    decay=st.sampled_from([0.0, 1e-3, 0.1]),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
)
def test_fused_sgd_equals_array_api_update(dropkit_backend, data, nesterov, decay, momentum):
    if getattr(dropkit_backend, "sgd_update", None) is None:
        pytest.skip(f"backend {dropkit_backend.name!r} has no fused SGD kernel")
    if nesterov and momentum == 0:
        nesterov = False
    xp = dropkit_backend.xp
    dtype = data.draw(st.sampled_from([d for d in float_dtypes(xp) if d != "float16"]))
    shape = data.draw(shapes(min_dims=1, max_dims=2, max_side=40))
    w, v_grad = (data.draw(arrays(dtype, st.just(shape))) for _ in range(2))
    fused_w, plain_w = to_namespace(xp, w), to_namespace(xp, w)
    fused_v, plain_v = xp.zeros_like(fused_w), xp.zeros_like(plain_w)
    for _ in range(2):
        g = to_namespace(xp, v_grad)
        done = dropkit_backend.sgd_update(
            fused_w, g, fused_v, lr=0.1, momentum=momentum, weight_decay=decay, nesterov=nesterov
        )
        assume(done)  # a declined example is not a comparison (all declined: an error)
        plain_w, plain_v = _sgd_reference(plain_w, g, plain_v, 0.1, momentum, decay, nesterov)
    np.testing.assert_array_equal(to_numpy(fused_w), to_numpy(plain_w))
    np.testing.assert_array_equal(to_numpy(fused_v), to_numpy(plain_v))


def _sgd_reference(
    w: Any, g: Any, v: Any, lr: float, momentum: float, decay: float, nesterov: bool
) -> tuple[Any, Any]:
    """One SGD step in array-API operations (the formula the kernels must reproduce)."""
    if decay:
        g = g + decay * w
    if momentum:
        v = momentum * v + g
        g = g + momentum * v if nesterov else v
    return w - lr * g, v


@st.composite
def _shape_and_noise(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """An input shape and a noise shape broadcast along some of its axes."""
    shape = draw(shapes(min_dims=1, max_dims=4, max_side=9))
    ones = draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    return shape, tuple(1 if one else n for n, one in zip(shape, ones, strict=True))


@SETTINGS
@given(data=st.data(), shapes_=_shape_and_noise(), inplace=st.booleans())
def test_masked_kernel_equals_array_api_path(dropkit_backend, data, shapes_, inplace):
    kernel = getattr(dropkit_backend, "dropout_masked", None)
    if kernel is None:
        pytest.skip(f"backend {dropkit_backend.name!r} has no kernel for broadcast masks")
    xp = dropkit_backend.xp
    shape, noise = shapes_
    dtype = data.draw(st.sampled_from(float_dtypes(xp)))
    a = data.draw(arrays(dtype, st.just(shape), finite=False))
    m = data.draw(hnp.arrays(np.bool_, noise))
    scale = float(data.draw(st.sampled_from([1.0, 2.0, 1.0 / 0.7])))
    x = to_namespace(xp, a)
    y = kernel(x, to_namespace(xp, m), scale, out=x if inplace else None)
    if y is None:
        return  # declined: the generic path serves it
    want = np.where(m, scaled(xp, a, scale), a.dtype.type(0))
    got = to_numpy(y)
    assert got.dtype == a.dtype and got.shape == a.shape
    np.testing.assert_array_equal(got, want)
    assert not np.signbit(got[~np.broadcast_to(m, shape)]).any()  # dropped: +0.0
    if inplace:
        assert y is x
    else:
        np.testing.assert_array_equal(to_numpy(x), a)  # input untouched


@SETTINGS
@given(data=st.data(), scale=st.sampled_from([1.0, 2.0, 1.0 / 0.7, 0.5]))
def test_relu_backward_kernel_equals_array_api_path(dropkit_backend, data, scale):
    kernel = getattr(dropkit_backend, "relu_dropout_backward_fused", None)
    if kernel is None:
        pytest.skip(f"backend {dropkit_backend.name!r} has no fused ReLU-dropout backward")
    xp = dropkit_backend.xp
    dtype = data.draw(st.sampled_from(float_dtypes(xp)))
    g = data.draw(arrays(dtype, finite=False))
    h = data.draw(arrays(dtype, st.just(g.shape), finite=False))
    grad = to_namespace(xp, g)
    y = kernel(grad, to_namespace(xp, h), scale)
    if y is None:
        return  # declined: the generic path serves it
    seen = as_backend_computes(xp, h)
    want = np.where(seen <= 0, g.dtype.type(0), scaled(xp, g, scale))  # NaN in h passes
    got = to_numpy(y)
    assert got.dtype == g.dtype and got.shape == g.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(to_numpy(grad), g)  # input untouched


@pytest.mark.parametrize("scale", [1.0, 2.0])
@pytest.mark.parametrize("relu", [False, True])
def test_fused_kernels_on_subnormals_equal_the_backends_own_arithmetic(
    dropkit_backend, scale, relu
):
    """Subnormal inputs, explicitly (random arrays seldom hold them).

    Each fused kernel equals the array-API path computed with the backend's own
    operations, flushing or not, and the suite's NumPy expectation of it
    (:mod:`dropkit.testing.subnormals`) agrees. A scale of 1 multiplies nothing.
    """
    xp = dropkit_backend.xp
    f32 = np.finfo(np.float32)
    tiny = f32.smallest_subnormal
    a = np.array([tiny, -tiny, 5 * tiny, f32.tiny / 2, f32.tiny, 1.0, -1.0, 0.0, np.nan], "float32")
    x = to_namespace(xp, a)
    zero = xp.zeros((), dtype=x.dtype)
    factor = xp.asarray(scale, dtype=x.dtype)
    product = x * factor if scale != 1.0 else x  # what the ops compute on this backend
    passes = xp.logical_not(x <= 0)
    seen = as_backend_computes(xp, a)
    expected_product = scaled(xp, a, scale)
    checked = 0
    fused = getattr(dropkit_backend, "dropout_fused", None)
    y = fused(x, 3, 4, 0, scale, relu=relu) if fused is not None else None  # all kept
    if y is not None:
        want = xp.where(passes, product, zero) if relu else product
        np.testing.assert_array_equal(to_numpy(y), to_numpy(want))
        keep = ~(seen <= 0) if relu else np.ones(a.shape, dtype=bool)
        np.testing.assert_array_equal(to_numpy(y), np.where(keep, expected_product, 0))
        checked += 1
    kernel = getattr(dropkit_backend, "relu_dropout_backward_fused", None)
    y = kernel(x, x, scale) if kernel is not None else None
    if y is not None:
        want = xp.where(passes, product, zero)
        np.testing.assert_array_equal(to_numpy(y), to_numpy(want))
        np.testing.assert_array_equal(to_numpy(y), np.where(seen <= 0, 0, expected_product))
        checked += 1
    kernel = getattr(dropkit_backend, "dropout_masked", None)
    mask = to_namespace(xp, np.ones((1,), dtype=bool))
    y = kernel(x, mask, scale) if kernel is not None else None
    if y is not None:
        np.testing.assert_array_equal(to_numpy(y), to_numpy(product))
        np.testing.assert_array_equal(to_numpy(y), expected_product)
        checked += 1
    if not checked:
        pytest.skip(f"backend {dropkit_backend.name!r} has no fused kernel for float32")
