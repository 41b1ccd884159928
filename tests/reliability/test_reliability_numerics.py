"""Issue 11, "Numerics" (library side): NaN through ReLU-dropout, non-finite scales, flags,
shapes, dtypes, generator fields and NumPy-typed arguments, as a hostile but ordinary user.

Per-backend cases use the conformance suite's ``backend`` fixture (every installed
backend; unavailable ones, e.g. CuPy without CUDA, skip with the reason).
"""

from __future__ import annotations

import math
import re
import shutil

import array_api_compat
import numpy as np
import pytest
from dk_helpers import torch_or_skip

import dropkit
from dropkit import Generator, get_backend
from dropkit.experiment.nn import MLP
from dropkit.layers import Dropout, Dropout2d
from dropkit.packed import PackedMask, pack_mask, unpack_mask
from dropkit.testing.strategies import float_dtypes, to_numpy

# ops on plain arrays go to the backend under test (dropkit.testing's plugin)
pytestmark = pytest.mark.usefixtures("dropkit_use_backend")

# x with every awkward value; NaN and inf at several places so that some are kept
SPECIAL = np.array([np.nan, 2.0, -1.0, np.nan, np.inf, -np.inf, 0.0, -0.0] * 4, dtype=np.float32)


def _is_nan_kept(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return np.isnan(x) & keep


def _relu_reference(a: np.ndarray, keep: np.ndarray, scale: float) -> np.ndarray:
    """dropout(relu(a)) with torch.relu's NaN convention: relu(NaN) = NaN."""
    relu = np.where(a <= 0, a.dtype.type(0), a)
    return np.where(keep, relu * a.dtype.type(scale), a.dtype.type(0))


def _mask(x_shape, p, seed):
    return to_numpy(dropkit.dropout_mask(x_shape, p, rng=seed, backend="numpy"))


def _float16(dropkit_backend):
    if "float16" not in float_dtypes(dropkit_backend.xp):
        pytest.skip(f"backend {dropkit_backend.name!r} has no float16")
    return dropkit_backend.xp.float16


# --- relu_dropout turns NaN into 0: a kept NaN must stay NaN (as torch.relu) ----------------


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_relu_dropout_keeps_a_kept_nan_in_training(dropkit_backend, p):
    x = dropkit_backend.xp.asarray(SPECIAL)
    keep = _mask(SPECIAL.shape, p, 3) if p else np.ones(SPECIAL.shape, bool)
    got = to_numpy(dropkit.relu_dropout(x, p, rng=3))
    want = _relu_reference(SPECIAL, keep, 1 / (1 - p))
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got).sum() == _is_nan_kept(SPECIAL, keep).sum() > 0


@pytest.mark.parametrize("mode", ["inverted", "vanilla"])
def test_relu_dropout_keeps_nan_in_evaluation(dropkit_backend, mode):
    x = dropkit_backend.xp.asarray(SPECIAL)
    got = to_numpy(dropkit.relu_dropout(x, 0.25, training=False, mode=mode))
    factor = 0.75 if mode == "vanilla" else 1.0
    np.testing.assert_array_equal(
        got, _relu_reference(SPECIAL, np.ones(SPECIAL.shape, bool), factor)
    )


def test_relu_dropout_inplace_keeps_nan(dropkit_backend):
    x = dropkit_backend.xp.asarray(SPECIAL, copy=True)
    if not array_api_compat.is_writeable_array(x):
        pytest.skip(f"{dropkit_backend.name} arrays are immutable")
    out = dropkit.relu_dropout(x, 0.5, rng=4, inplace=True)
    assert out is x
    np.testing.assert_array_equal(
        to_numpy(x), _relu_reference(SPECIAL, _mask(SPECIAL.shape, 0.5, 4), 2.0)
    )


@pytest.mark.parametrize("training", [True, False])
def test_relu_dropout_backward_passes_gradient_where_h_is_nan(dropkit_backend, training):
    xp = dropkit_backend.xp
    x = xp.asarray(SPECIAL)
    h = dropkit.relu_dropout(x, 0.5, rng=5, training=training)
    grad = xp.ones(SPECIAL.shape, dtype=xp.float32)
    got = to_numpy(dropkit.relu_dropout_backward(grad, h, 0.5, training=training))
    hn = to_numpy(h)
    scale = 2.0 if training else 1.0
    np.testing.assert_array_equal(got, np.where(hn <= 0, 0.0, scale).astype(np.float32))
    assert np.all(got[np.isnan(hn)] == scale) and np.isnan(hn).any()


