"""The CuPy backend's Python code on a NumPy-backed stand-in for CuPy, without a GPU.

``dropkit_cupy.kernels``, ``.backend`` and ``dropkit_torch.cuda`` import CuPy; here the
fake ``cupy`` of :mod:`dropkit_cupy.fake` (NumPy arrays with a ``data.ptr``, a
``RawModule`` whose kernels here run the host-compiled CUDA source of
:mod:`dropkit_cupy.host` over ``grid * block`` simulated threads) is put in
``sys.modules`` and the modules are imported fresh. This checks, on the CPU, what the host harness
alone does not: the backend's decline rules, contiguity and ``out`` handling,
the dtype table, the scale rounding, the module chosen (CuPy's flush-to-zero or
IEEE), the launch sizes, and the torch custom op's CUDA branch (DLPack views,
in place, bfloat16 through int16). What it cannot check: CuPy itself, the
devices and streams.
"""

from __future__ import annotations

import importlib
import sys
import types

import array_api_compat.numpy as npx
import numpy as np
import pytest
from dk_helpers import torch_or_skip
from dropkit_cupy.fake import as_fake, fake_cupy
from dropkit_cupy.host import compiler, host_kernels
from dropkit_cupy.kernels_src import DK_VEC

from dropkit import keep_threshold, philox

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C compiler to build the harness")

LAUNCHES: list[tuple[str, bool, int, int]] = []  # (kernel, ieee, grid, block)
ARGS: list[tuple] = []  # each launch's arguments


def _host_launch(name, ieee, grid, block, args):
    """A launch of the fake CuPy: recorded, then run by the host-compiled kernels."""
    assert all(type(v) is int for v in (*grid, *block)) and len(grid) == len(block) == 1
    LAUNCHES.append((name, ieee, grid[0], block[0]))
    ARGS.append(args)
    args = tuple(np.asarray(a) if isinstance(a, np.ndarray) else a for a in args)
    host_kernels(ieee=ieee).launch(name, args, threads=grid[0] * block[0])


_fake = as_fake


def _fake_cupy():
    return fake_cupy(_host_launch)


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """``dropkit_cupy.kernels``, ``.backend`` and ``dropkit_torch.cuda`` on a fake CuPy."""
    monkeypatch.setenv("CUPY_CACHE_DIR", str(tmp_path))  # the build's marker goes there
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())
    monkeypatch.setitem(sys.modules, "array_api_compat.cupy", npx)
    import dropkit_cupy

    for name in ("kernels", "backend"):
        monkeypatch.delitem(sys.modules, f"dropkit_cupy.{name}", raising=False)
        # the package attribute too: `from dropkit_cupy import x` reads it first
        monkeypatch.setattr(dropkit_cupy, name, getattr(dropkit_cupy, name, None), raising=False)
    monkeypatch.delitem(sys.modules, "dropkit_torch.cuda", raising=False)
    kernels = importlib.import_module("dropkit_cupy.kernels")
    backend = importlib.import_module("dropkit_cupy.backend")
    LAUNCHES.clear()
    ARGS.clear()
    yield types.SimpleNamespace(kernels=kernels, backend=backend.CupyBackend())
    for name in ("kernels", "backend"):
        sys.modules.pop(f"dropkit_cupy.{name}", None)
    sys.modules.pop("dropkit_torch.cuda", None)


def _fused(b, x, key, counter, threshold, scale, *, relu=False, out=None):
    """The backend's primitive, element-wise (the fused dropout kernel)."""
    return b.mask_scale(
        x,
        (key, counter),
        noise_shape=tuple(x.shape),
        threshold=threshold,
        scale=scale,
        relu=relu,
        out=out,
    )


def _reference(a, key, counter, threshold, scale, relu):
    keep = np.asarray(philox.random_bits(npx, key, counter, a.size)).reshape(a.shape) >= threshold
    if relu:
        keep &= ~(a <= 0)
    value = a * a.dtype.type(scale) if scale != 1.0 else a
    return np.where(keep, value, a.dtype.type(0))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
