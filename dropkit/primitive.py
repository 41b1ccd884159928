"""The one primitive every mask-applying op reduces to, and its array-API reference.

``mask_scale(caps, x, draw, ...)`` calls the backend's own ``mask_scale``
(found once when it loaded, :class:`dropkit.backend.Capabilities`) and, when
the backend has none or declines (returns None), the reference
:func:`reference_mask_scale`, written once against the array API. Dropout,
channel dropout, ReLU-dropout, drop path, alpha dropout and every backward
call it; the ops decide everything else (:mod:`dropkit.ops`).

Examples
--------
>>> import numpy as np
>>> from dropkit.selection import select_by_name
>>> caps = select_by_name("array_api_strict")
>>> import array_api_strict as xp
>>> y = mask_scale(caps, xp.ones(4), (0, 0), noise_shape=(4,), threshold=2**31, scale=2.0)
>>> [float(v) for v in y]
[0.0, 2.0, 2.0, 2.0]
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from .backend import Capabilities
from .thresholds import FULL

__all__ = [
    "device_of",
    "keep_mask",
    "mask_scale",
    "reference_mask_scale",
    "relu_keep",
    "times",
    "write",
]


def device_of(x: Any) -> Any:
    """The array's device (a plain attribute where it has one: compilers trace it)."""
    device = getattr(x, "device", None)
    return device if device is not None and not callable(device) else array_api_compat.device(x)


def times(xp: Any, z: Any, factor: float) -> Any:
    """``z * factor``, the factor rounded to ``z``'s dtype first (``z`` itself for 1).

    NumPy rounds a Python float to the array's dtype; PyTorch would multiply
    float16 by the unrounded value. Both now give the same result. No product
    for a factor of 1: XLA's CPU code flushes subnormals in a product.
    """
    if factor == 1.0:
        return z
    return z * xp.asarray(factor, dtype=z.dtype, device=device_of(z))


def relu_keep(xp: Any, z: Any) -> Any:
    """Where ReLU passes ``z``: ``not (z <= 0)``, so NaN passes (as ``torch.relu``)."""
    return xp.logical_not(z <= 0)


def write(xp: Any, x: Any, y: Any, inplace: bool) -> Any:
    """``y``, or (``inplace``) ``x`` overwritten with ``y``."""
    if not inplace or y is x:
        return y
    if math.prod(x.shape):  # (Dask cannot assign into an empty array)
        x[...] = y
    return x


def keep_mask(
    caps: Capabilities, draw: Any, shape: tuple[int, ...], threshold: int, device: Any
) -> Any:
    """The boolean keep-mask of ``shape`` (C order) for ``draw``: word >= threshold."""
    xp = caps.xp
    if threshold >= FULL:
        return xp.zeros(shape, dtype=xp.bool, device=device)
    bits = caps.random_bits(draw, math.prod(shape), device=device)
    # the threshold as an array of the words' dtype: JAX without x64 reads a bare
    # Python int above 2**31 as int32 and overflows
    limit = xp.asarray(threshold, dtype=bits.dtype, device=device_of(bits))
    return xp.reshape(bits >= limit, shape)


def reference_mask_scale(
    caps: Capabilities,
    x: Any,
    draw: Any,
    *,
    noise_shape: tuple[int, ...],
    threshold: int,
    scale: float,
    relu: Any = False,
    out: Any = None,
) -> Any:
    """The array-API reference of ``mask_scale`` (see :class:`dropkit.backend.MasksAndScales`).

    Examples
    --------
    >>> import numpy as np
    >>> from dropkit.selection import select_by_name
    >>> caps = select_by_name("array_api_strict")
    >>> import array_api_strict as xp
    >>> h = xp.asarray([0.0, 1.0, -1.0])
    >>> g = reference_mask_scale(caps, xp.ones(3), None, noise_shape=(3,), threshold=0,
    ...                          scale=2.0, relu=h)
    >>> [float(v) for v in g]
    [0.0, 2.0, 0.0]
    """
    xp = caps.xp
    if threshold >= FULL:
        y = xp.zeros_like(x)
    else:
        keep = None
        if threshold > 0:
            keep = keep_mask(caps, draw, tuple(noise_shape), threshold, device_of(x))
        if relu is True:
            gate = relu_keep(xp, x)
            keep = gate if keep is None else xp.logical_and(keep, gate)
        elif relu is not False and relu is not None:
            gate = relu_keep(xp, relu)
            keep = gate if keep is None else xp.logical_and(keep, gate)
        scaled = times(xp, x, scale)
        if keep is None:
            y = scaled
        else:
            y = xp.where(keep, scaled, xp.zeros((), dtype=x.dtype, device=device_of(x)))
    if out is None:
        return y
    return write(xp, out, y, True)


def mask_scale(
    caps: Capabilities,
    x: Any,
    draw: Any,
    *,
    noise_shape: tuple[int, ...],
    threshold: int,
    scale: float,
    relu: Any = False,
    out: Any = None,
) -> Any:
    """The backend's primitive, or the reference where it has none or declines."""
    if caps.mask_scale is not None:
        y = caps.mask_scale(
            x,
            draw,
            noise_shape=noise_shape,
            threshold=threshold,
            scale=scale,
            relu=relu,
            out=out,
        )
        if y is not None:
            return y
    return reference_mask_scale(
        caps,
        x,
        draw,
        noise_shape=noise_shape,
        threshold=threshold,
        scale=scale,
        relu=relu,
        out=out,
    )
