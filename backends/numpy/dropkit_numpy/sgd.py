"""Entry point ``dropkit.experiment: sgd``: the application's fused SGD step on NumPy arrays.

A plugin of the application's hooks (:mod:`dropkit.experiment.hookspecs`), not
of the backend contract: the library never loads it. It offers the Numba kernel
(one pass over memory per parameter) for NumPy arrays; none without Numba or
with ``DROPKIT_NUMPY_KERNELS=numpy`` (the application then takes the array-API
update, the same bits).

Examples
--------
>>> import numpy as np
>>> import array_api_compat.numpy as xp
>>> kernel = dropkit_sgd_kernel(xp)
>>> w, v = np.ones(3, np.float32), np.zeros(3, np.float32)
>>> kernel is None or kernel(w, np.ones(3, np.float32), v, lr=0.5, momentum=0.9,
...                          weight_decay=0.0, nesterov=False)
True
>>> kernel is None or w.tolist() == [0.5, 0.5, 0.5]
True
>>> dropkit_sgd_kernel(object()) is None  # not NumPy's namespace
True
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from dropkit.experiment.hookspecs import hookimpl

from .backend import KERNELS_ENV_VAR

__all__ = ["dropkit_sgd_kernel", "sgd_update"]

_NAMESPACES = ("numpy", "array_api_compat.numpy")
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@hookimpl
def dropkit_sgd_kernel(xp: Any) -> Callable[..., bool] | None:
    """:func:`sgd_update` for NumPy's namespace when the Numba kernel loads, else None."""
    if getattr(xp, "__name__", None) not in _NAMESPACES:
        return None
    if os.environ.get(KERNELS_ENV_VAR, "numba") == "numpy":
        return None
    try:
        from . import _sgd_numba  # noqa: F401 - compiles (or loads) the kernel
    except Exception:  # Numba missing or broken: the backend says so once, if it matters
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
    """In-place SGD step in one pass; False (nothing done) where it does not apply."""
    from ._sgd_numba import sgd_update_numba

    arrays = (w, g, v)
    if (
        not all(isinstance(a, np.ndarray) for a in arrays)
        or w.dtype not in _DTYPES
        or any(a.dtype != w.dtype or a.shape != w.shape for a in arrays)
        or not (w.flags.c_contiguous and v.flags.c_contiguous and g.flags.c_contiguous)
        or not (w.flags.writeable and v.flags.writeable)
    ):
        return False
    sgd_update_numba(
        w, g, v, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov
    )
    return True
