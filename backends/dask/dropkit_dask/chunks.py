"""Per-chunk work: Philox words at a chunk's global element indices (plain NumPy).

Element ``i`` of the whole array (C order) takes word ``i % 4`` of Philox block
``i // 4``, whatever the chunking: a chunk computes the global flat indices of
its own elements from its location in the array, and the words there.

Examples
--------
>>> import numpy as np
>>> from dropkit import philox
>>> import array_api_compat.numpy as npx
>>> idx = np.array([[5, 6], [13, 14]])
>>> whole = np.asarray(philox.random_bits(npx, 3, 1, 15))
>>> bool(np.all(words_at(3, 1, idx) == whole[idx]))
True
"""

from __future__ import annotations

from typing import Any

import array_api_compat.numpy as npx
import numpy as np

from dropkit.philox import MASK32, philox4x32, split64

__all__ = ["chunk_dropout", "chunk_words", "global_indices", "words_at"]


def words_at(key: int, counter: int, idx: np.ndarray) -> np.ndarray:
    """The uint32 Philox words of the elements with global flat indices ``idx``."""
    blocks = (idx >> 2).astype(np.uint64)
    lo = (blocks & np.uint64(MASK32)).astype(np.uint32)
    hi = (blocks >> np.uint64(32)).astype(np.uint32)
    c2, c3 = split64(counter)
    words = philox4x32(npx, (lo, hi, c2, c3), split64(key))
    return np.choose((idx & 3).astype(np.intp), [np.asarray(w) for w in words])


def global_indices(shape: tuple[int, ...], location: list[tuple[int, int]]) -> np.ndarray:
    """Global C-order flat indices of the chunk at ``location`` of an array of ``shape``."""
    idx = np.zeros([stop - start for start, stop in location], dtype=np.int64)
    stride = 1
    for axis in reversed(range(len(shape))):
        start, stop = location[axis]
        view = [1] * len(shape)
        view[axis] = stop - start
        idx += (np.arange(start, stop, dtype=np.int64) * stride).reshape(view)
        stride *= shape[axis]
    return idx


def chunk_words(
    block: np.ndarray, key: int, counter: int, block_info: dict[Any, Any] | None = None
) -> np.ndarray:
    """``map_blocks`` function: words for a chunk of a 1-d array of global indices."""
    return words_at(key, counter, block.astype(np.int64))


def chunk_dropout(
    block: np.ndarray,
    key: int,
    counter: int,
    threshold: int,
    scale: float,
    relu: bool,
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    """``map_blocks`` function: dropout of one chunk, from its place in the whole array."""
    if block.size == 0:
        return np.empty_like(block)
    info = block_info[0]
    idx = global_indices(tuple(info["shape"]), list(info["array-location"]))
    keep = words_at(key, counter, idx) >= threshold
    if relu:
        keep &= block > 0
    return np.where(keep, block * block.dtype.type(scale), block.dtype.type(0))
