"""The CuPy backend's CUDA source, compiled for the CPU, against the array-API reference.

The kernels' text is shared between NVRTC and this harness
(:mod:`dropkit_cupy.host`), and so are the launch arguments
(:mod:`dropkit_cupy.launch`): the arithmetic, the tails, the grid-stride loop,
the flags, the argument types and the scale encodings are checked bit for bit
on machines without a GPU, for both float32 semantics (CuPy's flush-to-zero,
imitated on the host, and IEEE for torch tensors). What this cannot check: the
thread index, the vector loads and the device's own conversions; the GPU run
of ``benchmarks/gpu_check.sh`` does.

Where NVRTC is found (``DROPKIT_NVRTC=/path/libnvrtc.so``, a CUDA toolkit, or
the ``nvidia-cuda-nvrtc`` wheel) the source is also compiled for Hopper exactly
as CuPy compiles it, and the generated code is checked for the vector loads,
the flush-to-zero instructions and the absence of local memory and of
contracted multiply-adds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import subprocess
import sys

import array_api_compat.numpy as npx
import numpy as np
import pytest
from dk_helpers import torch_or_skip
from dropkit_cupy import launch
from dropkit_cupy.host import compiler, host_kernels
from dropkit_cupy.kernels_src import KERNEL_NAMES, KERNEL_SOURCE, NVRTC_OPTIONS

from dropkit import keep_threshold, philox
from dropkit.experiment.optim import SGD
from dropkit.testing.subnormals import flush_subnormals

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C compiler to build the harness")

F32 = np.finfo(np.float32)
SPECIAL32 = np.array(
    [np.inf, -np.inf, np.nan, -0.0, 0.0, F32.smallest_subnormal, -F32.smallest_subnormal,
     5 * F32.smallest_subnormal, F32.tiny, F32.tiny / 2, -F32.tiny / 4, 1.0, -1.0, F32.max],
    dtype=np.float32,
)  # fmt: skip


@pytest.fixture(scope="module", params=[False, True], ids=["cupy-ftz", "ieee"])
def variant(request):
    return request.param


def _kernels(ieee):
    return host_kernels(ieee=ieee)


def _words(key, counter, n):
    return np.asarray(philox.random_bits(npx, key, counter, n))


def _seen(a, ieee):
    """``a`` as the module reads it: float32 flushed by the CuPy module."""
    return a if ieee or a.dtype != np.float32 else flush_subnormals(a)


def _scaled(a, scale, ieee):
    """``a * scale`` rounded to ``a``'s dtype as the module computes it (only when scale != 1)."""
    if scale == 1.0:
        return a
    with np.errstate(over="ignore", invalid="ignore"):
        product = _seen(a, ieee) * a.dtype.type(scale)
    return _seen(product, ieee)


def _assert_same(got, want):
    np.testing.assert_array_equal(got, want)
    both = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[both]), np.signbit(want[both]))


def _inputs(dtype, n, seed):
    a = np.random.default_rng(seed).standard_normal(n).astype(dtype)
    with np.errstate(over="ignore"):  # float32's max is inf in float16
        special = SPECIAL32.astype(dtype)
    a[: min(n, special.size)] = special[: min(n, special.size)]
    return a


# ----------------------------------------------------------------- signatures


def _parsed_signatures():
    """Every ``__global__`` kernel's parameter types, from the preprocessed device source."""
    done = subprocess.run(
        [compiler(), "-E", "-P", "-x", "c", "-D__CUDACC__", "-"],
        input=KERNEL_SOURCE,
        capture_output=True,
        text=True,
        check=True,
    )
    types = {
        "dk_u32": "u32",
        "dk_i64": "i64",
        "dk_u64": "u64",
        "int": "i32",
        "float": "f32",
        "double": "f64",
    }
    found = {}
    for name, params in re.findall(r"__global__\s+void\s+(\w+)\s*\(([^)]*)\)", done.stdout):
        kinds = []
        for param in params.split(","):
            words = param.replace("*", " * ").split()[:-1]  # drop the parameter's name
            words = [w for w in words if w != "const"]
            kinds.append("ptr" if "*" in words else types[" ".join(words)])
        found[name] = tuple(kinds)
    return found


def test_kernel_signatures_match_the_launch_arguments():
    parsed = _parsed_signatures()
    assert set(parsed) == set(KERNEL_NAMES) == set(launch.SIGNATURES)
    assert parsed == launch.SIGNATURES


