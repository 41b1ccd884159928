"""The compiled kernels (``cupy.RawModule``) and their launches, for CuPy arrays and torch tensors.

Two modules are built from :data:`~dropkit_cupy.kernels_src.KERNEL_SOURCE`,
lazily, once per process, each holding every kernel (one NVRTC compilation
per module; CuPy keeps the binary in its on-disk cache, so a later process on
the machine compiles nothing, and :mod:`dropkit_cupy.build_notice` says on
stderr when a build will compile): ``CUPY``, whose float32 arithmetic is
flushed exactly as CuPy's own element-wise operations are (CuPy compiles
everything with ``-ftz=true``), for CuPy arrays; and ``IEEE``, for torch CUDA
tensors, which keeps subnormals as PyTorch does. A CuPy user builds only
``CUPY``. No ``name_expressions``: CuPy recompiles a module that has them in
every process.

Kernel handles (``cupy.RawKernel``, which loads its binary per device itself)
are cached per (module, name), launch sizes per device, and the fused dropout
per (dtype, threshold, scale, ReLU, module) as a :class:`FusedDropout` whose
call costs the data pointers' alignment, one NumPy scalar (the draw's counter
word), the argument tuple and the launch on the current stream.

Arrays passed here are C-contiguous (the callers copy others); ``y`` may be
``x`` (in place).
"""

from __future__ import annotations

import threading
from typing import Any

import cupy
import numpy as np

from . import build_notice, launch
from .kernels_src import KERNEL_SOURCE, NVRTC_OPTIONS

