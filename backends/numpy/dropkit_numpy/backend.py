"""The loaded NumPy backend: namespace, devices, fast Philox words, fused dropout."""

from __future__ import annotations

import os
from typing import Any

import array_api_compat.numpy as xp
import numpy as np

from ._philox_numpy import random_bits_numpy

__all__ = ["KERNELS_ENV_VAR", "NumpyBackend"]

#: Set to ``numpy`` to force the pure-NumPy kernels (``numba`` is the default).
KERNELS_ENV_VAR = "DROPKIT_NUMPY_KERNELS"


def _numba_kernels() -> tuple[Any, Any] | None:
    if os.environ.get(KERNELS_ENV_VAR, "numba") == "numpy":
        return None
    try:
        from ._philox_numba import dropout_fused_numba, random_bits_numba
    except ImportError:
        return None
    return random_bits_numba, dropout_fused_numba


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
            self._fused = None
        else:
            self.kernels = "numba"
            self._bits, self._fused = found

    def devices(self) -> list[Any]:
        """NumPy has one device, the CPU."""
        return ["cpu"]

    def random_bits(
        self, key: int, counter: int, n: int, *, offset: int = 0, device: Any = None
    ) -> np.ndarray:
        """Philox words of elements ``offset .. offset + n - 1`` (uint32, 1-d)."""
        return self._bits(key, counter, n, offset=offset)

    def dropout_fused(
        self, x: np.ndarray, key: int, counter: int, threshold: int, scale: float
    ) -> np.ndarray | None:
        """Draw, compare and scale in one pass; None where no fused kernel applies."""
        if self._fused is None or x.dtype not in (np.float32, np.float64):
            return None
        return self._fused(x, key, counter, threshold, scale)

    def __repr__(self) -> str:
        return f"<dropkit backend 'numpy' (kernels={self.kernels})>"
