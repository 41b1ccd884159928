"""Expected values on backends that flush subnormal floats to zero.

Which backends flush, and why:

- XLA's CPU code (hence JAX) sets flush-to-zero and denormals-are-zero: a
  subnormal input reads as 0 and a subnormal result is written as 0.
- CuPy compiles every kernel, its own element-wise operations and users'
  ``ElementwiseKernel``/``RawKernel``/``RawModule`` alike, with NVRTC's
  ``-ftz=true``, appended after the caller's options (``cupy/cuda/compiler.py``;
  NVRTC honours the last occurrence, so no option turns it off; NVRTC's own
  default is ``-ftz=false``). float32 products, sums and comparisons
  (``setp.le.ftz.f32``) then read subnormal inputs as zero and write
  subnormal results as zero. float64 is not affected; CuPy computes float16
  in float32, where float16's subnormals are normal numbers.
- NumPy keeps them, and so does PyTorch (CPU and CUDA).

:func:`flushes_subnormals` probes the namespace per dtype rather than trusting
this list. A property that computes its expected value with NumPy passes it
through :func:`as_backend_computes` (inputs) and :func:`scaled` (products) to
compare like with like.

The rule for fused kernels: a backend's fused kernel computes exactly what its
array-API path computes with the backend's own element-wise operations: the
same flushing, and no multiplication where that path does none (the ops
multiply only when the factor is not 1, so a factor of 1 passes every value
through untouched, subnormals included). The CuPy backend's kernels follow it:
CuPy compiles them with ``-ftz=true`` like the rest of CuPy, and they skip the
multiply for a scale of 1. (Issue 12's failure,
``test_relu_dropout_equals_dropout_of_relu[cupy]`` with actual 7.006e-45 and
expected 0.0, was that rule broken: in vanilla mode the scale is 1; the fused
dropout kernel multiplied by 1 under ``-ftz=true`` and flushed a subnormal
gradient to 0, while the array-API ReLU-dropout backward passed it through.)
Torch CUDA tensors run the same kernels compiled with IEEE float32
(``DK_IEEE_F32``), as PyTorch computes.

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

from dropkit.checks import to_numpy

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