def test_relu_dropout_nan_with_the_pure_numpy_fallback(monkeypatch):
    b = get_backend("numpy")
    for attr in ("_fused", "_masked", "_relu_backward"):
        monkeypatch.setattr(b, attr, None)  # what DROPKIT_NUMPY_KERNELS=numpy selects
    got = dropkit.relu_dropout(SPECIAL, 0.5, rng=6, backend="numpy")
    np.testing.assert_array_equal(got, _relu_reference(SPECIAL, _mask(SPECIAL.shape, 0.5, 6), 2.0))
    g = dropkit.relu_dropout_backward(np.ones_like(SPECIAL), got, 0.5, backend="numpy")
    assert np.all(g[np.isnan(got)] == 2.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_dropout_nan_in_the_numba_kernels(dtype):
    pytest.importorskip("numba")
    from dropkit_numpy._masked_numba import relu_backward_numba
    from dropkit_numpy._philox_numba import dropout_fused_numba

    a = SPECIAL.astype(dtype)
    t = dropkit.keep_threshold(0.5)
    got = dropout_fused_numba(a, 6, 0, t, 2.0, relu=True)
    np.testing.assert_array_equal(got, _relu_reference(a, _mask(a.shape, 0.5, 6), 2.0))
    g = relu_backward_numba(np.ones_like(a), got, 2.0)
    np.testing.assert_array_equal(g, np.where(got <= 0, 0, 2.0).astype(dtype))


CC = shutil.which("cc") or shutil.which("gcc")


@pytest.mark.skipif(CC is None, reason="no C compiler to build the CuPy kernel source on the host")
@pytest.mark.parametrize("ieee", [False, True])
def test_relu_dropout_nan_in_the_cupy_kernel_source(ieee):
    from dropkit_cupy.host import host_kernels
    from dropkit_cupy.launch import dropout_call

    y = np.full_like(SPECIAL, 7.0)
    t = dropkit.keep_threshold(0.5)
    call = dropout_call("float32", SPECIAL, y, SPECIAL.size, 6, 0, t, 2.0, 2.0, relu=True, vec=True)
    host_kernels(ieee=ieee).launch(*call)
    np.testing.assert_array_equal(y, _relu_reference(SPECIAL, _mask(SPECIAL.shape, 0.5, 6), 2.0))


def test_relu_dropout_nan_through_torch_autograd_matches_torch_relu():
    torch = torch_or_skip()

    x = torch.tensor(SPECIAL, requires_grad=True)
    h = dropkit.relu_dropout(x, 0.0, rng=0)
    h.sum().backward()
    ref_x = torch.tensor(SPECIAL, requires_grad=True)
    ref = torch.relu(ref_x)
    ref.sum().backward()
    np.testing.assert_array_equal(h.detach().numpy(), ref.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), ref_x.grad.numpy())
    # with dropout: gradient 2 where the kept input is NaN; the return_mask form agrees
    x.grad = None
    h = dropkit.relu_dropout(x, 0.5, rng=7)
    h.sum().backward()
    hn = h.detach().numpy()
    assert np.all(x.grad.numpy()[np.isnan(hn)] == 2.0) and np.isnan(hn).any()
    y, _ = dropkit.dropout(torch.relu(x.detach()), 0.5, rng=7, return_mask=True)
    np.testing.assert_array_equal(y.numpy(), hn)


def test_relu_dropout_nan_in_the_torch_device_path(monkeypatch):
    torch = torch_or_skip()
    from dropkit_torch import _op

    monkeypatch.setattr(_op, "CPU_KERNELS", False)  # the path CUDA tensors take
    h = dropkit.relu_dropout(torch.tensor(SPECIAL), 0.5, rng=8)
    np.testing.assert_array_equal(
        h.numpy(), _relu_reference(SPECIAL, _mask(SPECIAL.shape, 0.5, 8), 2.0)
    )


