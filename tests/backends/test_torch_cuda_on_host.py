"""torch's direct CUDA path (``dropkit_torch.cuda`` on ``dropkit_torch._nvrtc``) on the CPU.

No GPU here: a stand-in for ``cuLaunchKernel`` reads the one parameter buffer
the launcher packs, decodes it with a ``ctypes.Structure`` of the kernel's C
parameter types (an independent reading of the layout) and runs the kernel's
host build (:mod:`dropkit_cupy.host`, the same source with ``DK_IEEE_F32=1``)
on the CPU tensors whose addresses the buffer holds. So the arguments that
would reach the device (names, order, C types, flags, scales, key words, seed
pointers, grid sizes, the stream) are checked for every dtype against the
torch-operations path and the NumPy backend. Where NVRTC is installed (the
``nvidia-cuda-nvrtc`` wheel), the kernels are also compiled for sm_90 and the
parameter offsets the compiler recorded in the cubin compared with the
buffer's. What this cannot check: the driver, the devices, the streams' order
on a GPU (``benchmarks/gpu_check.sh`` does).
"""

from __future__ import annotations

import contextlib
import ctypes
import struct
import sys
import types
import warnings

import numpy as np
import pytest
from dk_helpers import torch_or_skip
from dropkit_cupy.host import compiler, host_kernels

import dropkit
from dropkit import keep_threshold
from dropkit._cuda import KERNEL_NAMES, SIGNATURES

torch = torch_or_skip(module_level=True)

import dropkit_torch  # noqa: E402
from dropkit_torch import _nvrtc, _op, cuda  # noqa: E402
from dropkit_torch._packing import CODES, layout  # noqa: E402

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C compiler to build the harness")

_C = {
    "ptr": ctypes.c_uint64,
    "i32": ctypes.c_int32,
    "i64": ctypes.c_int64,
    "u32": ctypes.c_uint32,
    "u64": ctypes.c_uint64,
    "f32": ctypes.c_float,
    "f64": ctypes.c_double,
}


def _structure(name):
    fields = [(f"a{i}", _C[kind]) for i, kind in enumerate(SIGNATURES[name])]
    return type(name, (ctypes.Structure,), {"_fields_": fields})


class HostDriver:
    """``cuLaunchKernel`` on the CPU: decode the parameter buffer, run the host kernel."""

    def __init__(self, status=0):
        self.handles = {name: 100 + i for i, name in enumerate(KERNEL_NAMES)}
        self.names = {h: n for n, h in self.handles.items()}
        self.calls = []
        self.status = status
        self.lib = host_kernels(ieee=True)._lib

    def __call__(self, function, gx, gy, gz, bx, by, bz, shared, stream, params, extra):
        name = self.names[function]
        assert (gy, gz, by, bz, shared, params) == (1, 1, 1, 1, 0, None)
        words = (ctypes.c_void_p * 5).from_address(extra)
        assert (words[0], words[2], words[4]) == (1, 2, None)  # POINTER, SIZE, END
        size = ctypes.c_size_t.from_address(words[3]).value
        raw = ctypes.string_at(words[1], size)
        kind = _structure(name)
        last = kind._fields_[-1][0]
        assert size == getattr(kind, last).offset + getattr(kind, last).size  # C layout
        decoded = kind.from_buffer_copy(raw.ljust(ctypes.sizeof(kind), b"\0"))
        values = [getattr(decoded, f) for f, _ in kind._fields_]
        self.calls.append((name, gx, bx, stream, values))
        if self.status:
            status, self.status = self.status, 0
            return status
        getattr(self.lib, f"h_{name}")(*values, gx * bx)
        return 0


def _launcher(driver, *, sms=1, stream=lambda index: 7000 + index, device=lambda: -1, **kw):
    return _nvrtc.Launcher(-1, driver.handles, sms, driver, stream, device, **kw)


@pytest.fixture
def host(monkeypatch):
    """CPU tensors take the op's CUDA branch, served by the stand-in launcher (index -1)."""
    driver = HostDriver()
    monkeypatch.setitem(cuda._engines, -1, _launcher(driver))
    monkeypatch.setattr(_op, "_cuda_kernels", lambda device: cuda)
    monkeypatch.setattr(_op, "CPU_KERNELS", False)
    return driver


# ---------------------------------------------------------------- the buffer


def test_signatures_are_the_ones_checked_against_the_source():
    """dropkit_cupy.launch's table is parsed from the source by test_cupy_kernels_on_host."""
    from dropkit_cupy.launch import SIGNATURES as CHECKED

    assert SIGNATURES == CHECKED and set(SIGNATURES) == set(KERNEL_NAMES)