def test_launch_refuses_arguments_of_the_wrong_c_type():
    k = _kernels(False)
    x = np.zeros(4, dtype=np.float32)
    name, args = launch.dropout_call("float32", x, x, 4, 0, 0, 1, 2.0, 2.0, relu=False, vec=True)
    bad = list(args)
    bad[3] = np.float64(2.0)  # a double where the kernel takes a float: CuPy would pass 8 bytes
    with pytest.raises(TypeError, match=r"argument 3 must be numpy\.float32"):
        k.launch(name, tuple(bad))
    bad = list(args)
    bad[2] = 4  # a Python int is passed as int64 by CuPy, but the harness wants the exact type
    with pytest.raises(TypeError, match="argument 2"):
        k.launch(name, tuple(bad))


# ----------------------------------------------------------------- Philox words


@pytest.mark.parametrize(
    ("key", "counter", "first"), [(0, 0, 0), (2**64 - 1, 2**63 - 1, 2**32 - 3), (123456789, 42, 77)]
)
@pytest.mark.parametrize("vec", [True, False])
def test_bits_equal_the_reference(key, counter, first, vec):
    nblocks = 257
    out = np.empty(4 * nblocks, dtype=np.uint32)
    _kernels(False).launch(*launch.bits_call(out, first, nblocks, key, counter, vec=vec), threads=5)
    want = np.asarray(philox.random_bits(npx, key, counter, 4 * nblocks, offset=4 * first))
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 1001])
@pytest.mark.parametrize("vec", [True, False])
def test_keep_mask_equals_the_reference(n, vec):
    t = keep_threshold(0.3)
    out = np.full(n, 7, dtype=np.uint8)
    _kernels(False).launch(*launch.keep_mask_call(out, n, 5, 9, t, vec=vec), threads=3)
    np.testing.assert_array_equal(out, (_words(5, 9, n) >= t).astype(np.uint8))


# ----------------------------------------------------------------- fused dropout


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 1001])
@pytest.mark.parametrize("scale", [1.0, 2.0, 1 / 0.7])
def test_dropout_equals_the_reference(variant, dtype, relu, n, scale):
    a = _inputs(dtype, n, n)
    p, key, counter = 0.3, 99, 5
    t = keep_threshold(p)
    keep = _words(key, counter, n) >= t
    if relu:
        keep &= ~(_seen(a, variant) <= 0)  # NaN is kept, as torch.relu keeps it
    want = np.where(keep, _scaled(a, scale, variant), dtype(0))
    rounded = float(dtype(scale))
    for inplace, vec, threads in ((False, True, 1), (False, False, 4), (True, True, 3)):
        x = a.copy()
        y = x if inplace else np.full_like(a, 7.0)
        call = launch.dropout_call(
            np.dtype(dtype).name, x, y, n, key, counter, t, scale, rounded, relu=relu, vec=vec
        )
        _kernels(variant).launch(*call, threads=threads)
        _assert_same(y, want)
        if not inplace:
            np.testing.assert_array_equal(x, a)  # input untouched


def test_dropout_of_a_subnormal_with_scale_one_keeps_it_in_both_modules():
    """The array-API path does not multiply by 1; neither does the kernel (the suite's failure)."""
    a = np.full(8, 5 * F32.smallest_subnormal, dtype=np.float32)
    for ieee in (False, True):
        y = np.empty_like(a)
        call = launch.dropout_call("float32", a, y, 8, 1, 2, 0, 1.0, 1.0, relu=False, vec=True)
        host_kernels(ieee=ieee).launch(*call)
        np.testing.assert_array_equal(y, a)  # kept unchanged, not flushed
        call = launch.dropout_call("float32", a, y, 8, 1, 2, 0, 2.0, 2.0, relu=False, vec=True)
        host_kernels(ieee=ieee).launch(*call)
        np.testing.assert_array_equal(y, a * 2 if ieee else np.zeros_like(a))


def _f16_all():
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)


@pytest.mark.parametrize("scale", [2.0, 1 / 0.7, 1 / 0.3, 1024.0])
@pytest.mark.parametrize("relu", [False, True])
def test_float16_dropout_on_every_bit_pattern(variant, scale, relu):
    """All 65536 float16 values, kept (threshold 0): the product is NumPy's float16 product."""
    a = _f16_all()
    n = a.size - 3  # a tail
    a = a[:n]
    y = np.full(n, 7, dtype=np.uint16)
    x = a.view(np.uint16)
    rounded = float(np.float16(scale))
    call = launch.dropout_call("float16", x, y, n, 3, 4, 0, scale, rounded, relu=relu, vec=True)
    _kernels(variant).launch(*call, threads=2)
    with np.errstate(over="ignore", invalid="ignore"):
        want = a * np.float16(scale)
    if relu:
        want = np.where(a <= 0, np.float16(0), want)
    _assert_same(y.view(np.float16), want)


