"""The loaded NumPy backend: namespace, devices, fast Philox words, and ``mask_scale``.

``mask_scale`` (the backend's one optional primitive, see
:class:`dropkit.MasksAndScales`) runs Numba kernels: element-wise (ReLU-)dropout
drawn, compared and scaled in one pass; channel dropout's words drawn per map
and applied in one pass over the broadcast mask; ReLU-dropout's backward gated
on its output in one pass. Where no kernel applies (another dtype, a strided
array, no Numba) it declines and the core's array-API reference runs.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from typing import Any

import array_api_compat.numpy as xp
import numpy as np

from dropkit.backend import split_broadcast

from ._philox_numpy import random_bits_numpy

__all__ = ["KERNELS_ENV_VAR", "NumpyBackend"]

#: Set to ``numpy`` to force the pure-NumPy kernels (``numba`` is the default).
KERNELS_ENV_VAR = "DROPKIT_NUMPY_KERNELS"

#: The dtypes the kernels take (native byte order: ``>f4`` is not among them).
_KERNEL_DTYPES = frozenset({np.dtype(np.float32), np.dtype(np.float64)})

_NUMBA_ERROR: str | None = None  # why the Numba kernels failed to import (warned once)


def _warn_numba(reason: str) -> None:
    warnings.warn(
        f"dropkit-numpy: the Numba kernels failed to import ({reason}); using the pure-NumPy "
        f"kernels (same results, slower). Set {KERNELS_ENV_VAR}=numpy to silence this.",
        RuntimeWarning,
        stacklevel=4,
    )


def _numba_kernels() -> tuple[Any, Any, Any, Any] | None:
    """The Numba kernels, or None for the pure-NumPy ones.

    Numba missing is the documented fallback (silent); Numba failing otherwise
    at import (a broken llvmlite, a bad ``NUMBA_*`` setting) warns once per
    process and falls back too: the backend stays available.
    """
    if os.environ.get(KERNELS_ENV_VAR, "numba") == "numpy":
        return None
    global _NUMBA_ERROR
    if _NUMBA_ERROR is not None:
        return None
    try:
        from ._masked_numba import masked_numba, relu_backward_numba
        from ._philox_numba import fused_dropout, random_bits_numba
    except ImportError as exc:
        if getattr(exc, "name", None) not in ("numba", "llvmlite"):
            _NUMBA_ERROR = f"{type(exc).__name__}: {exc}"
            _warn_numba(_NUMBA_ERROR)
        return None
    except Exception as exc:
        _NUMBA_ERROR = f"{type(exc).__name__}: {exc}"
        _warn_numba(_NUMBA_ERROR)
        return None
    return (
        random_bits_numba,
        fused_dropout,
        masked_numba,
        relu_backward_numba,
    )


class NumpyBackend:
    """NumPy arrays on the CPU.

    Attributes
    ----------
    kernels : {"numba", "numpy"}
        Which implementation computes the random words.

    Examples
    --------
    >>> b = NumpyBackend()
    >>> b.random_bits((0, 0), 1).tolist() == [0x6627E8D5]
    True
    """

    name = "numpy"
    xp = xp
    _fused: Callable[..., np.ndarray] | None
    _masked: Callable[..., np.ndarray | None] | None
    _relu_backward: Callable[..., np.ndarray] | None

    def __init__(self) -> None:
        found = _numba_kernels()
        if found is None:
            self.kernels = "numpy"
            self._bits = random_bits_numpy
            self._fused = self._masked = self._relu_backward = None
        else:
            self.kernels = "numba"
            self._bits, self._fused, self._masked, self._relu_backward = found

    def devices(self) -> list[Any]:
        """NumPy has one device, the CPU."""
        return ["cpu"]

    def random_bits(
        self, draw: tuple[int, int], n: int, *, offset: int = 0, device: Any = None
    ) -> np.ndarray:
        """Philox words of elements ``offset .. offset + n - 1`` of ``(key, counter)`` (uint32)."""
        key, counter = draw
        return self._bits(key, counter, n, offset=offset)

    def mask_scale(
        self,
        x: np.ndarray,
        draw: tuple[int, int] | None,
        *,
        noise_shape: tuple[int, ...],
        threshold: int,
        scale: float,
        relu: Any = False,
        out: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """The primitive as one Numba pass (see the module docs); None where no kernel applies."""
        if self._fused is None or x.dtype not in _KERNEL_DTYPES:
            return None
        if out is not None and not (out.flags.c_contiguous and out.flags.writeable):
            return None
        if relu is not True and relu is not False:  # the gate of ReLU-dropout's backward
            return self._gated(x, relu, scale, draw, threshold, out)
        if draw is None:
            return None
        key, counter = draw
        if noise_shape == x.shape or tuple(noise_shape) == x.shape:
            return self._fused(x, key, counter, threshold, scale, relu, out)
        if relu or self._masked is None or x.size == 0 or not x.flags.c_contiguous:
            return None
        if split_broadcast(tuple(x.shape), tuple(noise_shape)) is None:
            return None
        bits = self._bits(key, counter, math.prod(noise_shape))
        keep = (bits >= np.uint32(threshold)).reshape(noise_shape)
        return self._masked(x, keep, scale, out=out)

    def _gated(
        self, grad: np.ndarray, h: Any, scale: float, draw: Any, threshold: int, out: Any
    ) -> np.ndarray | None:
        """``where(h <= 0, 0, grad * scale)`` in one pass (NaN passes); None to decline."""
        if (
            self._relu_backward is None
            or draw is not None
            or threshold != 0
            or out is not None
            or not isinstance(h, np.ndarray)
            or h.dtype != grad.dtype
            or h.shape != grad.shape
            or not (grad.flags.c_contiguous and h.flags.c_contiguous)
        ):
            return None
        return self._relu_backward(grad, h, scale)

    def __repr__(self) -> str:
        return f"<dropkit backend 'numpy' (kernels={self.kernels})>"