def test_relu_dropout_nan_through_jax_grad_and_jvp():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x = jnp.asarray(SPECIAL)

    def f(x):
        return dropkit.relu_dropout(x, 0.5, rng=9)

    h = np.asarray(f(x))
    np.testing.assert_array_equal(h, _relu_reference(SPECIAL, _mask(SPECIAL.shape, 0.5, 9), 2.0))
    g = np.asarray(jax.grad(lambda x: jnp.sum(f(x)))(x))
    np.testing.assert_array_equal(g, np.where(h <= 0, 0.0, 2.0).astype(np.float32))
    _, tangent = jax.jvp(f, (x,), (jnp.ones_like(x),))
    np.testing.assert_array_equal(np.asarray(tangent), g)


def test_mlp_and_mc_dropout_propagate_nan_input():
    b = get_backend("numpy")
    net = MLP([3, 16, 3], backend=b, rng=Generator(0), p_hidden=0.5)
    x = np.full((2, 3), np.nan, np.float32)
    assert np.isnan(net.forward(x, training=False)).all()  # was: logits 0
    mean, _ = dropkit.mc_dropout_predict(net, x, samples=8, rng=0)
    assert np.isnan(mean).all()  # was: 1/3 everywhere


# --- float16 with p near 1: the scale 1/(1-p) overflows -------------------------------------


def test_issue_reproduction_float16_scale_overflow_raises():
    with pytest.raises(ValueError, match=r"1/\(1 - p\).*float16.*65504.*p <"):
        dropkit.dropout(np.ones(10**6, np.float16), 0.99999, rng=0)


def test_scale_not_finite_in_dtype_every_op(dropkit_backend):
    xp = dropkit_backend.xp
    x = xp.ones((2, 3, 4, 4), dtype=_float16(dropkit_backend))
    msg = r"not finite in .*float16"
    calls = [
        lambda: dropkit.dropout(x, 0.99999, rng=0),
        lambda: dropkit.dropout(x, 0.99999, rng=0, return_mask=True),
        lambda: dropkit.dropout(x, 0.99999, rng=0, noise_shape=(2, 3, 1, 1)),
        lambda: dropkit.dropout2d(x, 0.99999, rng=0),
        lambda: dropkit.dropout_backward(x, 0.99999, rng=0),
        lambda: dropkit.dropout2d_backward(x, 0.99999, rng=0),
        lambda: dropkit.dropout_backward(x, 0.99999, mask=xp.ones(x.shape, dtype=xp.bool)),
        lambda: dropkit.relu_dropout(x, 0.99999, rng=0),
        lambda: dropkit.relu_dropout_backward(x, x, 0.99999),
        lambda: Dropout(0.99999, rng=0)(x),
        lambda: Dropout2d(0.99999, rng=0)(x),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=msg):
            call()


def test_finite_scales_in_float16_still_work(dropkit_backend):
    xp = dropkit_backend.xp
    x = xp.ones((64,), dtype=_float16(dropkit_backend))
    y = to_numpy(dropkit.dropout(x, 0.9999, rng=0))  # scale 10000: finite
    assert np.isfinite(y).all()
    assert np.all(to_numpy(dropkit.dropout(x, 0.99999, rng=0, mode="vanilla")) == 0)
    assert dropkit.dropout(x, 0.99999, training=False) is x
    assert np.all(to_numpy(dropkit.dropout(x, 1.0, rng=0)) == 0)
    h = dropkit.relu_dropout(x, 0.99999, training=False, mode="vanilla")
    assert np.isfinite(to_numpy(h)).all()


def test_float16_scale_boundary_is_exact():
    # 1/(1-p) rounds to float16's max 65504 below 65520 and to inf from 65520 up
    below, at = 1 - 1 / 65519.0, 1 - 1 / 65520.0
    y = dropkit.dropout(np.ones(2**16, np.float16), below, rng=0)
    assert np.isfinite(y).all()
    with pytest.raises(ValueError, match="float16"):
        dropkit.dropout(np.ones(4, np.float16), at, rng=0)


def test_scale_overflow_in_the_torch_forms():
    torch = torch_or_skip()
    from dropkit_torch import nn as tnn

    x = torch.ones(8, dtype=torch.float16, requires_grad=True)
    with pytest.raises(ValueError, match="float16"):
        dropkit.dropout(x, 0.99999, rng=0)
    with pytest.raises(ValueError, match="float16"):
        tnn.Dropout(0.99999, rng=0)(x)
    seed = torch.tensor([0, 0, 0, 0])
    with pytest.raises(ValueError, match="float16"):
        torch.ops.dropkit.dropout(
            x.detach(), seed, [8], dropkit.keep_threshold(0.99999), 1e5, False
        )
    # bfloat16's range holds the scale
    y = dropkit.dropout(torch.ones(8, dtype=torch.bfloat16), 0.99999, rng=0)
    assert torch.isfinite(y).all()


