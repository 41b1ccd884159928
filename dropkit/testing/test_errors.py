"""Every bad input raises the documented error, naming the argument and the value."""

from __future__ import annotations

import math

import array_api_compat
import numpy as np
import pytest

import dropkit
from dropkit.testing.strategies import float_dtypes, to_numpy

# ops on plain arrays go to the backend under test (dropkit.testing's plugin)
pytestmark = pytest.mark.usefixtures("dropkit_use_backend")


@pytest.fixture
def x(dropkit_backend):
    return dropkit_backend.xp.ones((2, 3, 4, 4), dtype=dropkit_backend.xp.float32)


@pytest.mark.parametrize("p", [-0.1, 1.5, math.nan, math.inf])
def test_p_out_of_range(x, p):
    with pytest.raises(ValueError, match=r"p is the probability of DROPPING.*\[0, 1\], got"):
        dropkit.dropout(x, p, rng=0)
    with pytest.raises(ValueError, match="got"):
        dropkit.dropout2d(x, p, rng=0)
    with pytest.raises(ValueError, match="got"):
        dropkit.dropout_backward(x, p, rng=0)


@pytest.mark.parametrize("p", ["0.5", None, True, 0.5j, [0.5]])
def test_p_not_a_real_number(x, p):
    with pytest.raises(TypeError, match=r"p must be a real number.*got"):
        dropkit.dropout(x, p, rng=0)


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool", "complex64"])
def test_non_floating_input(dropkit_backend, dtype):
    xp = dropkit_backend.xp
    if not hasattr(xp, dtype):
        pytest.skip(f"{dropkit_backend.name} has no {dtype}")
    a = xp.zeros((3,), dtype=getattr(xp, dtype))
    made = str(a.dtype).rsplit(".", 1)[-1]  # JAX without x64 makes int32 of int64
    with pytest.raises(TypeError, match=rf"x must have a real floating dtype.*{made}"):
        dropkit.dropout(a, 0.5, rng=0)
    with pytest.raises(TypeError, match=r"grad must have a real floating dtype"):
        dropkit.dropout_backward(a, 0.5, rng=0)


def test_not_an_array():
    with pytest.raises(TypeError, match=r"x must be an array.*list"):
        dropkit.dropout([1.0, 2.0], 0.5, rng=0)


@pytest.mark.parametrize(("fn", "ndim"), [("dropout1d", 3), ("dropout2d", 4), ("dropout3d", 5)])
def test_channel_dropout_rank_is_never_guessed(dropkit_backend, fn, ndim):
    xp = dropkit_backend.xp
    for rank in (ndim - 1, ndim + 1):
        a = xp.ones((2,) * rank, dtype=xp.float32)
        with pytest.raises(ValueError, match=rf"expects a {ndim}-d input.*rank {rank}"):
            getattr(dropkit, fn)(a, 0.5, rng=0)


@pytest.mark.parametrize("axis", [0, 4, -5])
def test_channel_axis_must_be_a_non_batch_axis(x, axis):
    with pytest.raises(ValueError, match=rf"channel_axis.*got {axis}"):
        dropkit.dropout2d(x, 0.5, rng=0, channel_axis=axis)


@pytest.mark.parametrize("noise_shape", [(2, 3), (2, 2, 4, 4), (2, 3, 4, 5), (1, 3, 4, 4, 1)])
def test_noise_shape_must_broadcast(x, noise_shape):
    with pytest.raises(ValueError, match=r"noise_shape"):
        dropkit.dropout(x, 0.5, rng=0, noise_shape=noise_shape)


def test_bad_mode(x):
    with pytest.raises(ValueError, match=r"mode must be one of.*'scaled'"):
        dropkit.dropout(x, 0.5, mode="scaled")


@pytest.mark.parametrize("rng", [-1, 2**64, "seed", 1.5])
def test_bad_rng(x, rng):
    with pytest.raises((TypeError, ValueError), match=r"rng must be"):
        dropkit.dropout(x, 0.5, rng=rng)


def test_backward_needs_exactly_one_mask_source(x):
    with pytest.raises(ValueError, match=r"exactly one of mask= .* or rng="):
        dropkit.dropout_backward(x, 0.5)
    _, mask = dropkit.dropout(x, 0.5, rng=0, return_mask=True)
    with pytest.raises(ValueError, match=r"exactly one of"):
        dropkit.dropout_backward(x, 0.5, mask=mask, rng=0)


def test_mask_from_another_array_library(dropkit_backend, x):
    _, mask = dropkit.dropout(x, 0.5, rng=0, return_mask=True)
    if array_api_compat.is_numpy_namespace(dropkit_backend.xp):
        strict = pytest.importorskip("array_api_strict")
        other = strict.asarray(to_numpy(mask))
    else:
        other = np.asarray(to_numpy(mask))
    with pytest.raises(TypeError, match=r"grad and mask come from different array libraries"):
        dropkit.dropout_backward(x, 0.5, mask=other)


def test_mask_on_another_device(dropkit_backend, x):
    devices = dropkit_backend.devices()
    if len(devices) < 2:
        pytest.skip(f"backend {dropkit_backend.name!r} has a single device")
    _, mask = dropkit.dropout(x, 0.5, rng=0, return_mask=True)
    xp = dropkit_backend.xp
    moved = xp.asarray(to_numpy(mask), device=devices[1])
    if array_api_compat.device(moved) == array_api_compat.device(x):
        pytest.skip("could not place an array on a second device")
    with pytest.raises(ValueError, match=r"grad is on device .* but mask is on device"):
        dropkit.dropout_backward(x, 0.5, mask=moved)


def test_mask_of_wrong_dtype(x):
    with pytest.raises(TypeError, match=r"mask must be a boolean array"):
        dropkit.dropout_backward(x, 0.5, mask=x)