__all__ = [
    "CUPY",
    "IEEE",
    "FusedDropout",
    "bits_into",
    "dropout",
    "function",
    "fused_dropout",
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
_kernels: dict[tuple[str, str], Any] = {}  # (variant, name) -> cupy.RawKernel
_sms: dict[int, int] = {}
_fused: dict[tuple[Any, ...], FusedDropout] = {}
_fixed: dict[tuple[Any, ...], tuple[str, tuple[Any, ...]]] = {}  # op's fixed arguments
_counts: dict[int, np.int64] = {}
_lock = threading.RLock()
_BLOCK = (launch.THREADS,)
_get_device = cupy.cuda.runtime.getDevice


def _load(variant: str, name: str) -> Any:
    """Build module ``variant`` if needed (the notice first when it compiles); its kernel."""
    with _lock:
        kernel = _kernels.get((variant, name))
        if kernel is not None:
            return kernel
        module = _modules.get(variant)
        marker = None
        if module is None:
            options = _OPTIONS[variant]
            module = cupy.RawModule(code=KERNEL_SOURCE, options=options)
            marker = build_notice.before_build(cupy, KERNEL_SOURCE, options)
        kernel = module.get_function(name)  # CuPy compiles at the module's first one
        if variant not in _modules:
            _modules[variant] = module
            build_notice.after_build(marker)
        _kernels[(variant, name)] = kernel
    return kernel


def function(name: str, variant: str = CUPY) -> Any:
    """The ``cupy.RawKernel`` ``name`` of module ``variant`` (built at the first call)."""
    return _kernels.get((variant, name)) or _load(variant, name)


def multiprocessors(device: int | None = None) -> int:
    """The multiprocessor count of ``device`` (the current one if None), cached."""
    if device is None:
        device = _get_device()
    count = _sms.get(device)
    if count is None:
        props = cupy.cuda.runtime.getDeviceProperties(device)
        count = _sms[device] = int(props["multiProcessorCount"])
    return count


def _grid(work: int, device: int) -> tuple[int]:
    """Blocks for ``work`` items, one per thread, capped at BLOCKS_PER_SM per multiprocessor."""
    return (launch.grid_size(work, multiprocessors(device)),)


def _run(call: tuple[str, tuple[Any, ...]], work: int, variant: str) -> None:
    """Launch on the current device and stream: one thread per work item, grid capped."""
    name, args = call
    fn = _kernels.get((variant, name)) or _load(variant, name)
    fn(_grid(work, _get_device()), _BLOCK, args)


class FusedDropout:
    """The fused dropout of one dtype, threshold, scale and ReLU flag, ready to launch.

    Made once (:func:`fused_dropout`); per call it reads the pointers'
    alignment, builds the draw's words and launches on the current device.
    """

    __slots__ = ("_args", "_fn", "_sizes")

    def __init__(
        self, dtype: str, threshold: int, scale: float, rounded: float, relu: bool, variant: str
    ) -> None:
        self._args = launch.DropoutArgs(dtype, threshold, scale, rounded, relu=relu)
        self._fn = function(self._args.name, variant)
        self._sizes: dict[int, tuple[np.int64, tuple[int]]] = {}  # n -> (n, grid)

    def __call__(self, x: Any, y: Any, key: int, counter: int, seed: Any = None) -> None:
        """Launch on ``x`` into ``y`` (C-contiguous, on the current device)."""
        n = x.size
        if not n:
            return
        size = self._sizes.get(n)
        if size is None:
            if len(self._sizes) >= 64:
                self._sizes.clear()
            # the grid of the device that first launched this size (any grid is correct)
            size = self._sizes[n] = (np.int64(n), _grid((n + 3) // 4, _get_device()))
        fixed = self._args
        align = fixed.alignment
        vec = x.data.ptr % align == 0 and (y is x or y.data.ptr % align == 0)
        self._fn(size[1], _BLOCK, fixed.args(x, y, size[0], key, counter, vec=vec, seed=seed))


def fused_dropout(
    dtype: str, threshold: int, scale: float, rounded: float, relu: bool, variant: str
) -> FusedDropout:
    """The :class:`FusedDropout` of these values (cached)."""
    key = (dtype, threshold, scale, rounded, relu, variant)
    found = _fused.get(key)
    if found is None:
        with _lock:
            if len(_fused) >= 256:  # a bound, for processes that see many scales
                _fused.clear()
            found = _fused[key] = FusedDropout(dtype, threshold, scale, rounded, relu, variant)
    return found


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
    plan = fused_dropout(dtype or x.dtype.name, threshold, scale, rounded, relu, variant)
    plan(x, y, key, counter, seed)


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


def _int64(n: int) -> np.int64:
    """``n`` as the kernels' ``int64`` argument (cached: array sizes repeat)."""
    found = _counts.get(n)
    if found is None:
        if len(_counts) >= 1024:
            _counts.clear()
        found = _counts[n] = np.int64(n)
    return found


def relu_backward(
    g: Any, h: Any, y: Any, scale: float, rounded: float, *, variant: str, dtype: str | None = None
) -> None:
    """``y = where(h <= 0, 0, g * scale)`` (NaN in ``h`` passes)."""
    key = ("relu_backward", dtype or g.dtype, scale, rounded)
    fixed = _fixed.get(key)
    if fixed is None:
        name = dtype or g.dtype.name
        fixed = _remember(key, launch.relu_backward_fixed(name, scale, rounded))
    n = g.size
    _run((fixed[0], (g, h, y, _int64(n), *fixed[1])), n, variant)


def sgd(
    w: Any, g: Any, v: Any, *, lr: float, momentum: float, weight_decay: float, nesterov: bool
) -> None:
    """One in-place SGD step of float32 or float64 ``w`` (and velocity ``v``)."""
    key = ("sgd", w.dtype, lr, momentum, weight_decay, nesterov)
    fixed = _fixed.get(key)
    if fixed is None:
        hyper = launch.sgd_fixed(
            w.dtype.name, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov
        )
        fixed = _remember(key, hyper)
    n = w.size
    _run((fixed[0], (w, g, v, _int64(n), *fixed[1])), n, CUPY)


def _remember(
    key: tuple[Any, ...], fixed: tuple[str, tuple[Any, ...]]
) -> tuple[str, tuple[Any, ...]]:
    if len(_fixed) >= 1024:  # a bound, for processes that see many scales or rates
        _fixed.clear()
    _fixed[key] = fixed
    return fixed
