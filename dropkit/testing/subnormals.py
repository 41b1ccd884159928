"""Expected values on backends that flush subnormal floats to zero.

XLA's CPU code (hence JAX) sets flush-to-zero and denormals-are-zero: a
subnormal input reads as 0 and a subnormal result is written as 0. NumPy keeps
them. A property that computes its expected value with NumPy passes it through
:func:`as_backend_computes` to compare like with like.

Examples
--------
>>> import array_api_compat.numpy as xp
>>> flushes_subnormals(xp)
False
>>> a = np.array([1e-45, 1.0], dtype=np.float32)
>>> as_backend_computes(xp, a).tolist() == a.tolist()
True
>>> flush_subnormals(a).tolist()
[0.0, 1.0]
>>> scaled(xp, a, 2.0).tolist() == (a * 2).tolist()
True
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dropkit._arrays import to_numpy

__all__ = ["as_backend_computes", "flush_subnormals", "flushes_subnormals", "scaled"]


def flushes_subnormals(xp: Any, dtype: str = "float32") -> bool:
    """Whether namespace ``xp`` reads or writes subnormals of ``dtype`` as zero.

    Asked per dtype: XLA on CPU flushes float32 subnormals but computes
    float16 in float32, where float16's subnormals are normal numbers.
    """
    return _flushes(xp, np.dtype(dtype).name)


@functools.cache
def _flushes(xp: Any, dtype: str) -> bool:
    info = np.finfo(dtype)
    smallest = xp.asarray(np.array([info.smallest_subnormal], dtype=dtype))
    tiny = xp.asarray(np.array([info.tiny], dtype=dtype))
    half = xp.asarray(np.array([0.5], dtype=dtype))
    reads_zero = not bool(to_numpy(smallest > 0)[0])
    writes_zero = bool(to_numpy(tiny * half)[0] == 0)
    return reads_zero or writes_zero


def flush_subnormals(a: np.ndarray) -> np.ndarray:
    """``a`` with its subnormal elements replaced by a zero of their sign (a copy).

    The sign is kept, as the hardware's flush-to-zero keeps it (x86 FTZ/DAZ,
    PTX ``.ftz``).
    """
    a = np.asarray(a)
    if a.dtype.kind != "f":
        return a.copy()
    return np.where(np.abs(a) < np.finfo(a.dtype).tiny, np.copysign(a.dtype.type(0), a), a)


def as_backend_computes(xp: Any, a: np.ndarray) -> np.ndarray:
    """``a`` as namespace ``xp`` would hold it: subnormals flushed where it flushes."""
    a = np.asarray(a)
    if a.dtype.kind != "f" or not flushes_subnormals(xp, a.dtype.name):
        return a
    return flush_subnormals(a)


def scaled(xp: Any, a: np.ndarray, factor: float) -> np.ndarray:
    """``a * factor`` in ``a``'s dtype as dropkit's ops on ``xp`` give it.

    The ops multiply only when ``factor != 1`` (otherwise the values pass
    through untouched, subnormals included); a product reads and writes
    subnormals the backend's way.
    """
    a = np.asarray(a)
    if factor == 1.0:
        return a
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN are expected inputs
        product = as_backend_computes(xp, a) * a.dtype.type(factor)
    return as_backend_computes(xp, product)
