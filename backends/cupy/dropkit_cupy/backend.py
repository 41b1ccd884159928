"""The loaded CuPy backend: namespace, devices, Philox words and ``mask_scale`` as kernels.

Importing this module imports CuPy and checks for a CUDA device; the plugin
imports it only when the backend is loaded, so a machine without CUDA lists the
backend as unavailable with this module's error as the reason.

Kernels (:mod:`dropkit_cupy.kernels`), behind the one primitive ``mask_scale``:
fused dropout (one thread per Philox block of 4 elements, vector loads and
stores, no mask materialised), the broadcast-mask kernel of channel dropout,
the fused ReLU-dropout backward, each equal to the array-API path on CuPy bit
for bit (CuPy's float32 semantics included: see :mod:`dropkit_cupy.kernels_src`).
Inputs that are not C-contiguous are copied to a contiguous array first (the
element index is the C-order index, as on every backend); contiguous ones are
used as they are.

Per call, the fused dropout (the common case: a draw, a noise shape equal to
the array's) costs one dictionary look-up for its launcher, made once per
(dtype, threshold, scale, ReLU) (:class:`dropkit_cupy.kernels.FusedDropout`:
kernel handle and the arguments' NumPy scalars prepared), the output's
allocation and the launch; the device context is entered only when the
array's device is not the current one.
"""

from __future__ import annotations

import math
from typing import Any

try:
    import cupy
except ImportError as exc:  # pragma: no cover - depends on the machine
    raise ImportError(
        "CuPy is not installed: pip install 'dropkit-cupy[cuda12]' (or [cuda13])"
    ) from exc

import array_api_compat.cupy as xp
import numpy as np

from . import kernels
from .launch import split_broadcast

__all__ = ["CupyBackend"]


def _device_count() -> int:
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # CUDARuntimeError: no driver, no device
        raise RuntimeError(f"no usable CUDA device: {exc}") from exc


if _device_count() < 1:  # pragma: no cover - depends on the machine
    raise RuntimeError("no CUDA device found")


def _dtypes() -> dict[Any, str]:
    """The dtypes the kernels serve: float16/32/64, and bfloat16 where CuPy has it (ml_dtypes)."""
    found = {np.dtype(name): name for name in ("float16", "float32", "float64")}
    try:
        import ml_dtypes
    except ImportError:
        return found
    found[np.dtype(ml_dtypes.bfloat16)] = "bfloat16"
    return found


_DTYPES = _dtypes()


_ROUNDED: dict[tuple[Any, float], float] = {}


def _rounded(dtype: Any, scale: float) -> float:
    """``scale`` rounded to ``dtype`` as CuPy rounds a Python float (directly); cached."""
    found = _ROUNDED.get((dtype, scale))
    if found is None:
        if len(_ROUNDED) >= 1024:
            _ROUNDED.clear()
        found = _ROUNDED[(dtype, scale)] = float(dtype.type(scale))
    return found


#: (dtype, threshold, scale, relu) -> the fused dropout, made once (kernels.FusedDropout).
_PLANS: dict[tuple[Any, int, float, bool], Any] = {}
_get_device = cupy.cuda.runtime.getDevice


def _plan(dtype: Any, threshold: int, scale: float, relu: bool) -> Any:
    """The fused dropout for these values (cached), or None where the kernel does not apply."""
    name = _DTYPES.get(dtype)
    if name is None or not 0 <= threshold < 1 << 32:
        return None
    plan = kernels.fused_dropout(name, threshold, scale, _rounded(dtype, scale), relu, kernels.CUPY)
    if len(_PLANS) >= 256:  # a bound, for processes that see many scales
        _PLANS.clear()
    _PLANS[(dtype, threshold, scale, relu)] = plan
    return plan


def _fused(plan: Any, x: Any, draw: tuple[int, int], out: Any) -> Any:
    """Draw, compare and scale in one kernel on ``x``'s device; None if ``out`` cannot be used."""
    if out is not None and not out.flags.c_contiguous:
        return None
    if not x.size or x.data.device_id != _get_device():
        with x.device:
            return _fused_here(plan, x, draw, out)
    return _fused_here(plan, x, draw, out)


