import math

import array_api_compat.numpy as npx
import numpy as np
import pytest
from dropkit_numpy import NumpyBackend
from dropkit_numpy._masked_numba import masked_numba, relu_backward_numba
from dropkit_numpy._philox_numba import PARALLEL_MIN, dropout_fused_numba, random_bits_numba
from dropkit_numpy._philox_numpy import random_bits_numpy

import dropkit
from dropkit import philox


@pytest.mark.parametrize(
    ("key", "counter", "n", "offset"),
    [
        (0, 0, 100_003, 0),
        (5, 1, 300_001, 2),
        (2**64 - 1, 2**63 - 1, 70_001, 3),
        (12345, 6, 4099, 4 * 2**32 - 2001),
        # block indices past 2**53 (exact only in integer arithmetic) and the last block
        (9, 2, 16_385, 4 * (2**60 + 3) + 1),
        (9, 2, 40, 2**64 - 40),
        # sizes around the kernels' chunk of 4096 blocks
        (3, 4, 4 * 4096, 0),
        (3, 4, 4 * 4096 + 1, 3),
    ],
)
def test_both_numpy_kernels_equal_the_reference(key, counter, n, offset):
    want = np.asarray(philox.random_bits(npx, key, counter, n, offset=offset))
    np.testing.assert_array_equal(random_bits_numpy(key, counter, n, offset=offset), want)
    np.testing.assert_array_equal(random_bits_numba(key, counter, n, offset=offset), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_kernel_on_large_and_non_contiguous_input(dtype):
    a = np.random.default_rng(1).normal(size=(3001, 700)).astype(dtype)[::2, ::3]
    assert not a.flags.c_contiguous
    t = dropkit.keep_threshold(0.3)
    got = dropout_fused_numba(a, 77, 5, t, 1 / 0.7)
    bits = random_bits_numpy(77, 5, a.size).reshape(a.shape)
    np.testing.assert_array_equal(got, np.where(bits >= t, a * dtype(1 / 0.7), 0))


def test_pure_numpy_fallback_selected_by_environment(monkeypatch):
    monkeypatch.setenv("DROPKIT_NUMPY_KERNELS", "numpy")
    b = NumpyBackend()
    assert b.kernels == "numpy"
    one = {"noise_shape": (4,), "threshold": 0, "scale": 1.0}
    assert b.mask_scale(np.ones(4, np.float32), (0, 0), **one) is None  # no Numba kernels
    np.testing.assert_array_equal(b.random_bits((3, 4), 999), random_bits_numba(3, 4, 999))


def test_float16_uses_the_generic_path_with_the_same_mask():
    x16 = np.ones(1000, np.float16)
    x32 = np.ones(1000, np.float32)
    np.testing.assert_array_equal(
        dropkit.dropout(x16, 0.4, rng=8) != 0, dropkit.dropout(x32, 0.4, rng=8) != 0
    )


def test_reference_needs_no_64_bit_integers():
    # array_api_strict's "no_x64" device has no 64-bit dtypes, like JAX without x64.
    import array_api_strict as xs

    device = xs.Device("no_x64")
    with pytest.raises(Exception):  # noqa: B017 - the device really forbids int64
        xs.asarray([1], dtype=xs.int64, device=device)
    got = philox.random_bits(xs, 2**64 - 5, 2**40 + 3, 1000, offset=7, device=device)
    assert got.device == device
    np.testing.assert_array_equal(
        np.from_dlpack(xs.asarray(got, device=xs.Device("CPU_DEVICE"))),
        random_bits_numba(2**64 - 5, 2**40 + 3, 1000, offset=7),
    )


@pytest.mark.parametrize(
    ("shape", "noise"),
    [
        ((32, 64, 16, 16), (32, 64, 1, 1)),  # NCHW channel dropout: whole rows
        ((32, 16, 16, 64), (32, 1, 1, 64)),  # channels last: inner axis kept
        ((1, 300_000), (1, 1)),  # one draw for everything
        ((600, 500), (1, 500)),  # one draw per column
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masked_kernel_on_large_input_equals_where(shape, noise, dtype):
    # large enough for the parallel kernels (the suite's small shapes run the serial ones)
    assert math.prod(shape) >= PARALLEL_MIN
    rng = np.random.default_rng(2)
    a = rng.normal(size=shape).astype(dtype)
    a.flat[::997] = np.inf
    keep = rng.random(noise) < 0.5
    want = np.where(keep, a * dtype(2.5), dtype(0))
    np.testing.assert_array_equal(masked_numba(a, keep, 2.5), want)
    masked_numba(a, keep, 2.5, out=a)
    np.testing.assert_array_equal(a, want)


def _masked(b, x, noise):
    kw = {"threshold": 2**31, "scale": 2.0, "relu": False, "out": None}
    return b.mask_scale(x, (5, 6), noise_shape=noise, **kw)


def test_masked_kernel_declines_masks_it_has_no_loop_for():
    b = NumpyBackend()
    x = np.ones((4, 5, 6), np.float32)
    assert _masked(b, x, (4, 1, 1)) is not None
    assert _masked(b, x, (1, 5, 1)) is None  # two separate runs
    assert _masked(b, x[:, ::2], (4, 1, 1)) is None  # strided
    assert _masked(b, x.astype(np.float16), (4, 1, 1)) is None


@pytest.mark.parametrize("channel_axis", [1, -1])
def test_channel_dropout_through_the_kernel_equals_the_formula(channel_axis):
    x = np.random.default_rng(3).normal(size=(8, 6, 5, 7)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    noise = dropkit.channel_noise_shape(x.shape, 2, channel_axis=channel_axis)
    keep = dropkit.dropout_mask(noise, 0.4, rng=11)
    want = np.where(keep, x * np.float32(1 / 0.6), np.float32(0))
    kwargs = {"rng": 11, "channel_axis": channel_axis}
    np.testing.assert_array_equal(dropkit.dropout2d(x, 0.4, **kwargs), want)
    np.testing.assert_array_equal(dropkit.dropout2d_backward(x, 0.4, **kwargs), want)
    np.testing.assert_array_equal(
        dropkit.dropout2d_backward(x, 0.4, mask=keep, channel_axis=channel_axis), want
    )
    inplace = x.copy()
    assert dropkit.dropout2d(inplace, 0.4, inplace=True, **kwargs) is inplace
    np.testing.assert_array_equal(inplace, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_kernel_on_large_input_equals_where(dtype):
    rng = np.random.default_rng(4)
    g = rng.normal(size=(700, 500)).astype(dtype)  # parallel kernel (>= PARALLEL_MIN)
    h = np.maximum(rng.normal(size=g.shape), 0).astype(dtype)
    g.flat[::101] = np.nan
    want = np.where(h > 0, g * dtype(1 / 0.7), dtype(0))
    np.testing.assert_array_equal(relu_backward_numba(g, h, 1 / 0.7), want)
    b = NumpyBackend()
    gate = {"noise_shape": g.shape, "threshold": 0, "scale": 2.0}
    twice = np.where(h > 0, g * dtype(2.0), dtype(0))
    np.testing.assert_array_equal(b.mask_scale(g, None, relu=h, **gate), twice)
    assert b.mask_scale(g, None, relu=h.astype(np.float16), **gate) is None  # mixed dtypes
    strided = {**gate, "noise_shape": g[:, ::2].shape}
    assert b.mask_scale(g[:, ::2], None, relu=h[:, ::2], **strided) is None  # strided


def _host_has(feature: str) -> bool:
    import llvmlite.binding as llvm

    return f"+{feature}" in llvm.get_host_cpu_features().flatten().split(",")


@pytest.mark.parametrize("cpu", ["haswell", "host"])
def test_the_vectorised_kernel_is_exact_for_avx2_and_for_the_host(tmp_path, cpu):
    # The Philox loops compile to vector code for the CPU Numba targets: AVX-512
    # (zmm registers) on an AVX-512 machine, AVX2 (ymm) for NUMBA_CPU_NAME=haswell.
    # Both must give the reference's words, including a partial last block and in
    # place, and the generated assembly must hold the vector 32x32->64 multiply.
    import os
    import subprocess
    import sys

    if cpu == "haswell" and not _host_has("avx2"):
        pytest.skip("this CPU has no AVX2: the AVX2 code path cannot run here")
    wide = "zmm" if cpu == "host" and _host_has("avx512f") else "ymm"
    code = (
        "import numpy as np, array_api_compat.numpy as npx\n"
        "from dropkit import philox\n"
        "from dropkit_numpy import _philox_numba as k\n"
        "for n in (1, 7, 4096 * 4 + 3, 70001):\n"
        "    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)\n"
        "    bits = np.asarray(philox.random_bits(npx, 11, 5, n))\n"
        "    assert np.array_equal(k.random_bits_numba(11, 5, n), bits), n\n"
        "    want = np.where(bits >= 2**31, x * np.float32(2), 0).astype(np.float32)\n"
        "    assert np.array_equal(k.dropout_fused_numba(x, 11, 5, 2**31, 2.0), want), n\n"
        "    relu = k.dropout_fused_numba(x, 11, 5, 2**31, 2.0, relu=True)\n"
        "    assert np.array_equal(relu, np.where(x > 0, want, 0)), n\n"
        "    k.dropout_fused_numba(x, 11, 5, 2**31, 2.0, out=x)\n"
        "    assert np.array_equal(x, want), n\n"
        "for fn in (k._dropout_serial, k._bits_serial):\n"
        "    asm = '\\n'.join(fn.inspect_asm().values())\n"
        "    muls = [line for line in asm.splitlines() if 'vpmuludq' in line]\n"
        f"    assert any('{wide}' in line for line in muls), fn\n"
        "print('ok')\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    if cpu != "host":  # AVX2 code (ymm registers, no zmm), whatever this machine has
        env["NUMBA_CPU_NAME"] = cpu
        env["NUMBA_CPU_FEATURES"] = "+avx2,+fma,-avx512f,-avx512bw,-avx512dq,-avx512vl,-avx512cd"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