def test_scale_overflow_in_the_jax_form_under_jit():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x = jnp.ones(8, dtype=jnp.float16)
    with pytest.raises(ValueError, match="float16"):
        jax.jit(lambda x, k: dropkit.dropout(x, 0.99999, rng=k))(x, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="float16"):
        jax.grad(lambda x: jnp.sum(dropkit.relu_dropout(x, 0.99999, rng=0)))(x)


# --- training="no" trains: booleans must be booleans --------------------------------------


@pytest.mark.parametrize("value", ["no", "", 1, 0, None, 0.0])
def test_flags_must_be_bools(dropkit_backend, value):
    xp = dropkit_backend.xp
    x = xp.ones((2, 3), dtype=xp.float32)
    calls = {
        "training": [
            lambda: dropkit.dropout(x, 0.5, rng=0, training=value),
            lambda: dropkit.dropout_backward(x, 0.5, rng=0, training=value),
            lambda: dropkit.relu_dropout(x, 0.5, rng=0, training=value),
            lambda: dropkit.relu_dropout_backward(x, x, 0.5, training=value),
        ],
        "inplace": [
            lambda: dropkit.dropout(x, 0.5, rng=0, inplace=value),
            lambda: dropkit.relu_dropout(x, 0.5, rng=0, inplace=value),
        ],
    }
    for name, fns in calls.items():
        for fn in fns:
            with pytest.raises(TypeError, match=rf"{name} must be a bool.*got {value!r}"):
                fn()


@pytest.mark.parametrize("value", ["yes", 1, None, "mask"])
def test_return_mask_must_be_a_bool_or_packed(dropkit_backend, value):
    x = dropkit_backend.xp.ones((2, 3), dtype=dropkit_backend.xp.float32)
    with pytest.raises(
        (TypeError, ValueError), match=r"return_mask must be False, True or 'packed'"
    ):
        dropkit.dropout(x, 0.5, rng=0, return_mask=value)


def test_numpy_bools_are_bools(dropkit_backend):
    x = dropkit_backend.xp.ones((2, 3), dtype=dropkit_backend.xp.float32)
    y = dropkit.dropout(x, 0.5, rng=0, training=np.False_)
    assert y is x
    _, mask = dropkit.dropout(x, 0.5, rng=0, return_mask=np.True_)
    assert tuple(mask.shape) == (2, 3)


def test_layer_and_net_flags_must_be_bools():
    with pytest.raises(TypeError, match=r"mode must be a bool.*'no'"):
        Dropout(0.5).train("no")
    layer = Dropout(0.5).train(np.False_)
    assert layer.training is False
    net = MLP([3, 4, 2], backend=get_backend("numpy"), rng=Generator(0), p_hidden=0.5)
    with pytest.raises(TypeError, match=r"training must be a bool.*'no'"):
        net.forward(np.ones((2, 3), np.float32), training="no")


def test_torch_and_jax_flags_must_be_bools():
    torch = torch_or_skip()
    from dropkit_torch import nn as tnn

    with pytest.raises(TypeError, match="inplace must be a bool"):
        dropkit.dropout(torch.ones(3), 0.5, rng=0, inplace="yes")
    with pytest.raises(TypeError, match="inplace must be a bool"):
        tnn.Dropout(0.5, inplace="no")
    jax = pytest.importorskip("jax")

    with pytest.raises(TypeError, match="inplace must be a bool"):
        dropkit.dropout(jax.numpy.ones(3), 0.5, rng=0, inplace="no")


# --- dropout_mask((-1,)) and ((2.7,)): shapes are non-negative integers ---------------------


@pytest.mark.parametrize(
    ("shape", "error", "match"),
    [
        ((-1,), ValueError, r"shape must .*non-negative.*-1"),
        ((2.7,), TypeError, r"shape must .*integers.*2.7"),
        ((3, "4"), TypeError, r"shape must .*integers.*'4'"),
        ((True,), TypeError, r"shape must .*integers.*True"),
        ("abc", TypeError, r"shape must"),
        (None, TypeError, r"shape must"),
        (-2, ValueError, r"non-negative"),
    ],
)
def test_dropout_mask_shape_must_be_non_negative_ints(shape, error, match):
    with pytest.raises(error, match=match):
        dropkit.dropout_mask(shape, 0.5, rng=0)


