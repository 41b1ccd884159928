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

import math
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


def _contiguous_start(shape: tuple[int, ...], location: list[tuple[int, int]]) -> int | None:
    """The first global index if the chunk is one contiguous run in C order, else None.

    In C order a chunk is contiguous iff, after its first axis of extent other
    than 1, every axis is whole.
    """
    extents = [b - a for a, b in location]
    first = next((i for i, e in enumerate(extents) if e != 1), len(shape))
    if any(extents[i] != shape[i] for i in range(first + 1, len(shape))):
        return None
    start, stride = 0, 1
    for axis in reversed(range(len(shape))):
        start += location[axis][0] * stride
        stride *= shape[axis]
    return start


def _chunk_words_shaped(
    key: int, counter: int, shape: tuple[int, ...], location: list[tuple[int, int]]
) -> np.ndarray:
    """The words of a chunk's elements, shaped like the chunk."""
    chunk_shape = tuple(b - a for a, b in location)
    start = _contiguous_start(shape, location)
    if start is not None:
        from dropkit import get_backend

        fast = get_backend("numpy").random_bits(
            (key, counter), math.prod(chunk_shape), offset=start
        )
        return np.asarray(fast).reshape(chunk_shape)
    return words_at(key, counter, global_indices(shape, location))


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
    if block_info is None:
        raise TypeError("chunk_dropout is a map_blocks function: dask passes it block_info")
    info = block_info[0]
    keep = _chunk_words_shaped(key, counter, tuple(info["shape"]), list(info["array-location"]))
    keep = keep >= threshold
    if relu:
        keep &= ~(block <= 0)  # NaN is kept, as torch.relu keeps it
    return np.where(keep, block * block.dtype.type(scale), block.dtype.type(0))
