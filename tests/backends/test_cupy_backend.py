"""CuPy backend on a real GPU: masks equal the CPU's, every kernel, torch CUDA tensors, training.

Skipped, with the reason, where the cupy backend cannot load (no CuPy, no CUDA
device). benchmarks/gpu_check.sh runs this file on a GPU machine. The same
kernels' arithmetic and the backend's Python code are tested without a GPU in
test_cupy_kernels_on_host.py and test_cupy_launchers_on_host.py.
"""

import json

import numpy as np
import pytest
from dk_helpers import torch_or_skip

import dropkit
from dropkit.experiment.cli import main
from dropkit.testing.plugin import skip_unavailable
from dropkit.testing.subnormals import flush_subnormals

_info = {b.name: b for b in dropkit.list_backends()}.get("cupy")
if _info is None or not _info.available:
    reason = _info.reason if _info else "dropkit-cupy not installed"
    skip_unavailable("cupy", reason, allow_module_level=True)

import cupy  # noqa: E402

F32 = np.finfo(np.float32)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def _fused(b, x, key, counter, threshold, scale, *, relu=False):
    """The backend's primitive, element-wise (the fused dropout kernel)."""
    kw = {"threshold": threshold, "scale": scale, "relu": relu, "out": None}
    return b.mask_scale(x, (key, counter), noise_shape=tuple(x.shape), **kw)


def test_same_mask_as_numpy_for_every_dtype(dtype, p):
    a = np.random.default_rng(0).standard_normal((33, 65)).astype(dtype)
    y_gpu, m_gpu = dropkit.dropout(cupy.asarray(a), p, rng=2**63 + 5, return_mask=True)
    y_cpu, m_cpu = dropkit.dropout(a, p, rng=2**63 + 5, return_mask=True)
    np.testing.assert_array_equal(m_gpu.get(), m_cpu)
    fused = dropkit.dropout(cupy.asarray(a), p, rng=2**63 + 5)  # fused kernel path
    np.testing.assert_array_equal(fused.get(), y_cpu)
    np.testing.assert_array_equal(y_gpu.get(), y_cpu)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 1025, 1 << 20, (1 << 20) + 3])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_fused_kernel_every_tail_and_misaligned_views(n, dtype):
    b = dropkit.get_backend("cupy")
    a = np.random.default_rng(n).standard_normal(n + 1).astype(dtype)
    t = dropkit.keep_threshold(0.3)
    bits = np.asarray(dropkit.get_backend("numpy").random_bits((7, 1), n))
    for view in (slice(0, n), slice(1, n + 1)):  # aligned, then one element off (scalar path)
        x = cupy.asarray(a)[view]
        y = _fused(b, x, 7, 1, t, 2.0, relu=True)
        host = a[view]
        want = np.where((bits >= t) & ~(host <= 0), host * host.dtype.type(2.0), 0)
        np.testing.assert_array_equal(y.get(), want)


def test_non_contiguous_input_and_regenerated_backward():
    a = np.random.default_rng(1).standard_normal((300, 200)).astype(np.float32)
    x = cupy.asarray(a)[::3, 1::2]
    assert not x.flags.c_contiguous
    y = dropkit.dropout(x, 0.3, rng=9)
    np.testing.assert_array_equal(y.get(), dropkit.dropout(a[::3, 1::2], 0.3, rng=9))
    dx = dropkit.dropout_backward(cupy.ones_like(x), 0.3, rng=9)
    np.testing.assert_array_equal(dx.get() != 0, y.get() != 0)


def test_relu_dropout_in_place_channel_dropout_and_backward():
    a = np.random.default_rng(2).standard_normal((8, 16, 5, 5)).astype(np.float32)
    x = cupy.asarray(a)
    out = dropkit.relu_dropout(x, 0.5, rng=4, inplace=True)
    assert out is x
    h_cpu = dropkit.relu_dropout(a, 0.5, rng=4)
    np.testing.assert_array_equal(x.get(), h_cpu)
    g = np.random.default_rng(3).standard_normal(a.shape).astype(np.float32)
    got = dropkit.relu_dropout_backward(cupy.asarray(g), x, 0.5)
    np.testing.assert_array_equal(got.get(), dropkit.relu_dropout_backward(g, h_cpu, 0.5))
    y, mask = dropkit.dropout2d(cupy.asarray(a), 0.5, rng=4, return_mask=True)
    assert mask.shape == (8, 16, 1, 1)
    np.testing.assert_array_equal(y.get(), dropkit.dropout2d(a, 0.5, rng=4))
    y = dropkit.dropout2d(cupy.asarray(a), 0.5, rng=4, channel_axis=-1)  # inner broadcast
    np.testing.assert_array_equal(y.get(), dropkit.dropout2d(a, 0.5, rng=4, channel_axis=-1))