@pytest.mark.parametrize("shape", [(np.int64(3), 2), (0,), (), 5, np.int32(4), [2, 2]])
def test_dropout_mask_accepts_integer_shapes(dropkit_backend, shape):
    m = dropkit.dropout_mask(shape, 0.5, rng=0, backend=dropkit_backend.name)
    want = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
    assert tuple(m.shape) == tuple(int(n) for n in want)


# --- MLP(dtype="int32") builds a mixed net, MLP(dtype="banana") a traceback -----------------


@pytest.mark.parametrize(
    ("dtype", "error", "match"),
    [
        ("int32", TypeError, r"dtype must be a real floating dtype.*'int32'"),
        ("bool", TypeError, r"dtype must be a real floating dtype.*'bool'"),
        ("complex64", TypeError, r"dtype must be a real floating dtype"),
        ("banana", ValueError, r"dtype 'banana' is not a dtype of .*float32"),
        ("", ValueError, r"dtype '' is not a dtype"),
        (32, TypeError, r"dtype must be"),
        (None, TypeError, r"dtype must be"),
    ],
)
def test_mlp_dtype_must_be_a_float_dtype(dtype, error, match):
    with pytest.raises(error, match=match):
        MLP([3, 4, 2], backend=get_backend("numpy"), rng=Generator(0), dtype=dtype)


def test_mlp_accepts_float_dtype_objects():
    net = MLP([3, 4, 2], backend=get_backend("numpy"), rng=Generator(0), dtype=np.float64)
    assert all(p.dtype == np.float64 for p in net.params)


@pytest.mark.parametrize(
    ("sizes", "error", "match"),
    [
        ([3, 4.7, 2], TypeError, r"sizes must .*integers.*4.7"),
        ([3, 0, 2], ValueError, r"sizes must .*positive.*0"),
        ([3, -1, 2], ValueError, r"positive"),
        ([3], ValueError, r"at least 2"),
        ([3, True, 2], TypeError, r"integers.*True"),
        ("34", TypeError, r"sizes must"),
        (7, TypeError, r"sizes must"),
    ],
)
def test_mlp_sizes(sizes, error, match):
    with pytest.raises(error, match=match):
        MLP(sizes, backend=get_backend("numpy"), rng=Generator(0))


def test_mlp_accepts_numpy_sizes_int_seed_and_backend_name():
    net = MLP(np.array([3, 4, 2]), backend="numpy", rng=0)
    assert net.sizes == [3, 4, 2] and net.backend.name == "numpy"
    again = MLP([3, 4, 2], backend=get_backend("numpy"), rng=Generator(0))
    np.testing.assert_array_equal(net.params[0], again.params[0])


@pytest.mark.parametrize("backend_arg", [42, None, object()])
def test_mlp_bad_backend(backend_arg):
    with pytest.raises(TypeError, match="backend must be"):
        MLP([3, 4, 2], backend=backend_arg, rng=Generator(0))


# --- Generator fields assigned out of range ------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("key", 2**64 + 7, ValueError),
        ("key", -1, ValueError),
        ("key", "7", TypeError),
        ("key", 7.0, TypeError),
        ("key", True, TypeError),
        ("counter", 2**63, ValueError),
        ("counter", -1, ValueError),
        ("counter", None, TypeError),
        ("spawned", 2**64, ValueError),
        ("spawned", 1.5, TypeError),
    ],
)
def test_generator_fields_validated_on_assignment(field, value, error):
    g = Generator(7)
    with pytest.raises(error, match=rf"{field} must be a non-negative integer"):
        setattr(g, field, value)
    assert g.state == {"key": 7, "counter": 0, "spawned": 0}  # unchanged


def test_issue_reproduction_generator_key_wrapping():
    g = Generator(0)
    with pytest.raises(ValueError, match="key"):
        g.key = 2**64 + 7
    assert g.draw() == (0, 0)


def test_generator_fields_accept_numpy_integers():
    g = Generator(np.uint64(2**64 - 1), counter=np.int64(3))
    g.key = np.uint64(5)
    g.counter = np.int32(2)
    assert g.draw() == (5, 2) and type(g.key) is int and type(g.counter) is int


