"""The CuPy backend's CUDA source, compiled for the CPU, against the array-API reference.

The kernels' text (Philox, the bits body, the dropout body) is shared between
NVRTC and this harness, so their arithmetic is checked bit for bit on machines
without a GPU. (What this cannot check: CuPy's launch and indexing; the GPU
conformance run in benchmarks/gpu_check.sh does.)
"""

import ctypes
import shutil
import subprocess

import array_api_compat.numpy as npx
import numpy as np
import pytest
from dropkit_cupy.kernels_src import BITS_OPERATION, DROPOUT_OPERATION, PHILOX_SOURCE

from dropkit import keep_threshold, philox
from dropkit.philox import split64

CC = shutil.which("cc") or shutil.which("gcc")
pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler to build the host harness")

HARNESS = (
    "#include <stdbool.h>\n"
    + PHILOX_SOURCE
    + f"""
void dk_bits(dk_u64 first, long long nblocks, dk_u32 k0, dk_u32 k1, dk_u32 c2, dk_u32 c3,
             dk_u32 *out) {{
    for (long long i = 0; i < nblocks; ++i) {{ {BITS_OPERATION} }}
}}
#define T float
void dk_dropout_f32(const float *x, long long n, dk_u32 threshold, float scale, bool relu,
                    dk_u32 k0, dk_u32 k1, dk_u32 c2, dk_u32 c3, float *y) {{
    for (long long i = 0; i < (n + 3) / 4; ++i) {{ {DROPOUT_OPERATION} }}
}}
#undef T
#define T double
void dk_dropout_f64(const double *x, long long n, dk_u32 threshold, double scale, bool relu,
                    dk_u32 k0, dk_u32 k1, dk_u32 c2, dk_u32 c3, double *y) {{
    for (long long i = 0; i < (n + 3) / 4; ++i) {{ {DROPOUT_OPERATION} }}
}}
"""
)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    folder = tmp_path_factory.mktemp("harness")
    (folder / "k.c").write_text(HARNESS)
    subprocess.run(
        [
            CC,
            "-O2",
            "-std=c99",
            "-shared",
            "-fPIC",
            "-o",
            str(folder / "k.so"),
            str(folder / "k.c"),
        ],
        check=True,
        capture_output=True,
    )
    return ctypes.CDLL(str(folder / "k.so"))


def _words(key, counter):
    k0, k1 = split64(key)
    c2, c3 = split64(counter)
    return [ctypes.c_uint32(v) for v in (k0, k1, c2, c3)]


@pytest.mark.parametrize(
    ("key", "counter", "first"), [(0, 0, 0), (2**64 - 1, 2**63 - 1, 2**32 - 3), (123456789, 42, 77)]
)
def test_device_bits_equal_the_reference(lib, key, counter, first):
    nblocks = 257
    out = np.empty(4 * nblocks, dtype=np.uint32)
    lib.dk_bits(
        ctypes.c_uint64(first),
        ctypes.c_longlong(nblocks),
        *_words(key, counter),
        out.ctypes.data_as(ctypes.c_void_p),
    )
    want = np.asarray(philox.random_bits(npx, key, counter, 4 * nblocks, offset=4 * first))
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("n", [1, 7, 1001])
def test_device_dropout_body_equals_the_reference(lib, dtype, relu, n):
    rs = np.random.default_rng(n)
    x = rs.standard_normal(n).astype(dtype)
    x[:3] = [np.inf, -np.inf, np.nan][: min(3, n)]
    y = np.full_like(x, 7.0)
    p, key, counter = 0.3, 99, 5
    t, scale = keep_threshold(p), dtype(1 / (1 - p))
    fn = lib.dk_dropout_f32 if dtype == np.float32 else lib.dk_dropout_f64
    ctype = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    fn(
        x.ctypes.data_as(ctypes.c_void_p),
        ctypes.c_longlong(n),
        ctypes.c_uint32(t),
        ctype(scale),
        ctypes.c_bool(relu),
        *_words(key, counter),
        y.ctypes.data_as(ctypes.c_void_p),
    )
    keep = np.asarray(philox.random_bits(npx, key, counter, n)) >= t
    if relu:
        keep &= ~(x <= 0)  # NaN is kept, as torch.relu keeps it
    np.testing.assert_array_equal(y, np.where(keep, x * scale, dtype(0)))


NVCC_HARNESS = (
    PHILOX_SOURCE
    + f"""
#include <cuda_fp16.h>
template <typename T>
__global__ void drop(const T *x, long long n, dk_u32 threshold, T scale, bool relu, dk_u32 k0,
                     dk_u32 k1, dk_u32 c2, dk_u32 c3, T *y) {{
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < (n + 3) / 4) {{ {DROPOUT_OPERATION} }}
}}
__global__ void bits(dk_u64 first, long long nblocks, dk_u32 k0, dk_u32 k1, dk_u32 c2,
                     dk_u32 c3, dk_u32 *out) {{
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < nblocks) {{ {BITS_OPERATION} }}
}}
template __global__ void drop<float>(const float *, long long, dk_u32, float, bool, dk_u32,
                                     dk_u32, dk_u32, dk_u32, float *);
template __global__ void drop<double>(const double *, long long, dk_u32, double, bool, dk_u32,
                                      dk_u32, dk_u32, dk_u32, double *);
template __global__ void drop<__half>(const __half *, long long, dk_u32, __half, bool, dk_u32,
                                      dk_u32, dk_u32, dk_u32, __half *);
"""
)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_device_source_compiles_for_hopper(tmp_path):
    (tmp_path / "k.cu").write_text(NVCC_HARNESS)
    result = subprocess.run(
        ["nvcc", "-arch=sm_90", "-c", str(tmp_path / "k.cu"), "-o", str(tmp_path / "k.o")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
