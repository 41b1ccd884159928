"""Applying keep-masks as Numba kernels: broadcast masks and ReLU-dropout's backward.

Channel dropout keeps or drops whole maps: its mask has the noise shape, e.g.
``(N, C, 1, 1)`` for ``(N, C, H, W)`` input, and the generic ``where`` over the
broadcast mask makes two passes over memory and a temporary. Here the input is
viewed as ``(A, B, C)`` with the mask as ``(A, C)`` (``B`` the broadcast
axes), and each element is written once: ``x * scale`` where kept, exactly 0
where dropped (inf and NaN included). Equal to the generic path bit for bit
(tested).

The backward of ReLU-then-dropout keeps the gradient where the layer's output
``h`` is positive or NaN: ``where(h <= 0, 0, grad * scale)`` in one pass, instead of a
product, a comparison and a ``where`` with their temporaries.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from dropkit.backend import split_broadcast

from ._philox_numba import _JIT, _launch

__all__ = ["masked_numba", "relu_backward_numba", "split_broadcast"]


@nb.njit(inline="always")
def _rows(x, y, keep, lo, hi, scale):
    zero = x.dtype.type(0)
    for a in range(lo, hi):
        if keep[a]:
            for b in range(x.shape[1]):
                y[a, b] = x[a, b] * scale
        else:
            for b in range(x.shape[1]):
                y[a, b] = zero


@nb.njit(inline="always")
def _inner(x, y, keep, lo, hi, scale):
    # x, y: (A * B, C); row r belongs to outer index r // B
    zero = x.dtype.type(0)
    spread = x.shape[0] // keep.shape[0]
    for r in range(lo, hi):
        k = keep[r // spread]
        for c in range(x.shape[1]):
            y[r, c] = x[r, c] * scale if k[c] else zero


_ROWS = 64  # rows per parallel task


@nb.njit(parallel=False, **_JIT)
def _rows_serial(x, y, keep, scale):
    _rows(x, y, keep, 0, x.shape[0], scale)


@nb.njit(parallel=True, **_JIT)
def _rows_parallel(x, y, keep, scale):
    n = x.shape[0]
    for t in nb.prange((n + _ROWS - 1) // _ROWS):
        _rows(x, y, keep, t * _ROWS, min(n, (t + 1) * _ROWS), scale)


@nb.njit(parallel=False, **_JIT)
def _inner_serial(x, y, keep, scale):
    _inner(x, y, keep, 0, x.shape[0], scale)


@nb.njit(parallel=True, **_JIT)
def _inner_parallel(x, y, keep, scale):
    n = x.shape[0]
    for t in nb.prange((n + _ROWS - 1) // _ROWS):
        _inner(x, y, keep, t * _ROWS, min(n, (t + 1) * _ROWS), scale)


def masked_numba(
    x: np.ndarray, keep: np.ndarray, scale: float, *, out: np.ndarray | None = None
) -> np.ndarray | None:
    """``where(keep, x * scale, 0)`` with ``keep`` broadcast to ``x``; None to decline.

    ``x`` (and ``out``, which may be ``x``) must be C-contiguous float32 or
    float64, ``keep`` a boolean array of the noise shape.

    Examples
    --------
    >>> x = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    >>> keep = np.array([True, False]).reshape(2, 1, 1)   # one draw per x[i]
    >>> masked_numba(x, keep, 2.0).tolist()
    [[[0.0, 2.0], [4.0, 6.0]], [[0.0, 0.0], [0.0, 0.0]]]
    """
    parts = split_broadcast(tuple(x.shape), tuple(keep.shape))
    if parts is None:
        return None
    outer, spread, inner = parts
    y = np.empty_like(x) if out is None else out
    scale = x.dtype.type(scale)
    if inner == 1:
        row_args = (x.reshape(outer, spread), y.reshape(outer, spread), keep.reshape(outer), scale)
        _launch(_rows_parallel, _rows_serial, x.size, *row_args)
    else:
        flat = (outer * spread, inner)
        inner_args = (x.reshape(flat), y.reshape(flat), keep.reshape(outer, inner), scale)
        _launch(_inner_parallel, _inner_serial, x.size, *inner_args)
    return y


_FLAT = 1 << 14  # elements per parallel task


@nb.njit(inline="always")
def _relu_backward(g, h, y, lo, hi, scale):
    zero = g.dtype.type(0)
    for i in range(lo, hi):
        y[i] = zero if h[i] <= 0 else g[i] * scale  # NaN in h passes, as in torch.relu


@nb.njit(parallel=False, **_JIT)
def _relu_backward_serial(g, h, y, scale):
    _relu_backward(g, h, y, 0, g.shape[0], scale)


@nb.njit(parallel=True, **_JIT)
def _relu_backward_parallel(g, h, y, scale):
    n = g.shape[0]
    for t in nb.prange((n + _FLAT - 1) // _FLAT):
        _relu_backward(g, h, y, t * _FLAT, min(n, (t + 1) * _FLAT), scale)


def relu_backward_numba(grad: np.ndarray, h: np.ndarray, scale: float) -> np.ndarray:
    """``where(h <= 0, 0, grad * scale)`` in one pass, into a new array (NaN in h passes).

    ``grad`` and ``h`` are C-contiguous arrays of one float dtype and one shape.

    Examples
    --------
    >>> g = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    >>> relu_backward_numba(g, np.array([0.5, 0.0, 2.0], dtype=np.float32), 2.0).tolist()
    [2.0, 0.0, 6.0]
    """
    y = np.empty_like(grad)
    args = (grad.reshape(-1), h.reshape(-1), y.reshape(-1), grad.dtype.type(scale))
    _launch(_relu_backward_parallel, _relu_backward_serial, grad.size, *args)
    return y
