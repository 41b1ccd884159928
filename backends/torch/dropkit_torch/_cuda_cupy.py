"""The CuPy fallback of :mod:`dropkit_torch.cuda`: the kernels of dropkit-cupy through CuPy.

Used for torch CUDA tensors only where the kernels cannot be compiled and
launched directly (:mod:`dropkit_torch._nvrtc`: no NVRTC, a torch without
CUDA's driver API, a failed self-test) and CuPy and dropkit-cupy are
installed. Each call wraps the tensors with DLPack (zero-copy) and launches
through CuPy: correct, but slow per call (issue 20 measured 269.8 us per
(256, 800) float32 call on an H200, ``F.dropout`` 14.4 us). Same masks as
the CPU: the words are the same Philox kernel's.

- The tensor's memory is wrapped with ``cupy.from_dlpack`` (no copy); a
  bfloat16 tensor is wrapped through an int16 view (CuPy may have no
  bfloat16 dtype) and the kernel told the values' type.
- Kernels run on torch's current stream of the tensor's device (a cached
  ``cupy.cuda.ExternalStream``), so they are ordered with the surrounding
  torch work and captured by CUDA graphs like it; ``from_dlpack`` is asked
  from that same stream, so no extra synchronisation is inserted.
- The module used is the IEEE one: float32 subnormals are kept, as PyTorch
  keeps them (CuPy's own arrays get CuPy's flush-to-zero semantics instead).
- A scale is rounded to the tensor's dtype as PyTorch rounds a Python float
  (through float32 for float16 and bfloat16).
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import Any

import cupy
import numpy as np
import torch
from dropkit_cupy import kernels
from dropkit_cupy.launch import bf16_round

__all__ = [
    "device_seed",
    "dropout",
    "keep_mask",
    "relu_backward",
    "rounded_scale",
    "supports",
    "usable",
    "words",
]

_DTYPES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
}
_streams: dict[tuple[int, int], Any] = {}
_usable: dict[int, bool] = {}
_lock = threading.Lock()


def supports(x: torch.Tensor) -> bool:
    """Whether the fused kernels serve ``x``'s dtype."""
    return x.dtype in _DTYPES


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
    """Whether the kernels compile and load on ``device`` (tried once; warns on failure)."""
    index = _index(device)
    ok = _usable.get(index)
    if ok is None:
        with _lock:
            try:
                with cupy.cuda.Device(index):
                    kernels.function("dk_bits", kernels.IEEE)
                    kernels.function("dk_bits", kernels.CUPY)
                ok = True
            except Exception as exc:
                warnings.warn(
                    f"dropkit-cupy: the CUDA kernels failed to build on cuda:{index} "
                    f"({type(exc).__name__}: {exc}); torch CUDA tensors use torch operations "
                    "instead (same results, slower)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                ok = False
            _usable[index] = ok
    return ok


def rounded_scale(dtype: torch.dtype, scale: float) -> float:
    """``scale`` rounded to ``dtype`` as ``torch.tensor(scale, dtype=dtype)`` rounds it.

    Examples
    --------
    >>> x = 1 + 2**-11 + 2**-40   # float16: via float32 a tie, rounded to even
    >>> rounded_scale(torch.float16, x) == torch.tensor(x, dtype=torch.float16).item()
    True
    """
    if dtype == torch.float64:
        return float(scale)
    if dtype == torch.float32:
        return float(np.float32(scale))
    if dtype == torch.float16:
        return float(np.float16(np.float32(scale)))
    return bf16_round(scale)


def _index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


def _external(current: Any, ptr: int, index: int) -> Any:
    """A CuPy stream object for torch's stream ``current`` (handle ``ptr`` on device ``index``).

    CuPy 14 prefers ``Stream.from_external`` (the CUDA stream protocol, where
    torch's stream has it) and deprecates ``ExternalStream``, which older CuPy
    versions need.
    """
    from_external = getattr(getattr(cupy.cuda, "Stream", None), "from_external", None)
    if from_external is not None and hasattr(current, "__cuda_stream__"):
        try:
            return from_external(current)
        except (TypeError, ValueError):  # a protocol version this CuPy does not read
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return cupy.cuda.ExternalStream(ptr, index)


class _OnTorchStream:
    """Make the tensor's device and torch's current stream on it current for CuPy."""

    __slots__ = ("_device", "_stream")

    def __init__(self, index: int) -> None:
        current = torch.cuda.current_stream(index)
        ptr = current.cuda_stream
        stream = _streams.get((index, ptr))
        if stream is None:
            stream = _streams[(index, ptr)] = _external(current, ptr, index)
        self._device = cupy.cuda.Device(index)
        self._stream = stream

    def __enter__(self) -> None:
        self._device.__enter__()
        self._stream.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._stream.__exit__(*exc)
        self._device.__exit__(*exc)


def _wrap(t: torch.Tensor) -> Any:
    """A CuPy array on ``t``'s memory (bfloat16 through an int16 view).

    Detached first: DLPack refuses tensors that require grad, and the op's
    autograd formula, not this memory access, is what autograd sees.
    """
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return cupy.from_dlpack(t)


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
    if x.numel() == 0:
        return
    dtype = _DTYPES[x.dtype]
    with _OnTorchStream(_index(x.device)):
        src = _wrap(x)
        dst = src if out.data_ptr() == x.data_ptr() else _wrap(out)
        kernels.dropout(
            src,
            dst,
            key,
            counter,
            threshold,
            scale,
            rounded_scale(x.dtype, scale),
            relu=relu,
            variant=kernels.IEEE,
            dtype=dtype,
            seed=None if seed is None else _wrap(seed),
        )


def relu_backward(grad: torch.Tensor, h: torch.Tensor, scale: float) -> torch.Tensor:
    """``where(h <= 0, 0, grad * scale)`` (NaN in ``h`` passes) in one kernel, a new tensor.

    ``grad`` and ``h``: C-contiguous CUDA tensors of one dtype, shape and device.
    """
    y = torch.empty_like(grad)
    if grad.numel():
        with _OnTorchStream(_index(grad.device)):
            kernels.relu_backward(
                _wrap(grad),
                _wrap(h),
                _wrap(y),
                scale,
                rounded_scale(grad.dtype, scale),
                variant=kernels.IEEE,
                dtype=_DTYPES[grad.dtype],
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
    if math.prod(shape):
        with _OnTorchStream(_index(mask.device)):
            on_device = None if seed is None else _wrap(seed)
            out = _wrap(mask.view(torch.uint8))
            kernels.keep_mask(out, key, counter, threshold, seed=on_device)
    return mask


def words(key: int, counter: int, n: int, device: torch.device, *, offset: int = 0) -> torch.Tensor:
    """Philox words of elements ``offset .. offset + n - 1`` (int64, < 2**32) on ``device``."""
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=device)
    first, last = offset // 4, (offset + n - 1) // 4
    raw = torch.empty(4 * (last - first + 1), dtype=torch.int32, device=device)
    with _OnTorchStream(_index(raw.device)):
        kernels.bits_into(_wrap(raw), first, key, counter)
    begin = offset - 4 * first
    return raw[begin : begin + n].to(torch.int64) & 0xFFFFFFFF
