"""The fused SGD step as a Numba kernel (compiled once, cached on disk), for the application.

Moved out of the backend: an optimiser step is the application's kernel, not
part of the backend contract; :mod:`dropkit_numpy.sgd` offers it to the
application through its hook. Bit-identical to the array-API update of
:class:`dropkit.experiment.optim.SGD` (tested in ``tests/experiment``).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ._philox_numba import _JIT

__all__ = ["sgd_update_numba"]


@nb.njit(inline="always")
def _sgd_chunk(w, g, v, lo, hi, lr, momentum, decay, nesterov):
    if momentum == 0:  # plain SGD: the velocity is not used and stays as it is
        for i in range(lo, hi):
            w[i] -= lr * (g[i] + decay * w[i])
        return
    for i in range(lo, hi):
        grad = g[i] + decay * w[i]
        vel = momentum * v[i] + grad
        v[i] = vel
        w[i] -= lr * (grad + momentum * vel if nesterov else vel)


@nb.njit(parallel=False, **_JIT)
def _sgd_serial(w, g, v, lr, momentum, decay, nesterov):
    # One thread on purpose: the update streams 3 reads and 2 writes and is
    # memory-bound; on the 2-vCPU machine of the README a parallel version took
    # 8.4 ms alone and 13.8 ms right after a BLAS product (OpenBLAS's workers
    # spin after each product and took the second core), this one 6.5 ms both.
    _sgd_chunk(w, g, v, 0, w.shape[0], lr, momentum, decay, nesterov)


def sgd_update_numba(
    w: np.ndarray,
    g: np.ndarray,
    v: np.ndarray,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    nesterov: bool,
) -> None:
    """One in-place SGD step over C-contiguous ``w`` and ``v``, one pass over memory.

    Runs on the calling thread (memory-bound: a second thread measured slower).
    """
    fw, fg, fv = w.reshape(-1), g.reshape(-1), v.reshape(-1)
    t = w.dtype.type
    _sgd_serial(fw, fg, fv, t(lr), t(momentum), t(weight_decay), nesterov)
