"""The loaded CuPy backend: namespace, devices, Philox words, fused dropout.

Importing this module imports CuPy and checks for a CUDA device; the plugin
imports it only when the backend is loaded, so a machine without CUDA lists the
backend as unavailable with this module's error as the reason.

Kernels: one thread per Philox block (4 elements) computes the block's words
in registers, compares them with the threshold, scales and writes: no mask is
materialised. Inputs that are not C-contiguous are copied to a contiguous
array first (the element index is the C-order index, as on every backend).
"""

from __future__ import annotations

from typing import Any

try:
    import cupy
except ImportError as exc:  # pragma: no cover - depends on the machine
    raise ImportError(
        "CuPy is not installed: pip install 'dropkit-cupy[cuda12]' (or [cuda13])"
    ) from exc

import array_api_compat.cupy as xp

from dropkit.philox import split64

from .kernels_src import BITS_OPERATION, DROPOUT_OPERATION, PHILOX_SOURCE

__all__ = ["CupyBackend"]


def _device_count() -> int:
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # CUDARuntimeError: no driver, no device
        raise RuntimeError(f"no usable CUDA device: {exc}") from exc


if _device_count() < 1:  # pragma: no cover - depends on the machine
    raise RuntimeError("no CUDA device found")

_BITS = cupy.ElementwiseKernel(
    "uint64 first, uint32 k0, uint32 k1, uint32 c2, uint32 c3",
    "raw uint32 out",
    BITS_OPERATION,
    "dropkit_philox_bits",
    preamble=PHILOX_SOURCE,
)

_DROPOUT = cupy.ElementwiseKernel(
    "raw T x, int64 n, uint32 threshold, T scale, bool relu, uint32 k0, uint32 k1, "
    "uint32 c2, uint32 c3",
    "raw T y",
    DROPOUT_OPERATION,
    "dropkit_philox_dropout",
    preamble=PHILOX_SOURCE,
)


class CupyBackend:
    """CuPy arrays on CUDA devices.

    Examples
    --------
    >>> b = CupyBackend()  # doctest: +SKIP
    >>> int(b.random_bits(0, 0, 1)[0]) == 0x6627E8D5  # doctest: +SKIP
    True
    """

    name = "cupy"
    xp = xp

    def devices(self) -> list[Any]:
        """Every visible CUDA device."""
        return [cupy.cuda.Device(i) for i in range(_device_count())]

    def random_bits(
        self, key: int, counter: int, n: int, *, offset: int = 0, device: Any = None
    ) -> Any:
        """Philox words of elements ``offset .. offset + n - 1`` (uint32, 1-d)."""
        with _on(device):
            if n == 0:
                return cupy.empty(0, dtype=cupy.uint32)
            first, last = offset // 4, (offset + n - 1) // 4
            words = cupy.empty(4 * (last - first + 1), dtype=cupy.uint32)
            k0, k1 = split64(key)
            c2, c3 = split64(counter)
            _BITS(cupy.uint64(first), k0, k1, c2, c3, words, size=last - first + 1)
            begin = offset - 4 * first
            return words[begin : begin + n]

    def dropout_fused(
        self,
        x: Any,
        key: int,
        counter: int,
        threshold: int,
        scale: float,
        *,
        relu: bool = False,
        out: Any = None,
    ) -> Any:
        """Draw, compare and scale in one kernel; None where it does not apply."""
        if x.dtype not in (cupy.float16, cupy.float32, cupy.float64) or threshold >= 1 << 32:
            return None
        if out is not None and not out.flags.c_contiguous:
            return None
        with _on(x.device):
            src = cupy.ascontiguousarray(x).reshape(-1)
            dst = out.reshape(-1) if out is not None else cupy.empty_like(src)
            if src.size:
                k0, k1 = split64(key)
                c2, c3 = split64(counter)
                _DROPOUT(
                    src,
                    src.size,
                    threshold,
                    x.dtype.type(scale),
                    relu,
                    k0,
                    k1,
                    c2,
                    c3,
                    dst,
                    size=(src.size + 3) // 4,
                )
            return out if out is not None else dst.reshape(x.shape)

    def __repr__(self) -> str:
        return f"<dropkit backend 'cupy' ({_device_count()} device(s))>"


def _on(device: Any) -> Any:
    """A context that makes ``device`` current (the current one if None)."""
    if device is None:
        return cupy.cuda.Device()
    return device if isinstance(device, cupy.cuda.Device) else cupy.cuda.Device(int(device))