@pytest.mark.parametrize("relu", [False, True])
def test_float16_dropout_mask_and_tails(variant, relu):
    for n in (1, 2, 3, 5, 6, 7, 9, 1003):
        a = _inputs(np.float16, n, n)
        t = keep_threshold(0.5)
        keep = _words(8, 1, n) >= t
        if relu:
            keep &= ~(a <= 0)
        want = np.where(keep, a * np.float16(2.0), np.float16(0))
        for vec in (True, False):
            y = np.empty(n, dtype=np.uint16)
            call = launch.dropout_call(
                "float16", a.view(np.uint16), y, n, 8, 1, t, 2.0, 2.0, relu=relu, vec=vec
            )
            _kernels(variant).launch(*call, threads=3)
            _assert_same(y.view(np.float16), want)


def _bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _f32_to_bf16(f):
    u = f.view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(f)
    return np.where(nan, ((u >> 16) | 0x40).astype(np.uint16), rounded)


@pytest.mark.parametrize("scale", [1.0, 2.0, 1 / 0.7])
@pytest.mark.parametrize("relu", [False, True])
def test_bfloat16_dropout_on_every_bit_pattern(variant, scale, relu):
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    n = bits.size - 1
    bits = bits[:n]
    t = keep_threshold(0.25)
    keep = _words(4, 4, n) >= t
    f = _bf16_to_f32(bits)
    if relu:
        keep &= ~(_seen(f, variant) <= 0)
    rounded = launch.bf16_round(scale)
    if scale == 1.0:
        value = bits
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            value = _f32_to_bf16(_seen(_seen(f, variant) * np.float32(rounded), variant))
    want = np.where(keep, value, np.uint16(0))
    y = np.empty(n, dtype=np.uint16)
    call = launch.dropout_call("bfloat16", bits, y, n, 4, 4, t, scale, rounded, relu=relu, vec=True)
    _kernels(variant).launch(*call, threads=2)
    got, exp = _bf16_to_f32(y), _bf16_to_f32(want)
    _assert_same(got, exp)


def test_bfloat16_product_equals_torch():
    torch = torch_or_skip()
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    y = np.empty_like(bits)
    scale = 1 / 0.7
    rounded = launch.bf16_round(scale)
    call = launch.dropout_call(
        "bfloat16", bits, y, bits.size, 0, 0, 0, scale, rounded, relu=False, vec=True
    )
    host_kernels(ieee=True).launch(*call)
    x = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16)
    want = (x * torch.tensor(scale, dtype=torch.bfloat16)).view(torch.int16).numpy()
    assert rounded == torch.tensor(scale, dtype=torch.bfloat16).item()
    _assert_same(_bf16_to_f32(y), _bf16_to_f32(want.view(np.uint16)))


def test_a_seed_in_device_memory_replaces_key_and_counter():
    """The torch op's seed tensor (int64 words < 2**32) is read by the kernel itself."""
    key, counter, n = 2**64 - 5, 2**63 + 2**31 + 7, 1003
    seed = np.array([key & 0xFFFFFFFF, key >> 32, counter & 0xFFFFFFFF, counter >> 32], np.int64)
    a = _inputs(np.float32, n, 9)
    t = keep_threshold(0.5)
    want = np.where(_words(key, counter, n) >= t, _scaled(a, 2.0, True), np.float32(0))
    y = np.empty_like(a)
    call = launch.dropout_call(
        "float32", a, y, n, 0, 0, t, 2.0, 2.0, relu=False, vec=True, seed=seed
    )
    _kernels(True).launch(*call, threads=3)
    _assert_same(y, want)
    keep = np.empty(n, dtype=np.uint8)
    _kernels(True).launch(*launch.keep_mask_call(keep, n, 0, 0, t, vec=True, seed=seed))
    np.testing.assert_array_equal(keep, _words(key, counter, n) >= t)


# ----------------------------------------------------------- channel dropout


