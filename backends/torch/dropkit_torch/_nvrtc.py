"""dropkit's CUDA kernels on torch's devices without CuPy: NVRTC and the CUDA driver via ctypes.

The source is the core's (:data:`dropkit._cuda.KERNEL_SOURCE`, the text CuPy
compiles too), built with the IEEE float32 semantics PyTorch computes with
(``-DDK_IEEE_F32=1``, ``--ftz=false``, ``--fmad=false``), so masks and values
equal the NumPy backend's bit for bit. NVRTC is the library torch's CUDA
wheels ship and load (``libnvrtc.so.<CUDA major>``); the binary (a cubin for
the device's architecture) is cached on disk, so a machine compiles once per
architecture and NVRTC version (:func:`cubin`; the first compilation says so on
stderr). The module is loaded into each device's primary context (the one
torch uses) and every kernel is launched with ``cuLaunchKernel`` on torch's
current stream of the tensor's device (:class:`Launcher`).

Why not ``torch.cuda._compile_kernel`` (torch >= 2.8, private): its launcher
passes every Python ``int`` as a C ``int`` and every ``float`` as a ``double``
(the kernels take 64-bit sizes, 32-bit words and float32 scales), opens the
driver library with ``ctypes.CDLL`` and builds a ctypes object per argument
on every call; its compiler adds torch's nvcc flags and the CUDA toolkit's
include folder, which fails where no toolkit is installed (``CUDA_HOME`` unset:
the pip wheels' case), and keeps nothing on disk. The ~40 lines of NVRTC and
driver calls here avoid all four.

Per call a :class:`Launcher` costs one ``struct.pack_into`` of the arguments
into a buffer prepared once per kernel (:mod:`dropkit_torch._packing`), the
current stream's handle (``torch._C._cuda_getCurrentRawStream``, what Inductor's
generated code calls) and one foreign call.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import hashlib
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from dropkit._cuda import KERNEL_NAMES, KERNEL_SOURCE, NVRTC_OPTIONS, SIGNATURES

from ._packing import layout

__all__ = [
    "BLOCKS_PER_SM",
    "OPTIONS",
    "THREADS",
    "Launcher",
    "cache_folder",
    "compile_cubin",
    "cubin",
    "nvrtc_library",
]

#: Threads per block of every launch (as the CuPy backend launches).
THREADS = 256
#: Grid-stride loops launch at most this many blocks per multiprocessor.
BLOCKS_PER_SM = 16
#: NVRTC options: the IEEE module (torch keeps float32 subnormals; no contraction).
OPTIONS = (*NVRTC_OPTIONS, "-DDK_IEEE_F32=1", "--ftz=false")

# cuLaunchKernel's ``extra`` markers (cuda.h).
_BUFFER_POINTER, _BUFFER_SIZE, _END = 1, 2, 0
_INVALID_CONTEXT = 201


def nvrtc_library(major: str) -> ctypes.CDLL:
    """NVRTC of CUDA ``major``: the one torch loaded, the pip wheel's, or the system's.

    Raises ``OSError`` saying what was looked for when none loads.
    """
    if sys.platform == "win32":  # pragma: no cover - not tested on this project's machines
        names = [f"nvrtc64_{major}0_0.dll"]
    else:
        names = [f"libnvrtc.so.{major}"]
        for root in sys.path:
            for folder in (f"nvidia/cu{major}/lib", "nvidia/cuda_nvrtc/lib"):
                names += sorted(glob.glob(os.path.join(root, folder, f"libnvrtc.so.{major}*")))
        names.append("libnvrtc.so")
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        if os.sep in name:  # NVRTC opens its builtins by name: load the ones beside it first
            pattern = os.path.join(os.path.dirname(name), f"libnvrtc-builtins.so.{major}*")
            for builtins in sorted(glob.glob(pattern)):
                if ".alt." not in builtins:
                    ctypes.CDLL(builtins)
        return lib
    raise OSError(
        f"NVRTC for CUDA {major} not found (tried {names[0]}, the nvidia pip wheels on "
        "sys.path and libnvrtc.so); install nvidia-cuda-nvrtc for your CUDA or put "
        "libnvrtc on the library path"
    )


def _nvrtc_version(lib: ctypes.CDLL) -> str:
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return f"{major.value}.{minor.value}"


def compile_cubin(lib: ctypes.CDLL, source: str, options: Sequence[str]) -> bytes:
    """Compile ``source`` with NVRTC ``lib`` to a cubin (``options`` name the architecture).

    Raises ``RuntimeError`` with NVRTC's log when compilation fails.
    """
    prog = ctypes.c_void_p()
    status = lib.nvrtcCreateProgram(
        ctypes.byref(prog), source.encode(), b"dropkit_kernels.cu", 0, None, None
    )
    if status:
        raise RuntimeError(f"NVRTC could not create the program (status {status})")
    try:
        encoded = [o.encode() for o in options]
        status = lib.nvrtcCompileProgram(
            prog, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded)
        )
        if status:
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(prog, log)
            raise RuntimeError(
                f"NVRTC failed to compile dropkit's CUDA kernels with {list(options)} "
                f"(status {status}):\n{log.value.decode(errors='replace')}"
            )
        size = ctypes.c_size_t()
        lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
        binary = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetCUBIN(prog, binary)
        return binary.raw
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def cache_folder() -> Path:
    """Where compiled kernels are kept: ``$DROPKIT_CACHE_DIR``, else the user's cache.

    ``$XDG_CACHE_HOME/dropkit/cuda`` or ``~/.cache/dropkit/cuda``.
    """
    explicit = os.environ.get("DROPKIT_CACHE_DIR")
    if explicit:
        return Path(explicit) / "cuda"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dropkit" / "cuda"


def cubin(arch: str, lib: ctypes.CDLL, *, say: Callable[[str], object] | None = None) -> bytes:
    """The kernels compiled for ``sm_<arch>``: read from the disk cache, else compiled once.

    The file's name hashes the source, the options, the architecture and
    NVRTC's version, so any change compiles afresh. Compiling prints one line
    (``say``, stderr by default) so that the first call does not seem to hang;
    an unwritable cache folder only means compiling again in the next process.
    """
    options = (*OPTIONS, f"--gpu-architecture=sm_{arch}")
    version = _nvrtc_version(lib)
    digest = hashlib.sha256("\0".join((KERNEL_SOURCE, *options, version)).encode()).hexdigest()[:24]
    folder = cache_folder()
    path = folder / f"kernels-sm_{arch}-{digest}.cubin"
    try:
        return path.read_bytes()
    except OSError:
        pass
    (say or _stderr)(
        f"dropkit-torch: compiling the CUDA kernels for sm_{arch} with NVRTC {version} "
        f"(once; cached in {folder})"
    )
    binary = compile_cubin(lib, KERNEL_SOURCE, options)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        partial.write_bytes(binary)
        partial.replace(path)
    except OSError:
        pass
    return binary


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _Kernel:
    """One kernel's function handle and its parameter buffer, prepared once."""

    __slots__ = ("buffer", "extra", "function", "lock", "pack", "size", "words")

    def __init__(self, name: str, function: int) -> None:
        shape = layout(SIGNATURES[name])
        self.function = function
        self.pack = shape.pack_into
        self.buffer = ctypes.create_string_buffer(max(shape.size, 1))
        self.size = ctypes.c_size_t(shape.size)
        words = (ctypes.c_void_p * 5)(
            _BUFFER_POINTER,
            ctypes.addressof(self.buffer),
            _BUFFER_SIZE,
            ctypes.addressof(self.size),
            _END,
        )
        self.words = words  # kept alive: the driver reads it through ``extra``
        self.extra = ctypes.addressof(words)
        self.lock = threading.Lock()  # the buffer is shared; ctypes calls release the GIL


