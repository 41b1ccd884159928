"""Philox4x32-10 words in vectorised NumPy (the fallback without Numba).

Each round multiplies in ``uint64`` and reads the high and low words through a
``uint32`` view, in cache-sized chunks with preallocated buffers. Equal to
:func:`dropkit.philox.random_bits` bit for bit (tested).
"""

from __future__ import annotations

import numpy as np

from dropkit.philox import (
    MASK32,
    PHILOX_M0,
    PHILOX_M1,
    PHILOX_W0,
    PHILOX_W1,
    ROUNDS,
    split64,
)

__all__ = ["random_bits_numpy"]

_CHUNK_BLOCKS = 1 << 14  # 16K blocks = 256 KiB of output per chunk
_LITTLE = np.little_endian


def _blocks(out: np.ndarray, first: int, key: int, counter: int) -> None:
    """Fill ``out`` (shape (nb, 4), uint32) with the blocks ``first .. first + nb - 1``."""
    nb = out.shape[0]
    k0, k1 = split64(key)
    ctr_lo, ctr_hi = split64(counter)
    idx = np.arange(first, first + nb, dtype=np.uint64)
    c0 = (idx & MASK32).astype(np.uint32)
    c1 = (idx >> np.uint64(32)).astype(np.uint32)
    c2 = np.full(nb, ctr_lo, dtype=np.uint32)
    c3 = np.full(nb, ctr_hi, dtype=np.uint32)
    p0 = np.empty(nb, dtype=np.uint64)
    p1 = np.empty(nb, dtype=np.uint64)
    v0, v1 = p0.view(np.uint32), p1.view(np.uint32)
    hi_at, lo_at = (1, 0) if _LITTLE else (0, 1)
    m0, m1 = np.uint64(PHILOX_M0), np.uint64(PHILOX_M1)
    for r in range(ROUNDS):
        if r:
            k0 = (k0 + PHILOX_W0) & MASK32
            k1 = (k1 + PHILOX_W1) & MASK32
        np.multiply(c0, m0, out=p0)
        np.multiply(c2, m1, out=p1)
        # new (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
        np.bitwise_xor(v1[hi_at::2], c1, out=c0)
        np.bitwise_xor(c0, np.uint32(k0), out=c0)
        np.bitwise_xor(v0[hi_at::2], c3, out=c2)
        np.bitwise_xor(c2, np.uint32(k1), out=c2)
        np.copyto(c1, v1[lo_at::2])
        np.copyto(c3, v0[lo_at::2])
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = c0, c1, c2, c3


def random_bits_numpy(key: int, counter: int, n: int, *, offset: int = 0) -> np.ndarray:
    """Philox words of elements ``offset .. offset + n - 1`` (uint32, 1-d).

    Examples
    --------
    >>> random_bits_numpy(0, 0, 4).tolist() == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    True
    """
    if n == 0:
        return np.empty(0, dtype=np.uint32)
    first, last = offset // 4, (offset + n - 1) // 4
    nb = last - first + 1
    words = np.empty((nb, 4), dtype=np.uint32)
    for start in range(0, nb, _CHUNK_BLOCKS):
        stop = min(nb, start + _CHUNK_BLOCKS)
        _blocks(words[start:stop], first + start, key, counter)
    begin = offset - 4 * first
    return words.reshape(-1)[begin : begin + n]
