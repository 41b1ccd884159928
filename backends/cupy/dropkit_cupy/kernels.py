"""The compiled kernels (``cupy.RawModule``) and their launches, for CuPy arrays and torch tensors.

Two modules are built from :data:`~dropkit_cupy.kernels_src.KERNEL_SOURCE`,
lazily, once per process (CuPy also caches the binaries on disk): ``CUPY``,
whose float32 arithmetic is flushed exactly as CuPy's own element-wise
operations are (CuPy compiles everything with ``-ftz=true``), for CuPy arrays;
and ``IEEE``, for torch CUDA tensors, which keeps subnormals as PyTorch does.
Kernel handles and the launch size (multiprocessor count) are cached per
device, so a call costs one dictionary look-up, the argument tuple of
:mod:`dropkit_cupy.launch` and one launch on the current stream.

Arrays passed here are C-contiguous (the callers copy others); ``y`` may be
``x`` (in place).
"""

from __future__ import annotations

import threading
from typing import Any

import cupy

from . import launch
from .kernels_src import KERNEL_SOURCE, NVRTC_OPTIONS

__all__ = [
    "CUPY",
    "IEEE",
    "bits_into",
    "dropout",
    "function",
    "keep_mask",
    "masked",
    "multiprocessors",
    "random_bits",
    "relu_backward",
    "sgd",
]

#: Module variants: CuPy's float32 semantics (flush to zero) and IEEE (torch).
CUPY, IEEE = "cupy", "ieee"
_OPTIONS = {CUPY: NVRTC_OPTIONS, IEEE: (*NVRTC_OPTIONS, "-DDK_IEEE_F32=1")}

_modules: dict[str, Any] = {}
_functions: dict[tuple[int, str, str], tuple[Any, int]] = {}  # -> (kernel, grid cap)
_sms: dict[int, int] = {}
_lock = threading.Lock()


def _load(device: int, variant: str, name: str) -> tuple[Any, int]:
    with _lock:
        module = _modules.get(variant)
        if module is None:
            module = _modules[variant] = cupy.RawModule(
                code=KERNEL_SOURCE, options=_OPTIONS[variant]
            )
        entry = (module.get_function(name), launch.BLOCKS_PER_SM * multiprocessors())
        _functions[(device, variant, name)] = entry
    return entry


def function(name: str, variant: str = CUPY) -> Any:
    """The ``cupy.RawKernel`` ``name`` of module ``variant`` on the current device."""
    device = cupy.cuda.runtime.getDevice()
    entry = _functions.get((device, variant, name)) or _load(device, variant, name)
    return entry[0]


def multiprocessors() -> int:
    """The current device's multiprocessor count (cached)."""
    device = cupy.cuda.runtime.getDevice()
    count = _sms.get(device)
    if count is None:
        props = cupy.cuda.runtime.getDeviceProperties(device)
        count = _sms[device] = int(props["multiProcessorCount"])
    return count


def _run(call: tuple[str, tuple[Any, ...]], work: int, variant: str) -> None:
    """Launch on the current device and stream: one thread per work item, grid capped."""
    name, args = call
    device = cupy.cuda.runtime.getDevice()
    fn, cap = _functions.get((device, variant, name)) or _load(device, variant, name)
    grid = min(-(-work // launch.THREADS), cap) or 1
    fn((grid,), (launch.THREADS,), args)


def _aligned(a: Any, b: Any, kind: str) -> bool:
    size = launch.ALIGNMENT[kind]
    return a.data.ptr % size == 0 and b.data.ptr % size == 0


def dropout(
    x: Any,
    y: Any,
    key: int,
    counter: int,
    threshold: int,
    scale: float,
    rounded: float,
    *,
    relu: bool,
    variant: str,
    dtype: str | None = None,
    seed: Any = None,
) -> None:
    """Fused dropout of ``x`` into ``y`` (``dtype`` names the values when ``x`` holds raw bits).

    ``seed``: the draw's four int64 words in device memory, read by the kernel
    instead of ``key`` and ``counter``.
    """
    n = x.size
    if n == 0:
        return
    dtype = dtype or x.dtype.name
    vec = _aligned(x, y, launch.KINDS[dtype])
    call = launch.dropout_call(
        dtype, x, y, n, key, counter, threshold, scale, rounded, relu=relu, vec=vec, seed=seed
    )
    _run(call, (n + 3) // 4, variant)


def bits_into(out: Any, first: int, key: int, counter: int) -> None:
    """Write the words of blocks ``first, first + 1, ...`` into the 4-byte array ``out``.

    ``out.size`` is a multiple of 4 (one block is 4 words).
    """
    nblocks = out.size // 4
    if nblocks:
        vec = out.data.ptr % 16 == 0
        _run(launch.bits_call(out, first, nblocks, key, counter, vec=vec), nblocks, CUPY)


def random_bits(key: int, counter: int, n: int, offset: int = 0) -> Any:
    """Philox words of elements ``offset .. offset + n - 1`` (a new uint32 array)."""
    if n == 0:
        return cupy.empty(0, dtype=cupy.uint32)
    first, last = offset // 4, (offset + n - 1) // 4
    words = cupy.empty(4 * (last - first + 1), dtype=cupy.uint32)
    bits_into(words, first, key, counter)
    begin = offset - 4 * first
    return words[begin : begin + n]


def keep_mask(out: Any, key: int, counter: int, threshold: int, *, seed: Any = None) -> None:
    """Write the keep-mask of ``out.size`` elements into the 1-byte array ``out``.

    ``seed`` as in :func:`dropout`.
    """
    n = out.size
    if n:
        vec = out.data.ptr % 4 == 0
        call = launch.keep_mask_call(out, n, key, counter, threshold, vec=vec, seed=seed)
        _run(call, (n + 3) // 4, CUPY)


def masked(
    x: Any,
    y: Any,
    keep: Any,
    parts: tuple[int, int, int],
    scale: float,
    rounded: float,
    *,
    variant: str,
    dtype: str | None = None,
) -> None:
    """``y = where(keep, x * scale, 0)``, ``keep`` broadcast as ``parts`` (A, B, C) says."""
    call = launch.masked_call(dtype or x.dtype.name, x, y, keep, parts, scale, rounded)
    _run(call, x.size, variant)


def relu_backward(
    g: Any, h: Any, y: Any, scale: float, rounded: float, *, variant: str, dtype: str | None = None
) -> None:
    """``y = where(h <= 0, 0, g * scale)`` (NaN in ``h`` passes)."""
    call = launch.relu_backward_call(dtype or g.dtype.name, g, h, y, g.size, scale, rounded)
    _run(call, g.size, variant)


def sgd(
    w: Any, g: Any, v: Any, *, lr: float, momentum: float, weight_decay: float, nesterov: bool
) -> None:
    """One in-place SGD step of float32 or float64 ``w`` (and velocity ``v``)."""
    call = launch.sgd_call(
        w.dtype.name,
        w,
        g,
        v,
        w.size,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        nesterov=nesterov,
    )
    _run(call, w.size, CUPY)