class Launcher:
    """Launch the kernels of one device's module on torch's current stream.

    Parameters
    ----------
    index : int
        The device (torch's index).
    functions : Mapping[str, int]
        ``CUfunction`` handle of every kernel of :data:`dropkit._cuda.KERNEL_NAMES`.
    sms : int
        The device's multiprocessor count (caps grid-stride grids).
    launch : Callable
        ``cuLaunchKernel`` (or a stand-in with its parameters), returning a
        ``CUresult``.
    stream : Callable[[int], int]
        The raw handle of torch's current stream on a device.
    device : Callable[[], int]
        torch's current device.
    describe : Callable[[int], str]
        The text of a ``CUresult``.
    recover : Callable[[], None] or None
        Makes the device's primary context current (called once, then the
        launch retried, when the thread has no current context).
    """

    __slots__ = (
        "_cap",
        "_describe",
        "_device",
        "_kernels",
        "_launch",
        "_recover",
        "_stream",
        "index",
    )

    def __init__(
        self,
        index: int,
        functions: Mapping[str, int],
        sms: int,
        launch: Callable[..., int],
        stream: Callable[[int], int],
        device: Callable[[], int],
        describe: Callable[[int], str] = str,
        recover: Callable[[], None] | None = None,
    ) -> None:
        self.index = index
        self._kernels = {name: _Kernel(name, functions[name]) for name in KERNEL_NAMES}
        self._cap = BLOCKS_PER_SM * sms
        self._launch = launch
        self._stream = stream
        self._device = device
        self._describe = describe
        self._recover = recover

    def __call__(self, name: str, work: int, *values: int | float) -> None:
        """Launch ``name`` with C arguments ``values``: one thread per work item, grid capped.

        ``values`` are Python ints (pointers are addresses) and floats, in the
        kernel's parameter order; a value that does not fit its C type raises
        ``struct.error``.
        """
        kernel = self._kernels[name]
        grid = -(-work // THREADS)
        if grid > self._cap:
            grid = self._cap
        if self._device() != self.index:
            self._elsewhere(kernel, name, grid, values)
            return
        stream = self._stream(self.index)
        with kernel.lock:
            kernel.pack(kernel.buffer, 0, *values)
            status = self._launch(
                kernel.function, grid, 1, 1, THREADS, 1, 1, 0, stream, None, kernel.extra
            )
        if status:
            self._failed(status, kernel, name, grid, stream, values)

    def _elsewhere(
        self, kernel: _Kernel, name: str, grid: int, values: tuple[int | float, ...]
    ) -> None:
        """Launch with the device current (torch's current device is another one)."""
        import torch

        with torch.cuda.device(self.index):
            stream = self._stream(self.index)
            with kernel.lock:
                kernel.pack(kernel.buffer, 0, *values)
                status = self._launch(
                    kernel.function, grid, 1, 1, THREADS, 1, 1, 0, stream, None, kernel.extra
                )
            if status:
                self._failed(status, kernel, name, grid, stream, values)

    def _failed(
        self,
        status: int,
        kernel: _Kernel,
        name: str,
        grid: int,
        stream: int,
        values: tuple[int | float, ...],
    ) -> None:
        """Retry once in a thread without a current context; else raise what the driver said."""
        if status == _INVALID_CONTEXT and self._recover is not None:
            self._recover()  # a thread that never touched the device: its primary context
            with kernel.lock:
                kernel.pack(kernel.buffer, 0, *values)
                status = self._launch(
                    kernel.function, grid, 1, 1, THREADS, 1, 1, 0, stream, None, kernel.extra
                )
            if not status:
                return
        raise RuntimeError(
            f"launching dropkit's CUDA kernel {name} on cuda:{self.index} failed: "
            f"{self._describe(status)} (CUresult {status})"
        )


class _Driver:
    """The CUDA driver's few entry points used here (``libcuda``), typed once."""

    def __init__(self) -> None:
        lib = ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")
        p, u = ctypes.c_void_p, ctypes.c_uint
        lib.cuLaunchKernel.argtypes = [p, u, u, u, u, u, u, u, p, p, p]
        lib.cuLaunchKernel.restype = ctypes.c_int
        self.launch = lib.cuLaunchKernel
        self._lib = lib

    def check(self, status: int, what: str) -> None:
        if status:
            raise RuntimeError(f"CUDA driver: {what} failed: {self.describe(status)}")

    def describe(self, status: int) -> str:
        text = ctypes.c_char_p()
        self._lib.cuGetErrorString(status, ctypes.byref(text))
        return text.value.decode() if text.value else f"CUresult {status}"

    def make_current(self, index: int) -> None:
        """Make device ``index``'s primary context current in this thread, if none is."""
        current = ctypes.c_void_p()
        self.check(self._lib.cuCtxGetCurrent(ctypes.byref(current)), "cuCtxGetCurrent")
        if current.value:
            return
        device, context = ctypes.c_int(), ctypes.c_void_p()
        self.check(self._lib.cuDeviceGet(ctypes.byref(device), index), "cuDeviceGet")
        self.check(
            self._lib.cuDevicePrimaryCtxRetain(ctypes.byref(context), device),
            "cuDevicePrimaryCtxRetain",
        )
        self.check(self._lib.cuCtxSetCurrent(context), "cuCtxSetCurrent")

    def functions(self, binary: bytes) -> dict[str, int]:
        """Load ``binary`` into the current context; every kernel's handle."""
        module = ctypes.c_void_p()
        self.check(self._lib.cuModuleLoadData(ctypes.byref(module), binary), "cuModuleLoadData")
        handles = {}
        for name in KERNEL_NAMES:
            function = ctypes.c_void_p()
            self.check(
                self._lib.cuModuleGetFunction(ctypes.byref(function), module, name.encode()),
                f"cuModuleGetFunction({name})",
            )
            handles[name] = int(function.value or 0)
        return handles


@functools.cache
def _driver() -> _Driver:
    return _Driver()


@functools.cache
def _binary(arch: str, major: str) -> bytes:
    return cubin(arch, nvrtc_library(major))


def load(index: int) -> Launcher:
    """Compile (or read from the cache) and load the kernels on CUDA device ``index``.

    Raises ``OSError`` or ``RuntimeError`` saying what failed (no NVRTC, no
    driver, a compilation or load error).
    """
    import torch

    if torch.version.cuda is None or getattr(torch.version, "hip", None):
        raise RuntimeError("this torch is not built for CUDA (the kernels need NVRTC and PTX)")
    props = torch.cuda.get_device_properties(index)
    binary = _binary(f"{props.major}{props.minor}", torch.version.cuda.split(".")[0])
    driver = _driver()
    with torch.cuda.device(index):
        driver.make_current(index)
        functions = driver.functions(binary)
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    return Launcher(
        index,
        functions,
        int(props.multi_processor_count),
        driver.launch,
        raw if raw is not None else current_stream_handle,
        getattr(torch._C, "_cuda_getDevice", None) or torch.cuda.current_device,
        driver.describe,
        functools.partial(driver.make_current, index),
    )


def current_stream_handle(index: int) -> int:
    """The raw handle of torch's current stream on device ``index`` (the public API's way)."""
    import torch

    return int(torch.cuda.current_stream(index).cuda_stream)
