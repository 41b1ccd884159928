"""The NumPy backend's fused Numba dropout on a CPU tensor's memory, called by address.

The kernel body is the NumPy backend's (``dropout_chunk`` of
:mod:`dropkit_numpy._philox_numba`, the same source, so the same words and
masks); only the way in differs. The NumPy backend's entry point takes NumPy
arrays, and wrapping a tensor's memory in two of them (``ctypes`` buffer,
``numpy.frombuffer``, ``reshape``) and converting the scalars cost about
3 us, more than the kernel itself on an (8, 8) tensor. These kernels take the
tensors' addresses and the element count as integers and view the memory
with ``numba.carray`` inside the compiled code, so a call costs Numba's
dispatch of plain integers (under 1 us).

They run on one thread; tensors from ``PARALLEL_MIN`` elements up take the
NumPy backend's entry point, whose parallel kernel serves them (the wrapping
costs nothing there). Importing this module needs Numba: :mod:`dropkit_torch._op`
imports it only where the NumPy backend found Numba.

Examples
--------
>>> import torch
>>> x, y = torch.ones(8), torch.empty(8)
>>> kernel = KERNELS[torch.float32]
>>> kernel(x.data_ptr(), y.data_ptr(), 8, 2**31, 2.0, False, 0, 0, 0, 0)
>>> y.tolist()
[0.0, 2.0, 2.0, 2.0, 2.0, 0.0, 2.0, 0.0]
>>> import dropkit, numpy as np   # the NumPy backend's mask for the same draw
>>> dropkit.dropout(np.ones(8, np.float32), 0.5, rng=0).tolist()
[0.0, 2.0, 2.0, 2.0, 2.0, 0.0, 2.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba as nb
import numpy as np
import torch
from dropkit_numpy._philox_numba import _CHUNK, _JIT, PARALLEL_MIN, _dropout_chunk, entry_point
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["KERNELS", "PARALLEL_MIN", "SCALAR_KERNELS"]


@intrinsic
def _pointer(typingctx: Any, address: Any) -> Any:
    """The integer ``address`` as a ``void*`` (for ``numba.carray``)."""
    signature = types.voidptr(address)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return signature, codegen


@nb.njit(inline="always")
def _run(x, y, threshold, scale, relu, key_lo, key_hi, counter_lo, counter_hi):
    # The NumPy backend's serial kernel (_dropout_serial) on the arrays x and y.
    k0, k1 = np.uint64(key_lo), np.uint64(key_hi)
    c2, c3 = np.uint64(counter_lo), np.uint64(counter_hi)
    t = np.uint64(threshold)
    nblocks = (y.shape[0] + 3) // 4
    for chunk in range((nblocks + _CHUNK - 1) // _CHUNK):
        lo, hi = chunk * _CHUNK, min(nblocks, (chunk + 1) * _CHUNK)
        _dropout_chunk(x, y, lo, hi, t, scale, relu, k0, k1, c2, c3)


# One function per dtype and input form (carray's dtype is a compile-time
# constant), written out rather than made by a factory: Numba's on-disk cache is
# keyed by the Python function, and closures are not cached. The scale is rounded
# to x's dtype, as the NumPy entry point rounds it.


@nb.njit(parallel=False, **_JIT)
def _dropout_float32(src, dst, n, threshold, scale, relu, k0, k1, c0, c1):
    x = nb.carray(_pointer(src), (n,), np.float32)
    y = nb.carray(_pointer(dst), (n,), np.float32)
    _run(x, y, threshold, np.float32(scale), relu, k0, k1, c0, c1)


@nb.njit(parallel=False, **_JIT)
def _dropout_float64(src, dst, n, threshold, scale, relu, k0, k1, c0, c1):
    x = nb.carray(_pointer(src), (n,), np.float64)
    y = nb.carray(_pointer(dst), (n,), np.float64)
    _run(x, y, threshold, np.float64(scale), relu, k0, k1, c0, c1)


@nb.njit(parallel=False, **_JIT)
def _dropout_scalar_float32(src, dst, n, threshold, scale, relu, k0, k1, c0, c1):
    x = np.broadcast_to(nb.carray(_pointer(src), (1,), np.float32), (n,))
    y = nb.carray(_pointer(dst), (n,), np.float32)
    _run(x, y, threshold, np.float32(scale), relu, k0, k1, c0, c1)


@nb.njit(parallel=False, **_JIT)
def _dropout_scalar_float64(src, dst, n, threshold, scale, relu, k0, k1, c0, c1):
    x = np.broadcast_to(nb.carray(_pointer(src), (1,), np.float64), (n,))
    y = nb.carray(_pointer(dst), (n,), np.float64)
    _run(x, y, threshold, np.float64(scale), relu, k0, k1, c0, c1)


#: The one signature each kernel is compiled for: three addresses and counts, the
#: threshold, the scale, relu, the four 32-bit words of the key and counter.
_SIGNATURE = (*(types.int64,) * 4, types.float64, types.boolean, *(types.int64,) * 4)


class _FirstCall:
    """A kernel's stand-in in its table until its first call, which puts the entry point there.

    The entry point (:func:`dropkit_numpy._philox_numba.entry_point`) takes the
    ten plain arguments without the dispatcher's typing (0.2 us of a call);
    compiling it at the first call, not at import, keeps ``import dropkit_torch``
    free of Numba's cache loading.
    """

    def __init__(self, table: dict[torch.dtype, Callable[..., None]], dtype: torch.dtype) -> None:
        self.table, self.dtype, self.kernel = table, dtype, table[dtype]

    def __call__(self, *args: Any) -> None:
        entry = entry_point(self.kernel, _SIGNATURE)
        self.table[self.dtype] = entry
        entry(*args)


#: ``kernel(src, dst, n, threshold, scale, relu, key_lo, key_hi, counter_lo, counter_hi)``
#: per torch dtype: writes the dropout of the ``n`` C-contiguous elements at address
#: ``src`` to the ``n`` at ``dst`` (which may equal ``src``). Every integer is below
#: 2**63 (addresses, and the key and counter as 32-bit words, as the seed tensor holds
#: them), ``scale`` a float and ``relu`` a bool: the kernel's one signature.
KERNELS: dict[torch.dtype, Callable[..., None]] = {
    torch.float32: _dropout_float32,
    torch.float64: _dropout_float64,
}
#: The same for an input of one element repeated ``n`` times (an expanded tensor, all
#: strides 0, such as the gradient of ``y.sum()``): as if it had been copied out.
SCALAR_KERNELS: dict[torch.dtype, Callable[..., None]] = {
    torch.float32: _dropout_scalar_float32,
    torch.float64: _dropout_scalar_float64,
}
for _table in (KERNELS, SCALAR_KERNELS):
    for _dtype in list(_table):
        _table[_dtype] = _FirstCall(_table, _dtype)