@pytest.mark.parametrize(
    ("shape", "noise"),
    [
        ((4, 3, 5, 5), (4, 3, 1, 1)),
        ((4, 5, 5, 3), (4, 1, 1, 3)),
        ((7, 9), (1, 9)),
        ((6, 2), (6, 1)),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_masked_equals_the_reference(variant, shape, noise, dtype, scale):
    rs = np.random.default_rng(1)
    a = rs.standard_normal(shape).astype(dtype)
    a.reshape(-1)[:4] = [np.nan, np.inf, F32.smallest_subnormal, -0.0]
    keep = rs.random(noise) < 0.5
    parts = launch.split_broadcast(shape, noise)
    want = np.where(keep, _scaled(a, scale, variant), dtype(0))
    bits = np.uint16 if dtype == np.float16 else dtype
    for inplace in (False, True):
        x = a.copy()
        y = x if inplace else np.empty_like(a)
        name = np.dtype(dtype).name
        rounded = float(dtype(scale))
        call = launch.masked_call(
            name, x.view(bits), y.view(bits), keep.astype(np.uint8), parts, scale, rounded
        )
        _kernels(variant).launch(*call, threads=4)
        _assert_same(y, want)


# ------------------------------------------------------ ReLU-dropout backward


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("scale", [1.0, 2.0, 0.7])
def test_relu_backward_equals_the_reference(variant, dtype, scale):
    n = 301
    rs = np.random.default_rng(2)
    if dtype == "bfloat16":
        g = _f32_to_bf16(rs.standard_normal(n).astype(np.float32))
        h = _f32_to_bf16(_inputs(np.float32, n, 3))
        gf, hf = _bf16_to_f32(g), _bf16_to_f32(h)
        rounded = launch.bf16_round(scale)
        if scale == 1.0:
            value = g
        else:
            value = _f32_to_bf16(_seen(_seen(gf, variant) * np.float32(rounded), variant))
        want = np.where(_seen(hf, variant) <= 0, np.uint16(0), value)
        got = np.empty(n, dtype=np.uint16)
        call = launch.relu_backward_call(dtype, g, h, got, n, scale, rounded)
        _kernels(variant).launch(*call, threads=3)
        _assert_same(_bf16_to_f32(got), _bf16_to_f32(want))
        return
    t = np.dtype(dtype).type
    g = _inputs(t, n, 4)[::-1].copy()
    h = _inputs(t, n, 5)
    want = np.where(_seen(h, variant) <= 0, t(0), _scaled(g, scale, variant))  # NaN in h passes
    bits = np.uint16 if dtype == "float16" else t
    got = np.empty_like(g)
    call = launch.relu_backward_call(
        dtype, g.view(bits), h.view(bits), got.view(bits), n, scale, float(t(scale))
    )
    _kernels(variant).launch(*call, threads=3)
    _assert_same(got, want)


# ------------------------------------------------------------------------ SGD


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("momentum", "nesterov", "decay"),
    [(0.0, False, 0.0), (0.0, False, 1e-3), (0.9, False, 1e-3), (0.9, True, 0.1), (0.5, True, 0.0)],
)
def test_sgd_equals_the_array_api_update(variant, dtype, momentum, nesterov, decay):
    rs = np.random.default_rng(3)
    w0 = rs.standard_normal(1001).astype(dtype)
    grads = [rs.standard_normal(1001).astype(dtype) for _ in range(3)]
    plain_w = [w0.copy()]
    plain = SGD(npx, plain_w, momentum=momentum, nesterov=nesterov, weight_decay=decay)
    w, v = w0.copy(), np.zeros_like(w0)
    for g in grads:
        plain.step([g], lr=0.1)
        call = launch.sgd_call(
            np.dtype(dtype).name,
            w,
            g,
            v,
            w.size,
            lr=0.1,
            momentum=momentum,
            weight_decay=decay,
            nesterov=nesterov,
        )
        _kernels(variant).launch(*call, threads=5)
    _assert_same(w, plain_w[0])
    _assert_same(v, plain.velocity[0])


def test_sgd_flushes_float32_subnormals_in_the_cupy_module():
    tiny = F32.smallest_subnormal
    w = np.array([1.0, tiny * 8, 1.0], dtype=np.float32)
    g = np.array([tiny * 4, 1.0, tiny], dtype=np.float32)
    for ieee in (False, True):
        ww, v = w.copy(), np.zeros_like(w)
        call = launch.sgd_call(
            "float32", ww, g, v, 3, lr=0.5, momentum=0.9, weight_decay=0.0, nesterov=False
        )
        host_kernels(ieee=ieee).launch(*call)
        seen = g if ieee else flush_subnormals(g)
        np.testing.assert_array_equal(v, seen)
        want = (w if ieee else flush_subnormals(w)) - np.float32(0.5) * seen
        np.testing.assert_array_equal(ww, want if ieee else flush_subnormals(want))


# ----------------------------------------------------------- launch helpers


def test_bf16_round_and_split_broadcast_and_grid():
    assert launch.bf16_round(1.0 + 2**-8 + 2**-20) == 1.0 + 2**-7  # above the tie: up
    assert launch.bf16_round(1.0 + 2**-8) == 1.0  # tie: to even
    assert launch.bf16_round(1.0 + 2**-8 + 2**-30) == 1.0  # a tie once in float32, as torch
    assert np.isnan(launch.bf16_round(float("nan")))
    assert launch.split_broadcast((2, 3), (2, 3)) is None
    assert launch.grid_size(1, 132) == 1
    assert launch.grid_size(256 * 132 * 16 + 1, 132) == 132 * 16


# --------------------------------------------------------------------- NVRTC


def _find_nvrtc():
    explicit = os.environ.get("DROPKIT_NVRTC")
    if explicit:
        return explicit
    found = ctypes.util.find_library("nvrtc")
    if found:
        return found
    roots = [*sys.path, os.environ.get("CUDA_PATH", "/usr/local/cuda")]
    for root in roots:
        for pattern in ("nvidia/*/lib/libnvrtc.so*", "nvidia/cuda_nvrtc/lib/libnvrtc.so*"):
            hits = sorted(glob.glob(os.path.join(root, pattern)))
            hits = [h for h in hits if "builtins" not in h and "alt" not in h]
            if hits:
                return hits[0]
        hits = sorted(glob.glob(os.path.join(root, "lib64/libnvrtc.so*")))
        if hits:
            return hits[0]
    return None


def _nvrtc_compile(lib, source, options, want_cubin):
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"k.cu", 0, None, None) == 0
    opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    status = lib.nvrtcCompileProgram(prog, len(options), opts)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    assert status == 0, log.value.decode(errors="replace")
    what = "CUBIN" if want_cubin else "PTX"
    getattr(lib, f"nvrtcGet{what}Size")(prog, ctypes.byref(size))
    out = ctypes.create_string_buffer(size.value)
    getattr(lib, f"nvrtcGet{what}")(prog, out)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return out.raw, log.value.decode(errors="replace")


