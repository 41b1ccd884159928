"""The noise shape of a module's ``broadcast_dims`` (the Flax and Equinox modules).

Examples
--------
>>> noise_shape((8, 5, 3), (1,))
(8, 1, 3)
>>> noise_shape((8, 5, 3), (-1,))
(8, 5, 1)
"""

from __future__ import annotations

import operator
from typing import Any

__all__ = ["noise_shape"]


def noise_shape(shape: tuple[int, ...], broadcast_dims: Any) -> tuple[int, ...]:
    """``shape`` with 1 on every axis in ``broadcast_dims`` (negative axes count from the end)."""
    noise = list(shape)
    for dim in broadcast_dims:
        try:
            axis = operator.index(dim)
        except TypeError:
            axis = None
        if axis is None or isinstance(dim, bool) or not -len(shape) <= axis < len(shape):
            raise ValueError(
                f"broadcast_dims={tuple(broadcast_dims)} has {dim!r}, not an axis of an input "
                f"of shape {shape}"
            )
        noise[axis] = 1
    return tuple(noise)