def test_generator_draw_at_the_end_of_the_counter_range():
    g = Generator(1, counter=2**63 - 1)
    with pytest.raises(OverflowError, match="2\\*\\*63 draws"):
        g.draw()


def test_generator_from_state_with_bad_values():
    with pytest.raises(ValueError, match="counter"):
        Generator.from_state({"key": 1, "counter": -5, "spawned": 0})
    with pytest.raises(TypeError, match="key"):
        Generator.from_state({"key": "1"})


# --- np.matrix, NumPy integer types, mc_dropout_predict inputs ----------------------------


@pytest.mark.parametrize(
    "make",
    [lambda: np.matrix([[1.0, 2.0], [3.0, 4.0]]), lambda: np.ma.masked_array([1.0, 2.0], [0, 1])],
    ids=["matrix", "masked"],
)
@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_ndarray_subclasses_with_other_semantics_are_refused(make):
    a = make()
    for call in (
        lambda: dropkit.dropout(a, 0.5, rng=0),
        lambda: dropkit.dropout(a, 0.5, rng=0, return_mask=True),
        lambda: dropkit.relu_dropout(a, 0.5, rng=0),
        lambda: dropkit.dropout_backward(a, 0.5, rng=0),
        lambda: dropkit.relu_dropout_backward(a, a, 0.5),
    ):
        with pytest.raises(TypeError, match=r"numpy\.(matrix|ma\.MaskedArray).*np\.asarray"):
            call()


def test_memmap_input_is_accepted(tmp_path):
    a = np.lib.format.open_memmap(tmp_path / "a.npy", mode="w+", dtype=np.float32, shape=(64,))
    a[:] = 1.0
    y = dropkit.dropout(a, 0.5, rng=0)
    np.testing.assert_array_equal(y, dropkit.dropout(np.ones(64, np.float32), 0.5, rng=0))


def test_numpy_integers_in_noise_shape_and_channel_axis(dropkit_backend):
    xp = dropkit_backend.xp
    x = xp.ones((2, 3, 4), dtype=xp.float32)
    want = to_numpy(dropkit.dropout(x, 0.5, rng=0, noise_shape=(2, 3, 1)))
    got = dropkit.dropout(x, 0.5, rng=0, noise_shape=(np.int64(2), np.int32(3), np.int64(1)))
    np.testing.assert_array_equal(to_numpy(got), want)
    got = dropkit.dropout1d(x, 0.5, rng=0, channel_axis=np.int64(1))
    np.testing.assert_array_equal(to_numpy(got), want)


@pytest.mark.parametrize("noise_shape", [(2, 3, 1.0), (2, 3, "1"), (2, 3, True), 5])
def test_bad_noise_shape_entries(dropkit_backend, noise_shape):
    x = dropkit_backend.xp.ones((2, 3, 4), dtype=dropkit_backend.xp.float32)
    with pytest.raises((TypeError, ValueError), match="noise_shape"):
        dropkit.dropout(x, 0.5, rng=0, noise_shape=noise_shape)


@pytest.mark.parametrize("axis", [1.0, "1", True, None])
def test_bad_channel_axis(axis):
    with pytest.raises(TypeError, match="channel_axis must be an int"):
        dropkit.dropout1d(np.ones((2, 3, 4)), 0.5, rng=0, channel_axis=axis)


@pytest.fixture
def net():
    return MLP([3, 8, 2], backend=get_backend("numpy"), rng=Generator(0), p_hidden=0.5)


def test_mc_dropout_accepts_numpy_integer_sample_counts(net):
    x = np.ones((2, 3), np.float32)
    a = dropkit.mc_dropout_forward(net, x, samples=np.int64(4), rng=1)
    b = dropkit.mc_dropout_forward(net, x, samples=4, rng=1)
    np.testing.assert_array_equal(a, b)
    mean, _ = dropkit.mc_dropout_predict(net, x, samples=np.uint8(3), rng=1)
    assert mean.shape == (2, 2)