def _entry(ptx, name):
    start = ptx.index(f".entry {name}(")
    return ptx[start : ptx.index("\n}", start)]


@pytest.fixture(scope="module")
def nvrtc():
    path = _find_nvrtc()
    if path is None:
        pytest.skip("NVRTC not found (set DROPKIT_NVRTC=/path/to/libnvrtc.so to run this check)")
    lib = ctypes.CDLL(path)
    # NVRTC opens its builtins library by name: load the one beside it (a pip wheel's
    # folder is not on the loader's path), as dropkit_torch._nvrtc does
    folder = os.path.dirname(os.path.realpath(path))
    for builtins in sorted(glob.glob(os.path.join(folder, "libnvrtc-builtins.so*"))):
        if ".alt." not in builtins:
            ctypes.CDLL(builtins)
    return lib


def test_source_compiles_with_nvrtc_as_cupy_compiles_it(nvrtc):
    """Both modules, with CuPy's options (its -ftz=true appended last), for sm_90."""
    base = ("--device-as-default-execution-space",)
    for extra in ((), ("-DDK_IEEE_F32=1",)):
        options = (*NVRTC_OPTIONS, *extra, "-ftz=true", *base)
        cubin, log = _nvrtc_compile(
            nvrtc, KERNEL_SOURCE, (*options, "-arch=sm_90", "--ptxas-options=-v"), True
        )
        assert cubin and "spill" not in log.replace("0 bytes spill", "")
        ptx = _nvrtc_compile(nvrtc, KERNEL_SOURCE, (*options, "-arch=compute_90"), False)[0]
        ptx = ptx.decode(errors="replace")
        for name in KERNEL_NAMES:
            assert f".entry {name}(" in ptx
        assert ".local" not in ptx  # no arrays spilled to local memory
        f32, f16, f64 = (_entry(ptx, f"dk_dropout_{k}") for k in ("f32", "f16", "f64"))
        assert "ld.global.v4.u32" in f32 and "st.global.v4" in f32  # one 128-bit load per block
        assert "ld.global.v2.u32" in f16 and "st.global.v2.u32" in f16  # 4 halves in 64 bits
        assert "ld.global.v2.f64" in f64
        assert "mul.rn.f16" in f16
        if extra:  # IEEE: no float32 instruction flushes
            assert ".ftz.f32" not in ptx and "mul.rn.f32" in f32
        else:  # CuPy's -ftz=true flushes float32 compares and products, as in CuPy's own kernels
            assert "setp.le.ftz.f32" in f32 and "mul.rn.ftz.f32" in f32
        assert "fma.rn" not in _entry(ptx, "dk_sgd_f32") + _entry(ptx, "dk_sgd_f64")