def test_unknown_backend_lists_installed(x, dropkit_backend):
    with pytest.raises(
        ValueError, match=rf"unknown backend 'nope'; installed backends: .*{dropkit_backend.name}"
    ):
        dropkit.dropout(x, 0.5, rng=0, backend="nope")


def test_relu_dropout_backward_needs_h_of_the_gradient_shape(x, dropkit_backend):
    h = dropkit_backend.xp.ones((2, 3, 4, 1), dtype=dropkit_backend.xp.float32)
    with pytest.raises(ValueError, match=r"same shape.*\(2, 3, 4, 4\).*\(2, 3, 4, 1\)"):
        dropkit.relu_dropout_backward(x, h, 0.5)


def test_scale_not_finite_in_the_dtype(dropkit_backend):
    """Inverted training refuses a scale 1/(1 - p) that overflows the dtype (float16).

    Every op that scales by it: dropout and its backward, the channel and sample
    forms, ReLU-dropout and DropBlock (whose realised scale is about it).
    """
    xp = dropkit_backend.xp
    if "float16" not in float_dtypes(xp):
        pytest.skip(f"backend {dropkit_backend.name!r} has no float16")
    x = xp.ones((2, 3, 4, 4), dtype=xp.float16)
    for call in (
        lambda: dropkit.dropout(x, 0.99999, rng=0),
        lambda: dropkit.dropout2d(x, 0.99999, rng=0),
        lambda: dropkit.dropout_backward(x, 0.99999, rng=0),
        lambda: dropkit.relu_dropout(x, 0.99999, rng=0),
        lambda: dropkit.relu_dropout_backward(x, x, 0.99999),
        lambda: dropkit.dropout1d(x[0], 0.99999, rng=0),
        lambda: dropkit.dropout3d_backward(x[None], 0.99999, rng=0),
        lambda: dropkit.drop_path(x, 0.99999, rng=0),
        lambda: dropkit.drop_path_backward(x, 0.99999, rng=0),
        lambda: dropkit.dropblock2d(x, 0.99999, block_size=1, rng=0),
        lambda: dropkit.dropblock2d_backward(x, 0.99999, block_size=1, rng=0),
    ):
        with pytest.raises(ValueError, match=r"1/\(1 - p\) = 100000 not finite in .*float16"):
            call()
    # a finite scale, vanilla mode and evaluation are fine
    assert np.isfinite(to_numpy(dropkit.dropout(x, 0.9999, rng=0))).all()
    assert np.isfinite(to_numpy(dropkit.dropout(x, 0.99999, rng=0, mode="vanilla"))).all()
    assert dropkit.dropout(x, 0.99999, training=False) is x


@pytest.mark.parametrize("drop", [2.0**-11, 2.0**-16, 2.0**-40], ids=["2^-11", "2^-16", "2^-40"])
def test_family_ops_in_float16_refuse_or_stay_finite(dropkit_backend, drop):
    """With p = 1 - drop in float16, every op of the family refuses p (naming the dtype) or
    returns finite values: never inf or NaN from a finite input.

    The scales grow like 1 / (1 - p) (dropout, DropBlock, DropPath), its square root
    (Gaussian dropout) or a * |alpha'| (alpha dropout: about 9e5 at 1 - p = 2**-40).
    """
    xp = dropkit_backend.xp
    if "float16" not in float_dtypes(xp):
        pytest.skip(f"backend {dropkit_backend.name!r} has no float16")
    x = xp.full((2, 3, 8, 8), 0.5, dtype=xp.float16)
    p = 1.0 - drop
    calls = {
        "dropout": lambda: dropkit.dropout(x, p, rng=1),
        "dropout2d": lambda: dropkit.dropout2d(x, p, rng=1),
        "relu_dropout": lambda: dropkit.relu_dropout(x, p, rng=1),
        "drop_path": lambda: dropkit.drop_path(x, p, rng=1),
        "dropblock2d": lambda: dropkit.dropblock2d(x, p, block_size=3, rng=1),
        "gaussian_dropout": lambda: dropkit.gaussian_dropout(x, p, rng=1),
        "alpha_dropout": lambda: dropkit.alpha_dropout(x, p, rng=1),
        "feature_alpha_dropout": lambda: dropkit.feature_alpha_dropout(x, p, rng=1),
        "alpha_dropout_backward": lambda: dropkit.alpha_dropout_backward(x, p, rng=1),
        "dropout_backward": lambda: dropkit.dropout_backward(x, p, rng=1),
    }
    for name, call in calls.items():
        try:
            y = call()
        except ValueError as exc:
            assert "float16" in str(exc), f"{name}: {exc}"
            continue
        assert np.isfinite(to_numpy(y)).all(), f"{name} at p = 1 - {drop} gave inf or NaN"


@pytest.mark.parametrize("value", ["no", 1, None])
def test_flags_must_be_bools(x, value):
    for name in ("training", "inplace"):
        with pytest.raises(TypeError, match=rf"{name} must be a bool.*got {value!r}"):
            dropkit.dropout(x, 0.5, rng=0, **{name: value})
    with pytest.raises(TypeError, match=r"training must be a bool"):
        dropkit.dropout_backward(x, 0.5, rng=0, training=value)
    with pytest.raises(TypeError, match=r"training must be a bool"):
        dropkit.relu_dropout(x, 0.5, rng=0, training=value)


@pytest.mark.parametrize(("shape", "error"), [((-1,), ValueError), ((2.7,), TypeError)])
def test_mask_shape_must_be_non_negative_integers(dropkit_backend, shape, error):
    with pytest.raises(error, match=r"shape must be a tuple of non-negative integers"):
        dropkit.dropout_mask(shape, 0.5, rng=0, backend=dropkit_backend.name)