@pytest.mark.parametrize(
    ("samples", "error"),
    [
        (0, ValueError),
        (-3, ValueError),
        (True, TypeError),
        (2.5, TypeError),
        ("4", TypeError),
        (None, TypeError),
    ],
)
def test_mc_dropout_bad_sample_counts(net, samples, error):
    with pytest.raises(error, match=r"samples must be a positive int"):
        dropkit.mc_dropout_predict(net, np.ones((2, 3), np.float32), samples=samples)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (np.ones((2, 5), np.float32), ValueError, r"x must have shape \(N, 3\).*\(2, 5\)"),
        (np.ones(3, np.float32), ValueError, r"x must have shape \(N, 3\).*\(3,\)"),
        (np.ones((2, 2, 3), np.float32), ValueError, r"x must have shape \(N, 3\)"),
        ([[1.0, 2.0, 3.0]], TypeError, r"x must be an array.*list"),
        (np.ones((2, 3), np.int64), TypeError, r"x must have a real floating dtype"),
        (np.ones((2, 3), np.float64), TypeError, r"x has dtype float64 but the net.*float32"),
        ("matrix", TypeError, r"numpy\.matrix"),
    ],
)
@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_mc_dropout_and_forward_bad_inputs(net, x, error, match):
    if isinstance(x, str):
        x = np.matrix(np.ones((2, 3), np.float32))
    with pytest.raises(error, match=match):
        dropkit.mc_dropout_predict(net, x, samples=3, rng=0)
    with pytest.raises(error, match=match):
        net.forward(x, training=True)


def test_mc_dropout_input_of_another_library(net):
    torch = torch_or_skip()
    with pytest.raises(TypeError, match=r"x is an array of .*torch.*net.*numpy"):
        dropkit.mc_dropout_predict(net, torch.ones(2, 3), samples=3)


def test_mc_dropout_empty_batch(net):
    mean, var = dropkit.mc_dropout_predict(net, np.ones((0, 3), np.float32), samples=3, rng=0)
    assert mean.shape == var.shape == (0, 2)


def test_mc_dropout_not_a_net():
    with pytest.raises(TypeError, match=r"model must be a callable .*MLP; got str"):
        dropkit.mc_dropout_predict("net", np.ones((2, 3)), samples=3)


def test_mc_dropout_refuses_a_selu_net():
    # its passes would apply ReLU-dropout to a SELU net: a wrong result, so refused
    from dropkit.experiment.nn import MLP

    net = MLP([3, 4, 2], backend="numpy", rng=0, p_hidden=0.5, activation="selu")
    with pytest.raises(ValueError, match="activation='selu'"):
        dropkit.mc_dropout_predict(net, np.ones((2, 3), np.float32), samples=3)


# --- beyond the list: packed masks, p as NumPy scalars, rng types, inf ---------------------


def test_unpack_mask_of_junk_and_of_inconsistent_masks():
    with pytest.raises(TypeError, match="packed must be a PackedMask"):
        unpack_mask(np.ones(3, np.uint8))
    bad = PackedMask(np.zeros(1, np.uint8), (4, 4))  # 16 bits need 2 bytes
    with pytest.raises(ValueError, match=r"2 bytes.*\(4, 4\).*1"):
        unpack_mask(bad)
    with pytest.raises(TypeError, match="mask must be a boolean array"):
        pack_mask(np.ones(3))
    with pytest.raises(ValueError, match=r"mask has shape \(3, 2\), but the forward pass.s mask"):
        dropkit.dropout_backward(np.ones((2, 3)), 0.5, mask=pack_mask(np.ones((3, 2), bool)))


def test_p_as_numpy_scalars_and_rng_as_numpy_integers(dropkit_backend):
    x = dropkit_backend.xp.ones((8,), dtype=dropkit_backend.xp.float32)
    want = to_numpy(dropkit.dropout(x, 0.25, rng=3))
    np.testing.assert_array_equal(
        to_numpy(dropkit.dropout(x, np.float32(0.25), rng=np.int64(3))), want
    )
    np.testing.assert_array_equal(
        to_numpy(dropkit.dropout(x, np.float64(0.25), rng=np.uint64(3))), want
    )


def test_inf_inputs_stay_inf_where_kept_and_zero_where_dropped(dropkit_backend):
    a = np.array([np.inf, -np.inf] * 16, np.float32)
    y = to_numpy(dropkit.dropout(dropkit_backend.xp.asarray(a), 0.5, rng=2))
    keep = _mask(a.shape, 0.5, 2)
    np.testing.assert_array_equal(y, np.where(keep, a, 0).astype(np.float32))