def test_fused_dropout_contiguous_strided_out_and_inplace(fake, dtype, relu):
    b = fake.backend
    rs = np.random.default_rng(0)
    base = rs.standard_normal((40, 30)).astype(dtype)
    t, scale = keep_threshold(0.4), 1 / 0.6
    for a in (base, base[::2, 1::3], base.T, base[:, 1:]):  # contiguous, strided, F-order, offset
        x = _fake(a)
        y = _fused(b, x, 3, 8, t, scale, relu=relu)
        np.testing.assert_array_equal(y, _reference(np.asarray(a), 3, 8, t, scale, relu))
        np.testing.assert_array_equal(x, a)  # input untouched
        assert y.shape == a.shape and y.flags.c_contiguous
    x = _fake(base.copy())
    assert _fused(b, x, 3, 8, t, scale, relu=relu, out=x) is x  # in place
    np.testing.assert_array_equal(x, _reference(base, 3, 8, t, scale, relu))
    assert _fused(b, x, 3, 8, t, scale, out=_fake(base.T)) is None  # out not contiguous
    assert _fused(b, _fake(base.astype(np.int32)), 3, 8, t, 2.0) is None
    assert _fused(b, x, 3, 8, 1 << 32, 2.0) is None
    assert {ieee for _, ieee, _, _ in LAUNCHES} == {False}  # CuPy arrays: CuPy's semantics


def test_vector_path_only_for_aligned_pointers_and_grid_is_capped(fake):
    b = fake.backend
    a = np.random.default_rng(1).standard_normal(4 * 256 * 2 * 16 * 3 + 5).astype(np.float32)
    x = _fake(a)
    y = _fused(b, x, 1, 2, keep_threshold(0.5), 2.0)
    np.testing.assert_array_equal(y, _reference(a, 1, 2, keep_threshold(0.5), 2.0, False))
    name, _, grid, block = LAUNCHES[-1]
    assert (name, grid, block) == ("dk_dropout_f32", 2 * 16, 256)  # 16 blocks per SM (2 SMs)
    vec = []
    for view in (a[1:], a[4:], a[:-3]):  # 4-byte offset, 16-byte offset, another size
        _fused(b, _fake(view), 1, 2, keep_threshold(0.5), 2.0)
        vec.append(bool(int(ARGS[-1][4]) & DK_VEC))  # the flags argument
    assert vec == [False, True, True]


def test_random_bits_and_offsets(fake):
    b = fake.backend
    whole = np.asarray(philox.random_bits(npx, 3, 4, 1003))
    np.testing.assert_array_equal(b.random_bits((3, 4), 1003), whole)
    np.testing.assert_array_equal(b.random_bits((3, 4), 101, offset=501), whole[501:602])
    assert b.random_bits((3, 4), 0).shape == (0,)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_masked_relu_backward_and_sgd_equal_the_numpy_backend(fake, dtype):
    b = fake.backend
    rs = np.random.default_rng(2)
    a = rs.standard_normal((4, 3, 5, 5)).astype(dtype)
    t = keep_threshold(0.5)
    mask = np.asarray(philox.random_bits(npx, 5, 6, 12)).reshape(4, 3, 1, 1) >= t
    want = np.where(mask, a * dtype(2.0), dtype(0))
    kw = {"noise_shape": (4, 3, 1, 1), "threshold": t, "scale": 2.0}
    np.testing.assert_array_equal(b.mask_scale(_fake(a), (5, 6), **kw), want)
    x = _fake(a.copy())
    assert b.mask_scale(x, (5, 6), out=x, **kw) is x
    np.testing.assert_array_equal(x, want)
    odd = {**kw, "noise_shape": (4, 1, 5, 1)}  # two separate broadcast runs: declined
    assert b.mask_scale(_fake(a), (5, 6), **odd) is None
    g, h = rs.standard_normal((7, 9)).astype(dtype), rs.standard_normal((7, 9)).astype(dtype)
    gate = {"noise_shape": (7, 9), "threshold": 0, "scale": 2.0}
    got = b.mask_scale(_fake(g), None, relu=_fake(h), **gate)
    np.testing.assert_array_equal(got, np.where(h <= 0, dtype(0), g * dtype(2.0)))
    assert b.mask_scale(_fake(g), None, relu=_fake(h.T.copy().T), **gate) is None
    # the application's SGD kernels (dropkit_cupy.sgd, dropkit_numpy.sgd), not the backend's
    from dropkit_cupy.sgd import sgd_update
    from dropkit_numpy.sgd import sgd_update as numpy_sgd

    if dtype == np.float16:
        assert not sgd_update(_fake(g), _fake(g), _fake(g), lr=0.1, momentum=0.9,
                              weight_decay=0.0, nesterov=False)  # fmt: skip
        return
    w1, v1 = g.copy(), h.copy()
    w2, v2 = _fake(g.copy()), _fake(h.copy())
    kwargs = {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3, "nesterov": True}
    assert numpy_sgd(w1, h, v1, **kwargs)
    assert sgd_update(w2, _fake(h), v2, **kwargs)
    np.testing.assert_array_equal(w2, w1)
    np.testing.assert_array_equal(v2, v1)
    assert not sgd_update(_fake(g.T), _fake(h.T), _fake(h.T), **kwargs) or g.shape[0] == 1