def test_layout_is_the_c_struct_of_every_kernel_signature():
    for name, signature in SIGNATURES.items():
        shape, kind = layout(signature), _structure(name)
        values = [
            (1 << 63) + i if t in ("ptr", "u64") else 1.5 if t.startswith("f") else -i - 1
            for i, t in enumerate(signature)
        ]
        values = [abs(v) if t == "u32" else v for v, t in zip(values, signature, strict=True)]
        buffer = bytearray(shape.size)
        shape.pack_into(buffer, 0, *values)
        decoded = kind.from_buffer_copy(bytes(buffer).ljust(ctypes.sizeof(kind), b"\0"))
        assert [getattr(decoded, f) for f, _ in kind._fields_] == values, name
    with pytest.raises(KeyError):
        layout(("ptr", "char"))
    with pytest.raises(struct.error):  # a value outside its C type is refused, not wrapped
        layout(("u32",)).pack(2**32)


def _kparam_info(cubin):
    """{kernel: [(ordinal, offset, size)]} from the cubin's EIATTR_KPARAM_INFO records."""
    shoff = struct.unpack_from("<Q", cubin, 0x28)[0]
    entsize, count, names_index = struct.unpack_from("<HHH", cubin, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", cubin, shoff + i * entsize) for i in range(count)]
    strings = sections[names_index][4]
    found = {}
    for name_at, _, _, _, offset, size in sections:
        end = cubin.index(b"\0", strings + name_at)
        section = cubin[strings + name_at : end].decode()
        if not section.startswith(".nv.info."):
            continue
        params, p = [], offset
        while p < offset + size:
            fmt, attr = cubin[p], cubin[p + 1]
            if fmt == 4:  # EIFMT_SVAL: a 16-bit length, then the value
                length = struct.unpack_from("<H", cubin, p + 2)[0]
                if attr == 0x17:  # EIATTR_KPARAM_INFO
                    _, ordinal, at, bits = struct.unpack_from("<IHHI", cubin, p + 4)
                    params.append((ordinal, at, (bits >> 18) & 0x3FFF))
                p += 4 + length
            else:
                p += 4
        found[section.removeprefix(".nv.info.")] = sorted(params)
    return found


def test_nvrtc_cubin_records_the_buffer_offsets(tmp_path, monkeypatch):
    """NVRTC's own parameter offsets (sm_90 cubin) are the packed buffer's, kernel by kernel."""
    try:
        lib = _nvrtc.nvrtc_library("13")
    except OSError:
        try:
            lib = _nvrtc.nvrtc_library("12")
        except OSError:
            pytest.skip("NVRTC not installed (pip install nvidia-cuda-nvrtc to run this check)")
    monkeypatch.setenv("DROPKIT_CACHE_DIR", str(tmp_path))
    said = []
    binary = _nvrtc.cubin("90", lib, say=said.append)
    assert len(said) == 1 and "compiling" in said[0] and "sm_90" in said[0]
    assert _nvrtc.cubin("90", lib, say=said.append) == binary and len(said) == 1  # from disk
    recorded = _kparam_info(binary)
    for name, signature in SIGNATURES.items():
        offsets, at = [], 0
        for i, kind in enumerate(signature):
            size = CODES[kind][1]
            at += -at % size
            offsets.append((i, at, size))
            at += size
        assert recorded[name] == offsets, name
        assert layout(signature).size == at


# ------------------------------------------------------- the compile cache


def test_compiles_once_per_machine_and_survives_an_unwritable_cache(tmp_path, monkeypatch):
    compiled = []
    monkeypatch.setattr(_nvrtc, "_nvrtc_version", lambda lib: "13.0")
    monkeypatch.setattr(
        _nvrtc, "compile_cubin", lambda lib, source, options: compiled.append(options) or b"ELF"
    )
    monkeypatch.setenv("DROPKIT_CACHE_DIR", str(tmp_path))
    said = []
    assert _nvrtc.cubin("90", None, say=said.append) == b"ELF"
    assert _nvrtc.cubin("90", None, say=said.append) == b"ELF"  # another process: the file
    assert len(compiled) == 1 and len(said) == 1
    options = compiled[0]
    assert "-DDK_IEEE_F32=1" in options and "--fmad=false" in options
    assert "--ftz=false" in options and "--gpu-architecture=sm_90" in options
    _nvrtc.cubin("80", None, say=said.append)  # another architecture: another binary
    assert len(compiled) == 2 and len(list((tmp_path / "cuda").glob("*.cubin"))) == 2
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("DROPKIT_CACHE_DIR", str(blocked))
    assert _nvrtc.cubin("90", None, say=said.append) == b"ELF"
    assert len(compiled) == 3


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("DROPKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _nvrtc.cache_folder() == tmp_path / "dropkit" / "cuda"
    monkeypatch.setenv("DROPKIT_CACHE_DIR", str(tmp_path / "x"))
    assert _nvrtc.cache_folder() == tmp_path / "x" / "cuda"


def test_missing_nvrtc_says_what_to_install():
    with pytest.raises(OSError, match="nvidia-cuda-nvrtc"):
        _nvrtc.nvrtc_library("99")


# ------------------------------------------------ the kernels' arguments


DTYPES = ["float32", "float64", "float16", "bfloat16"]


def _bits(t):
    """The bytes of ``t`` in C order (bit for bit: NaN payloads, signed zeros)."""
    return t.contiguous().view(-1).view(torch.uint8)


def _x(dt, shape=(37, 11), seed=0):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dt)
    x.view(-1)[:4] = torch.tensor([float("nan"), float("inf"), -0.0, 1e-45])
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True])
def test_op_on_the_launcher_equals_the_torch_operations(host, monkeypatch, dtype, relu):
    dt = getattr(torch, dtype)
    x = _x(dt)
    seed = torch.tensor([5, 0, 7, 0])
    t, scale = keep_threshold(0.3), 1 / 0.7
    got = _op.dropout_op(x, seed, list(x.shape), t, scale, relu)
    strided = _op.dropout_op(x.T, seed, [11, 37], t, scale, relu)
    inplace = x.clone()
    _op.dropout_inplace_op(inplace, seed, list(x.shape), t, scale, relu)
    unscaled = _op.dropout_op(x, seed, list(x.shape), t, 1.0, relu)
    names = [c[0] for c in host.calls]
    assert names == [f"dk_dropout_{cuda._KINDS[dt]}"] * 4
    # the seed tensor is read by the kernel (its address passed), the key words unused
    assert all(c[4][-1] == seed.data_ptr() for c in host.calls)
    monkeypatch.setattr(_op, "_cuda_kernels", lambda device: None)  # torch operations
    want = _op.dropout_op(x, seed, list(x.shape), t, scale, relu)
    want_strided = _op.dropout_op(x.T, seed, [11, 37], t, scale, relu)
    want_unscaled = _op.dropout_op(x, seed, list(x.shape), t, 1.0, relu)
    pairs = ((got, want), (strided, want_strided), (inplace, want), (unscaled, want_unscaled))
    for a, b in pairs:
        assert a.dtype == dt and a.shape == b.shape
        assert torch.equal(_bits(a), _bits(b))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_launcher_equals_the_numpy_backend_with_key_words_and_a_capped_grid(host, dtype):
    """Key and counter as words (no seed tensor), 70,001 elements: grid-stride loops."""
    dt = getattr(torch, dtype)
    x = torch.randn(70001, generator=torch.Generator().manual_seed(3)).to(dt)
    out = torch.empty_like(x)
    key, counter = (3 << 40) + 17, (1 << 33) + 5
    t = keep_threshold(0.25)
    cuda.dropout(x, out, key, counter, t, 1 / 0.75, False)
    name, grid, block, _, values = host.calls[-1]
    assert name == "dk_dropout_" + cuda._KINDS[dt]
    assert (grid, block) == (16, 256)  # 17,501 blocks of work, capped at 16 per SM
    assert values[-1] == 0  # NULL seed: the words below are used
    assert values[-5:-1] == [17, 3 << 8, 5, 2]
    keep = np.asarray(dropkit.philox.random_bits(np, key, counter, x.numel())) >= t
    factor = np.asarray(1 / 0.75, dtype=x.numpy().dtype)
    want = np.where(keep, x.numpy() * factor, 0).astype(x.numpy().dtype)
    np.testing.assert_array_equal(out.numpy(), want)


