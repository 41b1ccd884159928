"""Entry point ``dropkit.experiment: sgd``: the application's fused SGD step on CuPy arrays.

A plugin of the application's hooks (:mod:`dropkit.experiment.hookspecs`), not
of the backend contract: the library never loads it. For CuPy's namespace it
offers :func:`sgd_update`, one CUDA kernel per parameter (the source is the
``dk_sgd_*`` kernels of :mod:`dropkit_cupy.kernels_src`), equal bit for bit to
the array-API update of :class:`dropkit.experiment.optim.SGD` on CuPy. CuPy is
imported at the first update, not here.

Examples
--------
>>> dropkit_sgd_kernel(object()) is None  # not CuPy's namespace
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dropkit.experiment.hookspecs import hookimpl

__all__ = ["dropkit_sgd_kernel", "sgd_update"]

_NAMESPACES = ("cupy", "array_api_compat.cupy")
_DTYPES = (np.dtype("float32"), np.dtype("float64"))


@hookimpl
def dropkit_sgd_kernel(xp: Any) -> Callable[..., bool] | None:
    """:func:`sgd_update` for CuPy's namespace, else None."""
    if getattr(xp, "__name__", None) not in _NAMESPACES:
        return None
    return sgd_update


def sgd_update(
    w: Any,
    g: Any,
    v: Any,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    nesterov: bool,
) -> bool:
    """In-place SGD step in one kernel; False (nothing done) where it does not apply."""
    from . import kernels  # imports CuPy

    arrays = (w, g, v)
    if (
        w.dtype not in _DTYPES
        or any(a.dtype != w.dtype or a.shape != w.shape for a in arrays)
        or not all(a.flags.c_contiguous for a in arrays)
    ):
        return False
    if w.size:
        with w.device:
            kernels.sgd(
                w, g, v, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov
            )
    return True
