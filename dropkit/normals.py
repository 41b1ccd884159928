"""Standard normal samples from Philox words (Box-Muller), on any array-API namespace.

One Box-Muller serves the weight initialiser of the training loop (its
He-normal weights) and the Gaussian ops
(:func:`dropkit.gaussian_dropout`, :func:`dropkit.gaussian_noise`). For ``n``
samples it takes ``2 * ceil(n / 2)`` words of one draw: with ``h = ceil(n / 2)``,
words ``0 .. h - 1`` give ``u1`` and words ``h .. 2h - 1`` give ``u2``, each
``u = (word + 0.5) * 2**-32`` (in ``(0, 1)``, never 0 or 1), and the samples are
``concat(r * cos(t), r * sin(t))[:n]`` with ``r = sqrt(-2 log u1)`` and
``t = 2 pi u2``.

Portability
-----------
- The words are bit-identical on every backend (:mod:`dropkit.philox`).
- The arithmetic runs in float64 on every namespace that has it (NumPy, CuPy,
  PyTorch, array_api_strict, Dask, JAX with ``jax_enable_x64``) and the result
  is rounded once to the requested dtype. The libraries' float64 ``log``,
  ``sqrt``, ``cos`` and ``sin`` are not all correctly rounded, so the float64
  samples may differ between backends by a few float64 ULPs (the tests bound
  the difference at :data:`FLOAT64_ULPS` ULPs); rounded to float32 or float16
  they agree except where such a difference straddles a rounding boundary,
  and then by exactly 1 ULP of the output dtype.
- Without float64 (JAX's default) the arithmetic runs in float32. Then ``u``
  itself is rounded to 24 bits, and samples differ from the float64 reference
  by at most :data:`FLOAT32_ABS_ERROR` in absolute value (the error is largest
  where ``u1`` is near 1, i.e. for samples near 0).

Examples
--------
>>> import numpy as np
>>> import array_api_compat.numpy as xp
>>> from dropkit import philox
>>> bits = philox.random_bits(xp, 7, 0, 4)
>>> z = box_muller(xp, bits, 3, np.float64)
>>> z.shape, z.dtype
((3,), dtype('float64'))
"""

from __future__ import annotations

import math
from typing import Any

from .backend import Backend
from .random import Generator

__all__ = [
    "FLOAT32_ABS_ERROR",
    "FLOAT64_ULPS",
    "box_muller",
    "normal_words",
    "standard_normal",
    "wide_float",
]

#: Largest difference, in float64 ULPs, between backends' float64 samples (tested).
FLOAT64_ULPS = 8
#: Largest absolute difference of float32-computed samples from the float64 reference (tested).
FLOAT32_ABS_ERROR = 2.0**-10


def normal_words(n: int) -> int:
    """How many Philox words :func:`box_muller` takes for ``n`` samples.

    Examples
    --------
    >>> normal_words(3), normal_words(4)
    (4, 4)
    """
    return 2 * ((n + 1) // 2)


def wide_float(xp: Any) -> Any:
    """float64 where the namespace supports it here, else float32 (JAX without x64).

    Examples
    --------
    >>> import array_api_strict as xp
    >>> wide_float(xp) == xp.float64
    True
    """
    if not hasattr(xp, "float64"):
        return xp.float32
    info = getattr(xp, "__array_namespace_info__", None)
    if info is not None and "float64" not in info().dtypes(kind="real floating"):
        return xp.float32
    return xp.float64


def box_muller(xp: Any, bits: Any, n: int, dtype: Any, *, wide: Any = None) -> Any:
    """``n`` standard normal samples (1-d, of ``dtype``) from ``normal_words(n)`` words.

    Parameters
    ----------
    xp : namespace
        The words' namespace.
    bits : array
        1-d array of at least ``normal_words(n)`` Philox words (uint32, or int64
        holding values below 2**32).
    n : int
        Number of samples.
    dtype : dtype
        The result's dtype.
    wide : dtype, optional
        The working precision; default :func:`wide_float` of ``xp`` (the
        weight initialiser passes ``xp.float64`` where the attribute exists,
        as it always has).

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from dropkit import philox
    >>> z = box_muller(xp, philox.random_bits(xp, 0, 0, 2), 2, xp.float64)
    >>> [round(float(v), 6) for v in z]
    [0.991138, -0.924663]
    """
    half = (n + 1) // 2
    if wide is None:
        wide = wide_float(xp)
    u1 = (xp.astype(bits[:half], wide) + 0.5) * 2.0**-32
    u2 = (xp.astype(bits[half : 2 * half], wide) + 0.5) * 2.0**-32
    radius = xp.sqrt(-2.0 * xp.log(u1))
    angle = (2.0 * math.pi) * u2
    z = xp.concat([radius * xp.cos(angle), radius * xp.sin(angle)])[:n]
    return z if dtype == wide else xp.astype(z, dtype)


def standard_normal(
    backend: Backend, rng: Generator, shape: tuple[int, ...], dtype: Any, device: Any = None
) -> Any:
    """Standard normal samples of ``shape`` from one draw of ``rng`` (Box-Muller on Philox words).

    The weight initialiser's samples: unchanged, bit for bit, since it moved
    here from the training loop's network module.

    Examples
    --------
    >>> import numpy as np
    >>> from dropkit import get_backend
    >>> z = standard_normal(get_backend("numpy"), Generator(0), (20000,), np.float64)
    >>> abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.05
    True
    """
    xp = backend.xp
    n = math.prod(shape)
    key, counter = rng.draw()
    bits = backend.random_bits((key, counter), normal_words(n), device=device)
    wide = xp.float64 if hasattr(xp, "float64") else xp.float32
    z = box_muller(xp, bits, n, wide, wide=wide)
    return xp.astype(xp.reshape(z, shape), dtype)