def test_vector_flag_follows_the_pointers_alignment(host):
    x = torch.randn(65)
    cuda.dropout(x, torch.empty_like(x), 1, 2, 2**31, 2.0, True)
    cuda.dropout(x[1:], torch.empty(64), 1, 2, 2**31, 2.0, False)
    (_, _, _, _, aligned), (_, _, _, _, shifted) = host.calls[-2:]
    assert aligned[4] == 1 | 2 | 4 and shifted[4] == 2  # RELU | SCALE | VEC, then SCALE only
    assert aligned[3] == 2.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_arguments_are_rounded_as_torch_rounds(host, dtype):
    dt = getattr(torch, dtype)
    scale = 1 + 2**-11 + 2**-40
    x = torch.ones(8, dtype=dt)
    cuda.dropout(x, torch.empty_like(x), 0, 0, 0, scale, False)
    arg = host.calls[-1][4][3]
    rounded = torch.tensor(scale, dtype=dt)
    if dt == torch.float16:
        assert arg == int(rounded.view(torch.int16).item()) & 0xFFFF
    else:
        assert arg == rounded.item() if dt != torch.float32 else np.float32(arg) == rounded.item()
    assert cuda.rounded_scale(dt, scale) == rounded.item()


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_relu_backward_on_the_launcher(host, monkeypatch, dtype):
    dt = getattr(torch, dtype)
    x = _x(dt, (50, 7), seed=1)
    seed = torch.tensor([1, 2, 3, 4])
    grads = []
    for kernels_on in (True, False):
        if not kernels_on:
            monkeypatch.setattr(_op, "_cuda_kernels", lambda device: None)
        leaf = x.clone().requires_grad_(True)
        h = _op.dropout_op(leaf, seed, list(x.shape), keep_threshold(0.5), 2.0, True)
        h.backward(torch.linspace(-3, 3, x.numel()).reshape(x.shape).to(dt))
        grads.append(_bits(leaf.grad))
    assert f"dk_relu_backward_{cuda._KINDS[dt]}" in [c[0] for c in host.calls]
    assert torch.equal(grads[0], grads[1])


