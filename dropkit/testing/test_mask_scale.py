"""A backend's ``mask_scale`` primitive equals the array-API reference bit for bit.

Every op that applies a mask (dropout, channel dropout, ReLU-dropout, drop
path, alpha dropout, every backward) reduces to the primitive
(:class:`dropkit.MasksAndScales`); a backend without one, or one that declines
an example (returns None), is served by the reference, which these tests
check against an independent NumPy computation too.
"""

from __future__ import annotations

import array_api_compat.numpy as npx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dropkit
from dropkit import philox
from dropkit.primitive import reference_mask_scale
from dropkit.selection import select_by_name
from dropkit.testing.profiles import suite_settings
from dropkit.testing.strategies import arrays, float_dtypes, keys, shapes, to_namespace, to_numpy
from dropkit.testing.subnormals import as_backend_computes, scaled

pytestmark = pytest.mark.usefixtures("dropkit_use_backend")

SETTINGS = suite_settings(max_examples=40)
FULL = 1 << 32


@st.composite
def _shape_and_noise(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """An input shape and a noise shape: itself, or broadcast along some of its axes."""
    shape = draw(shapes(min_dims=1, max_dims=4, max_side=9))
    if draw(st.booleans()):
        return shape, shape
    ones = draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    return shape, tuple(1 if one else n for n, one in zip(shape, ones, strict=True))


def _both(caps, x, draw, **kw):
    """The backend's primitive (None where it has none or declines) and the reference."""
    mine = None
    if caps.mask_scale is not None:
        mine = caps.mask_scale(x, draw, **kw)
    return mine, reference_mask_scale(caps, x, draw, **kw)


@SETTINGS
@given(
    data=st.data(),
    shapes_=_shape_and_noise(),
    key=keys(),
    counter=st.integers(0, 2**63 - 2),
    threshold=st.integers(0, 2**32 - 1),
    relu=st.sampled_from([False, True, "gate"]),
    inplace=st.booleans(),
)
def test_mask_scale_equals_the_reference(
    dropkit_backend, data, shapes_, key, counter, threshold, relu, inplace
):
    caps = select_by_name(dropkit_backend.name)
    xp = caps.xp
    shape, noise = shapes_
    dtype = data.draw(st.sampled_from(float_dtypes(xp)))
    scale = float(data.draw(st.sampled_from([1.0, 2.0, 1.0 / 0.7, 1.0 / 0.01])))
    a = data.draw(arrays(dtype, st.just(shape), finite=False))
    if relu == "gate":  # ReLU-dropout's backward: gated on h, no bits
        h = data.draw(arrays(dtype, st.just(shape), finite=False))
        keep = ~(as_backend_computes(xp, h) <= 0)
        draw, threshold, noise, gate = None, 0, shape, to_namespace(xp, h)
    else:
        bits = np.asarray(philox.random_bits(npx, key, counter, int(np.prod(noise))))
        keep = np.broadcast_to(bits.reshape(noise) >= threshold, shape)
        if relu:
            keep = keep & ~(as_backend_computes(xp, a) <= 0)  # ReLU keeps NaN (torch.relu)
        draw, gate = caps.draw(dropkit.Generator(key, counter), to_namespace(xp, a)), relu
    want = np.where(keep, scaled(xp, a, scale), a.dtype.type(0))
    writeable = inplace and _writeable(to_namespace(xp, a))
    kw = {"noise_shape": noise, "threshold": threshold, "scale": scale, "relu": gate}
    x = to_namespace(xp, a)
    mine = caps.mask_scale(x, draw, out=x if writeable else None, **kw) if caps.mask_scale else None
    ref_x = to_namespace(xp, a)
    ref = reference_mask_scale(caps, ref_x, draw, out=ref_x if writeable else None, **kw)
    for got, source in ((mine, x), (ref, ref_x)):
        if got is None:
            continue  # declined: the reference serves it
        out = to_numpy(got)
        assert out.dtype == a.dtype and out.shape == a.shape
        np.testing.assert_array_equal(out, want)
        assert not np.signbit(out[~keep]).any()  # dropped: +0.0
        if writeable:
            assert got is source
        else:
            np.testing.assert_array_equal(to_numpy(source), a)  # input untouched


def _writeable(x):
    import array_api_compat

    return array_api_compat.is_writeable_array(x)


@pytest.mark.parametrize("relu", [False, True])
def test_dropping_everything_gives_zeros_and_needs_no_draw(dropkit_backend, relu):
    caps = select_by_name(dropkit_backend.name)
    a = np.array([1.0, -2.0, np.nan, np.inf], dtype=np.float32)
    x = to_namespace(caps.xp, a)
    kw = {"noise_shape": (4,), "threshold": FULL, "scale": 0.0, "relu": relu}
    for got in _both(caps, x, None, **kw):
        if got is not None:
            np.testing.assert_array_equal(to_numpy(got), np.zeros(4, np.float32))


@pytest.mark.parametrize("scale", [1.0, 2.0])
@pytest.mark.parametrize("relu", [False, True, "gate"])
def test_mask_scale_on_subnormals_equals_the_backends_own_arithmetic(dropkit_backend, scale, relu):
    """Subnormal inputs, explicitly (random arrays seldom hold them).

    The primitive equals the reference computed with the backend's own
    operations, flushing or not, and the suite's NumPy expectation of it
    (:mod:`dropkit.testing.subnormals`) agrees. A scale of 1 multiplies nothing.
    """
    caps = select_by_name(dropkit_backend.name)
    xp = caps.xp
    f32 = np.finfo(np.float32)
    tiny = f32.smallest_subnormal
    a = np.array([tiny, -tiny, 5 * tiny, f32.tiny / 2, f32.tiny, 1.0, -1.0, 0.0, np.nan], "float32")
    x = to_namespace(xp, a)
    seen = as_backend_computes(xp, a)
    expected = scaled(xp, a, scale)
    keep = ~(seen <= 0) if relu else np.ones(a.shape, dtype=bool)
    if relu == "gate":
        draw, gate = None, x
    else:
        draw, gate = caps.draw(dropkit.Generator(3, 4), x), relu
    kw = {"noise_shape": a.shape, "threshold": 0, "scale": scale, "relu": gate}  # all kept
    mine, ref = _both(caps, x, draw, **kw)
    np.testing.assert_array_equal(to_numpy(ref), np.where(keep, expected, 0))
    if mine is not None:
        np.testing.assert_array_equal(to_numpy(mine), to_numpy(ref))
