"""torch's CUDA path: dropkit's CUDA kernels launched on torch CUDA tensors themselves.

The torch backend's operator (``dropkit_torch._op``) calls these for CUDA
tensors. Each device gets, on first use, the first engine of :data:`ENGINES`
that loads there:

- ``"nvrtc"`` (:mod:`dropkit_torch._nvrtc`): the core's kernel source
  (``dropkit/_cuda/kernels.cu``, the text the CuPy backend compiles) built with
  NVRTC, the runtime compiler torch's CUDA wheels ship, cached on disk, and
  launched with the CUDA driver on the tensors' memory (their ``data_ptr``) on
  torch's current stream of the tensor's device: no CuPy, no DLPack, nothing
  allocated per call. A known-answer launch checks the engine once per device.
- ``"cupy"`` (:mod:`dropkit_torch._cuda_cupy`): the kernels of dropkit-cupy
  through CuPy and DLPack, where the first cannot load and CuPy is installed.

Without either (a warning says why) the operator keeps its own path: the
int64 Philox reference in torch operations. Every engine gives the NumPy
backend's masks bit for bit; kernels compute float32 as IEEE (subnormals
kept, as PyTorch keeps them), and a scale is rounded to the tensor's dtype as
``torch.tensor(scale, dtype=dtype)`` rounds it.
"""

from __future__ import annotations

import math
import threading
import warnings
from types import ModuleType

import torch

from dropkit._cuda import DK_RELU, DK_SCALE, DK_VEC
from dropkit.philox import MASK32

from ._nvrtc import Launcher, load

__all__ = [
    "ENGINES",
    "device_seed",
    "dropout",
    "engine",
    "keep_mask",
    "relu_backward",
    "rounded_scale",
    "supports",
    "usable",
    "words",
]

#: Engines tried, in order, the first time a device is used (tests and the GPU
#: check change it to compare them; :func:`engine` then starts afresh).
ENGINES: tuple[str, ...] = ("nvrtc", "cupy")

_KINDS = {
    torch.float32: "f32",
    torch.float64: "f64",
    torch.float16: "f16",
    torch.bfloat16: "bf16",
}
#: Bytes of alignment of the vector path (one Philox block of 4 values).
_ALIGNMENT = {torch.float32: 16, torch.float64: 16, torch.float16: 8, torch.bfloat16: 8}
_DROPOUT = {dtype: f"dk_dropout_{kind}" for dtype, kind in _KINDS.items()}
_RELU_BACKWARD = {dtype: f"dk_relu_backward_{kind}" for dtype, kind in _KINDS.items()}
#: Known answer: the words of block 0 for key 0, counter 0 (Philox4x32-10).
_BLOCK0 = [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]

Engine = Launcher | ModuleType | None
_engines: dict[int, Engine] = {}
_scales: dict[tuple[torch.dtype, float], tuple[float, int | float]] = {}
_lock = threading.Lock()
_MISSING = object()


def supports(x: torch.Tensor) -> bool:
    """Whether the fused kernels serve ``x``'s dtype."""
    return x.dtype in _KINDS