def test_keep_mask_and_words_on_the_launcher(host):
    seed = torch.tensor([9, 1, 2, 0])
    key, counter = _op.seed_ints(seed)
    t = keep_threshold(0.5)
    mask = _op.keep_mask(seed, (3, 5, 7), t, torch.device("cpu"))
    ref = np.asarray(dropkit.philox.random_bits(np, key, counter, 105)) >= t
    assert mask.dtype == torch.bool and host.calls[-1][0] == "dk_keep_mask"
    np.testing.assert_array_equal(mask.numpy().reshape(-1), ref)
    words = _op.words(key, counter, 33, torch.device("cpu"), offset=7)
    want = np.asarray(dropkit.philox.random_bits(np, key, counter, 33, offset=7)).astype(np.int64)
    assert words.dtype == torch.int64 and host.calls[-1][0] == "dk_bits"
    np.testing.assert_array_equal(words.numpy(), want)
    x = torch.randn(2, 3, 4, 4)  # channel dropout: the mask kernel, then torch's product
    y = _op.dropout_op(x, seed, [2, 3, 1, 1], t, 2.0, False)
    channels = np.asarray(dropkit.philox.random_bits(np, key, counter, 6)) >= t
    want_y = np.where(channels.reshape(2, 3, 1, 1), x.numpy() * np.float32(2.0), 0)
    np.testing.assert_array_equal(y.numpy(), want_y)


# ------------------------------------------------ stream, device, errors


def test_launches_go_to_the_current_stream_of_the_tensors_device(monkeypatch):
    driver, asked = HostDriver(), []

    def stream(index):
        asked.append(index)
        return 0xABC0 + len(asked)

    monkeypatch.setitem(cuda._engines, -1, _launcher(driver, stream=stream))
    x = torch.ones(16)
    cuda.dropout(x, x, 0, 0, 2**31, 2.0, False)
    cuda.dropout(x, x, 0, 0, 2**31, 2.0, False)
    assert asked == [-1, -1]  # looked up on every call: a stream switched between calls counts
    assert [c[3] for c in driver.calls] == [0xABC1, 0xABC2]


def test_another_current_device_is_switched_for_the_launch(monkeypatch):
    driver, entered = HostDriver(), []

    @contextlib.contextmanager
    def device(index):
        entered.append(index)
        yield

    monkeypatch.setattr(torch.cuda, "device", device)
    launcher = _launcher(driver, device=lambda: 3)  # torch's current device is 3, not -1
    out = torch.empty(4, dtype=torch.int32)
    launcher("dk_bits", 1, out.data_ptr(), 0, 1, 4, 0, 0, 0, 0)
    assert entered == [-1] and len(driver.calls) == 1
    assert [w & 0xFFFFFFFF for w in out.tolist()] == cuda._BLOCK0


def test_launch_errors_name_the_kernel_and_a_thread_without_context_recovers():
    out = torch.empty(4, dtype=torch.int32)
    failing = HostDriver(status=700)
    launcher = _launcher(failing, describe=lambda s: "an illegal memory access")
    with pytest.raises(RuntimeError, match=r"dk_bits.*illegal memory access.*700"):
        launcher("dk_bits", 1, out.data_ptr(), 0, 1, 4, 0, 0, 0, 0)
    recovered = []
    no_context = HostDriver(status=201)  # CUDA_ERROR_INVALID_CONTEXT, once
    launcher = _launcher(no_context, recover=lambda: recovered.append(True))
    launcher("dk_bits", 1, out.data_ptr(), 0, 1, 4, 0, 0, 0, 0)
    assert recovered == [True] and len(no_context.calls) == 2
    assert [w & 0xFFFFFFFF for w in out.tolist()] == cuda._BLOCK0