def test_kernels_flush_float32_subnormals_like_cupy_itself():
    """CuPy compiles everything with -ftz=true; the kernels agree with CuPy's own operations."""
    b = dropkit.get_backend("cupy")
    tiny = F32.smallest_subnormal
    a = np.array([tiny, 5 * tiny, -tiny, F32.tiny, 1.0, -1.0], dtype=np.float32)
    x = cupy.asarray(a)
    assert not bool((x > 0)[0])  # CuPy's own comparison reads a subnormal as 0
    np.testing.assert_array_equal(_fused(b, x, 1, 2, 0, 1.0).get(), a)  # no multiply
    np.testing.assert_array_equal(_fused(b, x, 1, 2, 0, 2.0).get(), (x * 2).get())
    np.testing.assert_array_equal((x * 2).get(), flush_subnormals(flush_subnormals(a) * 2))
    relu = _fused(b, x, 1, 2, 0, 1.0, relu=True).get()
    np.testing.assert_array_equal(relu, cupy.where(x <= 0, 0, x).get())


def test_large_array_chunks_equal_the_whole():
    b = dropkit.get_backend("cupy")
    whole = b.random_bits((3, 4), 10_000_019).get()
    part = b.random_bits((3, 4), 1_000_003, offset=4_000_001).get()
    np.testing.assert_array_equal(whole[4_000_001:5_000_004], part)
    cpu = dropkit.get_backend("numpy").random_bits((3, 4), 4096)
    np.testing.assert_array_equal(whole[:4096], cpu)


def test_bfloat16_cupy_arrays_where_cupy_has_them():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    a = np.linspace(-2, 2, 1001).astype(ml_dtypes.bfloat16)
    try:
        x = cupy.asarray(a)
    except Exception as exc:  # CuPy without bfloat16 support
        pytest.skip(f"this CuPy has no bfloat16 arrays: {exc}")
    t = dropkit.keep_threshold(0.5)
    y = _fused(dropkit.get_backend("cupy"), x, 3, 0, t, 2.0)
    bits = np.asarray(dropkit.get_backend("numpy").random_bits((3, 0), a.size))
    want = np.where(bits >= t, a.astype(np.float32) * 2, 0)
    np.testing.assert_array_equal(y.get().astype(np.float32), want)


# ------------------------------------------------------------ torch CUDA


def _torch_cuda():
    torch = torch_or_skip()
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    dropkit.get_backend("torch")  # loads the backend (the op)
    from dropkit_torch import _op

    return torch, _op


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_torch_cuda_tensors_run_the_cupy_kernels_with_cpu_masks(dtype, monkeypatch):
    torch, _op = _torch_cuda()
    dt = getattr(torch, dtype)
    x = torch.randn(1000, 37, device="cuda").to(dt)
    seed = torch.tensor([5, 0, 7, 0])
    t = dropkit.keep_threshold(0.3)
    for relu in (False, True):
        got = _op.dropout_op(x, seed, list(x.shape), t, 1 / 0.7, relu)
        cpu = _op.dropout_op(x.cpu(), seed, list(x.shape), t, 1 / 0.7, relu)
        assert _op._cuda_kernels(x.device) is not None  # the CuPy path, not torch operations
        np.testing.assert_array_equal(got.cpu().float().numpy(), cpu.float().numpy())
        inplace = x.clone()
        _op.dropout_inplace_op(inplace, seed, list(x.shape), t, 1 / 0.7, relu)
        torch.testing.assert_close(inplace, got, rtol=0, atol=0, equal_nan=True)
    mask = _op.keep_mask(seed, (10, 37, 1), t, x.device)
    cpu_mask = _op.keep_mask(seed, (10, 37, 1), t, torch.device("cpu"))
    np.testing.assert_array_equal(mask.cpu().numpy(), cpu_mask.numpy())
    monkeypatch.setattr(_op, "CUDA_KERNELS", False)  # the torch-operations path agrees
    ops = _op.dropout_op(x, seed, list(x.shape), t, 1 / 0.7, False)
    cpu = _op.dropout_op(x.cpu(), seed, list(x.shape), t, 1 / 0.7, False)
    np.testing.assert_array_equal(ops.cpu().float().numpy(), cpu.float().numpy())


def test_torch_cuda_autograd_stream_and_the_public_op():
    torch, _op = _torch_cuda()
    x = torch.randn(4096, 33, device="cuda", requires_grad=True)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        y = dropkit.dropout(x, 0.5, rng=11)
        y.sum().backward()
    stream.synchronize()
    want = dropkit.dropout(x.detach().cpu().numpy(), 0.5, rng=11)
    np.testing.assert_array_equal(y.detach().cpu().numpy(), want)
    np.testing.assert_array_equal(x.grad.cpu().numpy() != 0, want != 0)


def test_compare_runs_on_cupy(tmp_path):
    out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                "--backend",
                "cupy",
                "--epochs",
                "3",
                "--train-size",
                "300",
                "--hidden",
                "64",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dropout"]["config"]["backend"] == "cupy"
    assert 0 <= summary["dropout"]["best_test_acc"] <= 1