def device_seed(seed: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    """``seed`` if the kernels can read it where it is (int64 (4,) on ``device``), else None.

    A seed on the GPU is read by the kernel itself: no copy to the host, hence
    no synchronisation (its words are taken modulo 2**32 there; seeds made by
    ``dropkit_torch.keys`` are already 32-bit words). Others go through
    ``seed_ints`` on the host, which checks them.
    """
    if (
        seed.device == device
        and seed.dtype == torch.int64
        and tuple(seed.shape) == (4,)
        and seed.is_contiguous()
    ):
        return seed
    return None


def usable(device: torch.device) -> bool:
    """Whether an engine serves CUDA ``device`` (chosen once per device; warns on fallbacks)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    found = _engines.get(index, _MISSING)
    return (_choose(index) if found is _MISSING else found) is not None


def engine(index: int) -> Engine:
    """The engine of device ``index``: a ``Launcher``, the CuPy fallback module, or None.

    The ``Launcher`` is :class:`dropkit_torch._nvrtc.Launcher`. Index ``-1`` is what
    ``get_device()`` says of a CPU tensor: the tests' stand-in.
    """
    found = _engines.get(index, _MISSING)
    return _choose(index) if found is _MISSING else found  # type: ignore[return-value]


def _choose(index: int) -> Engine:
    with _lock:
        if index in _engines:
            return _engines[index]
        failures: list[str] = []
        chosen: Engine = None
        for name in ENGINES:
            try:
                chosen = _LOADERS[name](index)
            except Exception as exc:
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            if chosen is not None:
                break
        if failures and (chosen is None or type(chosen) is not Launcher):
            fallback = "the CuPy kernels" if chosen is not None else "torch operations"
            warnings.warn(
                f"dropkit-torch: the direct CUDA kernels are not available on cuda:{index} "
                f"({'; '.join(failures)}); torch CUDA tensors use {fallback} instead "
                "(same results, slower)",
                RuntimeWarning,
                stacklevel=3,
            )
        _engines[index] = chosen
        return chosen


def _load_nvrtc(index: int) -> Launcher | None:
    if torch.version.cuda is None:  # a torch without CUDA: no device to serve (or a test)
        return None
    launcher = load(index)
    if not torch.cuda.is_current_stream_capturing():  # one synchronising check, not in a graph
        out = torch.empty(4, dtype=torch.int32, device=torch.device("cuda", index))
        launcher("dk_bits", 1, out.data_ptr(), 0, 1, DK_VEC, 0, 0, 0, 0)
        got = [w & MASK32 for w in out.tolist()]
        if got != _BLOCK0:
            raise RuntimeError(
                f"the known-answer launch gave {[hex(w) for w in got]}, "
                f"expected {[hex(w) for w in _BLOCK0]}"
            )
    return launcher


def _load_cupy(index: int) -> ModuleType | None:
    from . import _cuda_cupy

    if index >= 0 and not _cuda_cupy.usable(torch.device("cuda", index)):
        return None
    return _cuda_cupy


_LOADERS = {"nvrtc": _load_nvrtc, "cupy": _load_cupy}


def rounded_scale(dtype: torch.dtype, scale: float) -> float:
    """``scale`` rounded to ``dtype`` as ``torch.tensor(scale, dtype=dtype)`` rounds it.

    Examples
    --------
    >>> x = 1 + 2**-11 + 2**-40   # float16: via float32 a tie, rounded to even
    >>> rounded_scale(torch.float16, x) == torch.tensor(x, dtype=torch.float16).item()
    True
    """
    return _scale(dtype, scale)[0]


def _scale(dtype: torch.dtype, scale: float) -> tuple[float, int | float]:
    """(the rounded scale, the kernel's scale argument), cached per (dtype, scale).

    float16 kernels take the scale's 16-bit pattern, the others its value
    (bfloat16's as a float32, exact).
    """
    found = _scales.get((dtype, scale))
    if found is None:
        t = torch.tensor(scale, dtype=dtype)
        rounded = float(t.item())
        arg: int | float = (
            int(t.view(torch.int16).item()) & 0xFFFF if dtype == torch.float16 else rounded
        )
        if len(_scales) >= 4096:
            _scales.clear()
        found = _scales[(dtype, scale)] = (rounded, arg)
    return found


def _fallback(found: Engine, index: int) -> ModuleType:
    if found is None:
        raise RuntimeError(
            f"no CUDA kernels serve cuda:{index} (dropkit_torch.cuda.usable is False there); "
            "call usable(device) first"
        )
    return found  # type: ignore[return-value]


def dropout(
    x: torch.Tensor,
    out: torch.Tensor,
    key: int,
    counter: int,
    threshold: int,
    scale: float,
    relu: bool,
    seed: torch.Tensor | None = None,
) -> None:
    """Fused dropout of the C-contiguous CUDA tensor ``x`` into ``out`` (may be ``x``).

    ``out`` has ``x``'s shape, dtype and device and is C-contiguous. ``seed``
    (from :func:`device_seed`), when given, replaces ``key`` and ``counter``.
    """
    n = x.numel()
    if n == 0:
        return
    index = x.get_device()
    launch = _engines.get(index) or engine(index)
    if type(launch) is not Launcher:
        _fallback(launch, index).dropout(x, out, key, counter, threshold, scale, relu, seed)
        return
    dtype = x.dtype
    src, dst = x.data_ptr(), out.data_ptr()
    flags = (DK_RELU if relu else 0) | (DK_SCALE if scale != 1.0 else 0)
    if (src | dst) % _ALIGNMENT[dtype] == 0:
        flags |= DK_VEC
    found = _scales.get((dtype, scale)) or _scale(dtype, scale)
    launch(
        _DROPOUT[dtype],
        (n + 3) // 4,
        src,
        dst,
        n,
        found[1],
        flags,
        threshold,
        key & MASK32,
        key >> 32,
        counter & MASK32,
        counter >> 32,
        0 if seed is None else seed.data_ptr(),
    )


def relu_backward(grad: torch.Tensor, h: torch.Tensor, scale: float) -> torch.Tensor:
    """``where(h <= 0, 0, grad * scale)`` (NaN in ``h`` passes) in one kernel, a new tensor.

    ``grad`` and ``h``: C-contiguous CUDA tensors of one dtype, shape and device.
    """
    index = grad.get_device()
    launch = _engines.get(index) or engine(index)
    if type(launch) is not Launcher:
        result: torch.Tensor = _fallback(launch, index).relu_backward(grad, h, scale)
        return result
    y = torch.empty_like(grad)
    n = grad.numel()
    if n:
        found = _scales.get((grad.dtype, scale)) or _scale(grad.dtype, scale)
        flags = DK_SCALE if scale != 1.0 else 0
        launch(
            _RELU_BACKWARD[grad.dtype],
            n,
            grad.data_ptr(),
            h.data_ptr(),
            y.data_ptr(),
            n,
            found[1],
            flags,
        )
    return y


def keep_mask(
    key: int,
    counter: int,
    shape: tuple[int, ...],
    threshold: int,
    device: torch.device,
    seed: torch.Tensor | None = None,
) -> torch.Tensor:
    """The boolean keep-mask of ``shape`` (C order) on a CUDA ``device`` (threshold < 2**32).

    ``seed`` as in :func:`dropout`.
    """
    mask = torch.empty(shape, dtype=torch.bool, device=device)
    index = mask.get_device()
    launch = _engines.get(index) or engine(index)
    if type(launch) is not Launcher:
        found: torch.Tensor = _fallback(launch, index).keep_mask(
            key, counter, shape, threshold, device, seed
        )
        return found
    n = math.prod(shape)
    if n:
        ptr = mask.data_ptr()
        launch(
            "dk_keep_mask",
            (n + 3) // 4,
            ptr,
            n,
            DK_VEC if ptr % 4 == 0 else 0,
            threshold,
            key & MASK32,
            key >> 32,
            counter & MASK32,
            counter >> 32,
            0 if seed is None else seed.data_ptr(),
        )
    return mask


def words(key: int, counter: int, n: int, device: torch.device, *, offset: int = 0) -> torch.Tensor:
    """Philox words of elements ``offset .. offset + n - 1`` (int64, < 2**32) on ``device``."""
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=device)
    first, last = offset // 4, (offset + n - 1) // 4
    raw = torch.empty(4 * (last - first + 1), dtype=torch.int32, device=device)
    index = raw.get_device()
    launch = _engines.get(index) or engine(index)
    if type(launch) is not Launcher:
        result: torch.Tensor = _fallback(launch, index).words(
            key, counter, n, device, offset=offset
        )
        return result
    ptr, nblocks = raw.data_ptr(), last - first + 1
    flags = DK_VEC if ptr % 16 == 0 else 0
    launch(
        "dk_bits",
        nblocks,
        ptr,
        first,
        nblocks,
        flags,
        key & MASK32,
        key >> 32,
        counter & MASK32,
        counter >> 32,
    )
    begin = offset - 4 * first
    return raw[begin : begin + n].to(torch.int64) & MASK32
