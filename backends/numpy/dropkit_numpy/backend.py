"""The loaded NumPy backend: namespace, devices, fast Philox words, fused dropout."""

from __future__ import annotations

import os
import warnings
from typing import Any

import array_api_compat.numpy as xp
import numpy as np

from ._philox_numpy import random_bits_numpy

__all__ = ["KERNELS_ENV_VAR", "NumpyBackend"]

#: Set to ``numpy`` to force the pure-NumPy kernels (``numba`` is the default).
KERNELS_ENV_VAR = "DROPKIT_NUMPY_KERNELS"

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
        from ._philox_numba import dropout_fused_numba, random_bits_numba
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
        dropout_fused_numba,
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
    >>> b.random_bits(0, 0, 1).tolist() == [0x6627E8D5]
    True
    """

    name = "numpy"
    xp = xp

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
        self, key: int, counter: int, n: int, *, offset: int = 0, device: Any = None
    ) -> np.ndarray:
        """Philox words of elements ``offset .. offset + n - 1`` (uint32, 1-d)."""
        return self._bits(key, counter, n, offset=offset)

    def dropout_fused(
        self,
        x: np.ndarray,
        key: int,
        counter: int,
        threshold: int,
        scale: float,
        *,
        relu: bool = False,
        out: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """Draw, compare and scale in one pass; None where no fused kernel applies."""
        if self._fused is None or x.dtype not in (np.float32, np.float64):
            return None
        if out is not None and not (out.flags.c_contiguous and out.flags.writeable):
            return None
        return self._fused(x, key, counter, threshold, scale, relu=relu, out=out)

    def dropout_masked(
        self, x: np.ndarray, mask: np.ndarray, scale: float, *, out: np.ndarray | None = None
    ) -> np.ndarray | None:
        """``where(mask, x * scale, 0)``, mask broadcast (channel dropout); None to decline."""
        if (
            self._masked is None
            or x.dtype not in (np.float32, np.float64)
            or mask.dtype != np.bool_
            or x.size == 0
            or mask.ndim != x.ndim
            or not x.flags.c_contiguous
        ):
            return None
        if out is not None and not (out.flags.c_contiguous and out.flags.writeable):
            return None
        return self._masked(x, mask, scale, out=out)

    def relu_dropout_backward_fused(
        self, grad: np.ndarray, h: np.ndarray, scale: float
    ) -> np.ndarray | None:
        """``where(h <= 0, 0, grad * scale)`` in one pass (NaN passes); None to decline."""
        if (
            self._relu_backward is None
            or grad.dtype not in (np.float32, np.float64)
            or h.dtype != grad.dtype
            or h.shape != grad.shape
            or not (grad.flags.c_contiguous and h.flags.c_contiguous)
        ):
            return None
        return self._relu_backward(grad, h, scale)

    def __repr__(self) -> str:
        return f"<dropkit backend 'numpy' (kernels={self.kernels})>"