def _fused_here(plan: Any, x: Any, draw: tuple[int, int], out: Any) -> Any:
    src = x if x.flags.c_contiguous else cupy.ascontiguousarray(x)
    y = cupy.empty(x.shape, dtype=x.dtype) if out is None else out
    key, counter = draw
    plan(src, y, key, counter)
    return y


class CupyBackend:
    """CuPy arrays on CUDA devices.

    Examples
    --------
    >>> b = CupyBackend()
    >>> int(b.random_bits((0, 0), 1)[0]) == 0x6627E8D5
    True
    """

    name = "cupy"
    xp = xp

    def devices(self) -> list[Any]:
        """Every visible CUDA device."""
        return [cupy.cuda.Device(i) for i in range(_device_count())]

    def random_bits(
        self, draw: tuple[int, int], n: int, *, offset: int = 0, device: Any = None
    ) -> Any:
        """Philox words of elements ``offset .. offset + n - 1`` of ``(key, counter)`` (uint32)."""
        key, counter = draw
        with _on(device):
            return kernels.random_bits(key, counter, n, offset)

    def mask_scale(
        self,
        x: Any,
        draw: tuple[int, int] | None,
        *,
        noise_shape: tuple[int, ...],
        threshold: int,
        scale: float,
        relu: Any = False,
        out: Any = None,
    ) -> Any:
        """The primitive as one kernel (see the module docs); None where no kernel applies."""
        if draw is not None and (relu is False or relu is True):
            plan = _PLANS.get((x.dtype, threshold, scale, relu))
            if plan is None:
                plan = _plan(x.dtype, threshold, scale, relu)
            if plan is not None and tuple(noise_shape) == tuple(x.shape):
                return _fused(plan, x, draw, out)
        if x.dtype not in _DTYPES:
            return None
        if out is not None and not out.flags.c_contiguous:
            return None
        if relu is not True and relu is not False:  # the gate of ReLU-dropout's backward
            return self._gated(x, relu, scale, draw, threshold, out)
        if draw is None or threshold >= 1 << 32:
            return None
        key, counter = draw
        if tuple(noise_shape) == tuple(x.shape):
            return None
        if relu or x.size == 0 or not x.flags.c_contiguous:
            return None
        parts = split_broadcast(tuple(x.shape), tuple(noise_shape))
        if parts is None:
            return None
        with x.device:
            bits = kernels.random_bits(key, counter, math.prod(noise_shape), 0)
            keep = (bits >= np.uint32(threshold)).reshape(noise_shape)
            y = out if out is not None else cupy.empty(x.shape, dtype=x.dtype)
            kernels.masked(x, y, keep, parts, scale, _rounded(x.dtype, scale), variant=kernels.CUPY)
        return y

    def _gated(self, grad: Any, h: Any, scale: float, draw: Any, threshold: int, out: Any) -> Any:
        """``where(h <= 0, 0, grad * scale)`` in one pass (NaN passes); None to decline."""
        if (
            draw is not None
            or threshold != 0
            or out is not None
            or getattr(h, "dtype", None) != grad.dtype
            or h.shape != grad.shape
            or not (grad.flags.c_contiguous and h.flags.c_contiguous)
        ):
            return None
        with grad.device:
            y = cupy.empty(grad.shape, dtype=grad.dtype)
            if grad.size:
                rounded = _rounded(grad.dtype, scale)
                kernels.relu_backward(grad, h, y, scale, rounded, variant=kernels.CUPY)
        return y

    def __repr__(self) -> str:
        return f"<dropkit backend 'cupy' ({_device_count()} device(s))>"


def _on(device: Any) -> Any:
    """A context that makes ``device`` current (the current one if None)."""
    if device is None:
        return cupy.cuda.Device()
    return device if isinstance(device, cupy.cuda.Device) else cupy.cuda.Device(int(device))