# ------------------------------------------------------------ torch CUDA op


@pytest.fixture
def torch_fake(fake, monkeypatch):
    """The torch op's CUDA branch taken by CPU tensors, on the fake CuPy."""
    torch = torch_or_skip()
    from dropkit_torch import _op

    stream = types.SimpleNamespace(cuda_stream=0)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda index=None: stream)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    torch_cuda = importlib.import_module("dropkit_torch.cuda")
    monkeypatch.setattr(_op, "_cuda_kernels", lambda device: torch_cuda)
    monkeypatch.setattr(_op, "CPU_KERNELS", False)
    return torch, _op


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("relu", [False, True])
def test_torch_op_cuda_branch_equals_the_torch_operations(torch_fake, monkeypatch, dtype, relu):
    torch, _op = torch_fake
    dt = getattr(torch, dtype)
    x = torch.randn(37, 11, generator=torch.Generator().manual_seed(0)).to(dt)
    x[0, :4] = torch.tensor([float("nan"), float("inf"), -0.0, 1e-45])
    seed = torch.tensor([5, 0, 7, 0])
    t, scale = keep_threshold(0.3), 1 / 0.7
    got = _op.dropout_op(x, seed, list(x.shape), t, scale, relu)
    strided = _op.dropout_op(x.T, seed, [11, 37], t, scale, relu)
    inplace = x.clone()
    _op.dropout_inplace_op(inplace, seed, list(x.shape), t, scale, relu)
    launched = len(LAUNCHES)
    monkeypatch.setattr(_op, "_cuda_kernels", lambda device: None)  # torch operations
    want = _op.dropout_op(x, seed, list(x.shape), t, scale, relu)
    want_strided = _op.dropout_op(x.T, seed, [11, 37], t, scale, relu)
    assert len(LAUNCHES) == launched and LAUNCHES[-1][1] is True  # IEEE module
    for a, b in ((got, want), (strided, want_strided), (inplace, want)):
        assert a.dtype == dt and a.shape == b.shape
        np.testing.assert_array_equal(a.float().numpy(), b.float().numpy())


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_torch_relu_dropout_backward_through_the_cuda_branch(torch_fake, monkeypatch, dtype):
    torch, _op = torch_fake
    dt = getattr(torch, dtype)
    x = torch.randn(50, 7, generator=torch.Generator().manual_seed(1)).to(dt)
    x[0, :2] = float("nan")
    seed = torch.tensor([1, 2, 3, 4])
    t = keep_threshold(0.5)
    grads = []
    for kernels_on in (True, False):
        if not kernels_on:
            monkeypatch.setattr(_op, "_cuda_kernels", lambda device: None)
        leaf = x.clone().requires_grad_(True)
        h = _op.dropout_op(leaf, seed, list(x.shape), t, 2.0, True)
        h.backward(torch.linspace(-3, 3, x.numel()).reshape(x.shape).to(dt))
        grads.append(leaf.grad.float().numpy())
    np.testing.assert_array_equal(grads[0], grads[1])