def test_inplace_on_a_read_only_array():
    a = np.ones(8)
    a.flags.writeable = False
    for call in (
        lambda: dropkit.dropout(a, 0.5, rng=0, inplace=True),
        lambda: dropkit.relu_dropout(a, 0.5, rng=0, inplace=True),
        lambda: dropkit.dropout(a, 0.5, training=False, mode="vanilla", inplace=True),
    ):
        with pytest.raises(ValueError, match=r"inplace=True but x .* is read-only"):
            call()
    np.testing.assert_array_equal(a, 1.0)  # untouched
    assert dropkit.dropout(a, 0.5, rng=0).shape == (8,)  # not in place: fine


def test_scalars_zero_d_big_endian_and_strided_inputs_are_accepted():
    assert dropkit.dropout(np.float32(3.0), 0.0, rng=0).dtype == np.float32
    assert dropkit.dropout(np.array(1.0), 0.5, rng=0).shape == ()
    big = dropkit.dropout(np.ones(16, ">f4"), 0.5, rng=1)
    np.testing.assert_array_equal(big, dropkit.dropout(np.ones(16, np.float32), 0.5, rng=1))
    a = np.ones((4, 8))[:, ::2]
    out = dropkit.dropout(a, 0.5, rng=2, inplace=True)
    assert out is a
    np.testing.assert_array_equal(a, dropkit.dropout(np.ones((4, 4)), 0.5, rng=2))


def test_p_as_a_zero_d_array_is_a_clear_error():
    with pytest.raises(TypeError, match=r"p must be a real number.*ndarray"):
        dropkit.dropout(np.ones(3), np.array(0.5), rng=0)


def test_generator_spawn_counts():
    assert len(Generator(0).spawn(np.int64(2))) == 2
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        Generator(0).spawn(-1)
    with pytest.raises(TypeError, match="n must be a non-negative integer"):
        Generator(0).spawn(2.0)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.array([0, 5]), r"labels must be class indices in \[0, 3\).*got 5 at index 1"),
        (np.array([-1, 0]), r"got -1 at index 0"),
        (np.array([0.0, 1.0]), r"labels must be a 1-d integer array.*float64"),
        (np.array([0]), r"labels must be a 1-d integer array of the 2 rows.*\(1,\)"),
        (np.array([[0], [1]]), r"1-d integer array"),
    ],
)
def test_softmax_cross_entropy_labels(labels, match):
    from dropkit.experiment.nn import softmax_cross_entropy

    with pytest.raises(ValueError, match=match):
        softmax_cross_entropy(npx_namespace(), np.zeros((2, 3)), labels)


def test_softmax_cross_entropy_accepts_unsigned_labels():
    from dropkit.experiment.nn import softmax_cross_entropy

    loss, _ = softmax_cross_entropy(npx_namespace(), np.zeros((2, 3)), np.array([2, 0], np.uint8))
    assert loss == pytest.approx(math.log(3))


def test_mlp_backward_with_a_wrong_gradient_shape(net):
    net.forward(np.ones((2, 3), np.float32), training=True)
    for shape in ((5, 2), (2, 3)):
        with pytest.raises(
            ValueError, match=r"dlogits must have .*\(2, 2\), got " + re.escape(str(shape))
        ):
            net.backward(np.ones(shape, np.float32))
    net.forward(np.ones((2, 3), np.float32), training=False)
    with pytest.raises(RuntimeError, match="training=True first"):
        net.backward(np.ones((2, 2), np.float32))


def test_mlp_with_float16_and_p_near_one_names_the_scale():
    net = MLP([3, 4, 2], backend="numpy", rng=0, p_hidden=0.99999, dtype="float16")
    with pytest.raises(ValueError, match="float16"):
        net.forward(np.ones((2, 3), np.float16), training=True)
    assert np.isfinite(net.forward(np.ones((2, 3), np.float16), training=False)).all()


def npx_namespace():
    import array_api_compat.numpy as xp

    return xp


def test_scale_overflow_and_nan_on_dask_float16_chunks():
    da = pytest.importorskip("dask.array")
    x = da.ones(64, dtype="float16", chunks=16)
    with pytest.raises(ValueError, match="float16"):
        dropkit.dropout(x, 0.99999, rng=0)  # refused before any chunk is computed
    a = SPECIAL.astype(np.float16)
    h = dropkit.relu_dropout(da.from_array(a, chunks=5), 0.5, rng=6).compute()
    np.testing.assert_array_equal(h, _relu_reference(a, _mask(a.shape, 0.5, 6), 2.0))