def test_load_uses_torchs_raw_current_stream_and_device(monkeypatch):
    """What ``load`` wires: torch's stream and device look-ups, the driver's launch."""
    driver = HostDriver()
    fake = types.SimpleNamespace(
        make_current=lambda index: None,
        functions=lambda binary: driver.handles,
        launch=driver,
        describe=str,
    )
    props = types.SimpleNamespace(major=9, minor=0, multi_processor_count=132)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    monkeypatch.setattr(torch.cuda, "device", lambda index: contextlib.nullcontext())
    monkeypatch.setattr(_nvrtc, "_binary", lambda arch, major: b"cubin " + arch.encode())
    monkeypatch.setattr(_nvrtc, "_driver", lambda: fake)
    raw = lambda index: 0x5000 + index  # noqa: E731
    monkeypatch.setattr(torch._C, "_cuda_getCurrentRawStream", raw, raising=False)
    monkeypatch.setattr(torch._C, "_cuda_getDevice", lambda: 1, raising=False)
    launcher = _nvrtc.load(1)
    assert launcher._stream is raw and launcher._cap == 16 * 132 and launcher.index == 1
    out = torch.empty(4, dtype=torch.int32)
    launcher("dk_bits", 1, out.data_ptr(), 0, 1, 4, 0, 0, 0, 0)
    assert driver.calls[-1][3] == 0x5001
    # without the private look-up: torch.cuda.current_stream(index).cuda_stream
    monkeypatch.delattr(torch._C, "_cuda_getCurrentRawStream")
    current = types.SimpleNamespace(cuda_stream=0x6000)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda index: current)
    launcher = _nvrtc.load(1)
    launcher("dk_bits", 1, out.data_ptr(), 0, 1, 4, 0, 0, 0, 0)
    assert driver.calls[-1][3] == 0x6000


def test_load_refuses_a_torch_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(RuntimeError, match="not built for CUDA"):
        _nvrtc.load(0)


# ------------------------------------------------------- engine choice


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(cuda, "_engines", {})
    return cuda


def test_the_direct_engine_is_chosen_first_without_a_warning(fresh, monkeypatch):
    launcher = _launcher(HostDriver())
    monkeypatch.setitem(fresh._LOADERS, "nvrtc", lambda index: launcher)
    monkeypatch.setitem(fresh._LOADERS, "cupy", lambda index: pytest.fail("CuPy was tried"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fresh.engine(-1) is launcher


def test_fallback_to_cupy_then_to_torch_operations_says_why(fresh, monkeypatch):
    def broken(index):
        raise OSError("NVRTC for CUDA 13 not found")

    cupy_path = types.ModuleType("cupy_path")
    monkeypatch.setitem(fresh._LOADERS, "nvrtc", broken)
    monkeypatch.setitem(fresh._LOADERS, "cupy", lambda index: cupy_path)
    with pytest.warns(RuntimeWarning, match=r"NVRTC for CUDA 13 not found.*the CuPy kernels"):
        assert fresh.engine(0) is cupy_path
    assert fresh.engine(0) is cupy_path  # chosen once per device
    monkeypatch.setattr(fresh, "_engines", {})
    monkeypatch.setitem(fresh._LOADERS, "cupy", lambda index: None)  # CuPy not usable
    with pytest.warns(RuntimeWarning, match="torch operations"):
        assert fresh.engine(-1) is None  # -1: the CPU tensor's get_device() below
    with pytest.raises(RuntimeError, match="usable"):
        fresh.dropout(torch.ones(4), torch.ones(4), 0, 0, 0, 1.0, False)


def test_without_cupy_and_without_a_cuda_torch_no_engine(fresh, monkeypatch):
    """The CPU wheel: the direct engine declines quietly; CuPy's import fails."""
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy fails
    monkeypatch.delitem(sys.modules, "dropkit_torch._cuda_cupy", raising=False)
    # an earlier import leaves the submodule on the package, where `from . import` finds it
    monkeypatch.delattr(dropkit_torch, "_cuda_cupy", raising=False)
    with pytest.warns(RuntimeWarning, match=r"cupy: ModuleNotFoundError.*torch operations"):
        assert fresh.engine(-1) is None