def test_torch_keep_mask_and_words_through_the_cuda_branch(torch_fake):
    torch, _op = torch_fake
    seed = torch.tensor([9, 1, 2, 0])
    key, counter = _op.seed_ints(seed)
    t = keep_threshold(0.5)
    mask = _op.keep_mask(seed, (3, 5, 7), t, torch.device("cpu"))
    ref = np.asarray(philox.random_bits(npx, key, counter, 105)) >= t
    assert mask.dtype == torch.bool
    np.testing.assert_array_equal(mask.numpy().reshape(-1), ref)
    words = _op.words(key, counter, 33, torch.device("cpu"), offset=7)
    want = np.asarray(philox.random_bits(npx, key, counter, 33, offset=7)).astype(np.int64)
    assert words.dtype == torch.int64
    np.testing.assert_array_equal(words.numpy(), want)


@pytest.mark.parametrize("scale", [2.0, 1 / 0.7])
def test_mask_scale_on_ml_dtypes_bfloat16_arrays(fake, scale):
    """CuPy arrays of ml_dtypes' bfloat16 (what CuPy 14 with NumPy 2.5 holds) take the
    bfloat16 kernels: the mask of the words, the product rounded to nearest-even."""
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes is not installed")
    bf16 = np.dtype(ml_dtypes.bfloat16)
    a = np.random.default_rng(4).standard_normal((9, 13)).astype(np.float32).astype(bf16)
    t = keep_threshold(0.3)
    kw = {"noise_shape": a.shape, "threshold": t, "scale": scale}
    got = fake.backend.mask_scale(_fake(a), (5, 6), **kw)
    assert got is not None and got.dtype == bf16
    keep = np.asarray(philox.random_bits(npx, 5, 6, a.size)).reshape(a.shape) >= t
    # as the NumPy reference: the factor rounded to bfloat16, the product rounded once
    want = np.where(keep, a * np.asarray(scale, bf16), bf16.type(0))
    np.testing.assert_array_equal(np.asarray(got).view(np.uint16), want.view(np.uint16))


def test_torch_cuda_tensors_skip_the_dispatcher_when_nothing_watches(torch_fake, monkeypatch):
    # CPU tensors play CUDA tensors: the CPU shortcut is off and unwatched_cuda answers
    # for them, so the calls take the CUDA route (seed tensors, the CuPy kernels) and
    # must not reach the operator, with or without grad, and give its result.
    torch, _op = torch_fake
    from dropkit_torch import functional

    import dropkit

    as_cuda = _op.unwatched
    monkeypatch.setattr(_op, "unwatched", lambda x: False)
    monkeypatch.setattr(functional, "unwatched", lambda x: False)  # draws: seed tensors
    monkeypatch.setattr(_op, "unwatched_cuda", as_cuda)
    dispatched: list[object] = []
    raw = _op._RAW

    def counting(*args):
        dispatched.append(args)
        return raw(*args)

    monkeypatch.setattr(_op, "_RAW", counting)
    x = torch.randn(37, 11, generator=torch.Generator().manual_seed(1))
    xg = x.clone().requires_grad_(True)
    before = len(LAUNCHES)
    y = dropkit.dropout(x, 0.3, rng=5)
    yg = dropkit.dropout(xg, 0.3, rng=5)
    yg.backward(torch.ones_like(yg))
    assert dispatched == [] and len(LAUNCHES) == before + 3  # forward, forward, backward
    monkeypatch.setattr(_op, "unwatched_cuda", lambda x: False)  # the operator's route
    want = dropkit.dropout(x, 0.3, rng=5)
    assert len(dispatched) == 1 and torch.equal(y, want) and torch.equal(yg.detach(), want)
    np.testing.assert_array_equal(xg.grad.numpy(), (want != 0).numpy() / np.float32(0.7))
