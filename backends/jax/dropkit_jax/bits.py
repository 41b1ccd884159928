"""The backend's random words, compiled once per size class.

Eagerly, JAX dispatches and compiles every array operation of the reference
Philox on its own, for every new length: about 350 small compilations, half a
second, per length drawn. Here the whole block function is one jitted
computation whose length is rounded up to a size class (a power of two up to
1024 blocks, then within 1/16), and the words wanted are cut out of it by a
second, trivial one. Both are compiled once per size class and length; the
key, counter and offset are arguments, so new draws compile nothing.

The words are those of :func:`dropkit.philox.random_bits` bit for bit: the
words of an element depend only on its global index, so computing a longer run
of blocks and cutting changes nothing.

Examples
--------
>>> import numpy as np
>>> from dropkit import philox
>>> got = random_bits(7, 3, 10, offset=5)
>>> bool(np.array_equal(np.asarray(got), philox.random_bits(np, 7, 3, 10, offset=5)))
True
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from dropkit.philox import MASK32, philox4x32, split64

__all__ = ["random_bits", "size_class"]


def size_class(blocks: int) -> int:
    """The number of blocks computed for ``blocks`` wanted (at most 1/16 more above 1024).

    Examples
    --------
    >>> [size_class(n) for n in (1, 3, 1024, 1025, 5000)]
    [1, 4, 1024, 1088, 5120]
    """
    if blocks <= 1024:
        return 1 << max(0, blocks - 1).bit_length()
    step = 1 << (blocks.bit_length() - 5)
    return -(-blocks // step) * step


@partial(jax.jit, static_argnums=(1,))
def _blocks(words: Any, count: int) -> Any:
    """The 4 * ``count`` words of blocks ``first ..`` for ``words = (k0, k1, c0, c1, lo, hi)``."""
    k0, k1, c0, c1, lo, hi = (words[i] for i in range(6))
    index = jnp.arange(count, dtype=jnp.uint32) + lo
    out = philox4x32(jnp, (index, hi, c0, c1), (k0, k1))
    return jnp.reshape(jnp.stack([jnp.broadcast_to(w, index.shape) for w in out], axis=-1), (-1,))


@partial(jax.jit, static_argnums=(2,))
def _cut(flat: Any, start: Any, n: int) -> Any:
    return jax.lax.dynamic_slice(flat, (start,), (n,))


def random_bits(key: int, counter: int, n: int, *, offset: int = 0) -> Any | None:
    """The words of elements ``offset .. offset + n - 1``, or None where this path does not apply.

    None for ``n = 0`` and for a run of blocks that crosses a multiple of
    ``2**32`` blocks (the caller then uses the reference).
    """
    if n <= 0:
        return None
    first, last = offset // 4, (offset + n - 1) // 4
    count = size_class(last - first + 1)
    lo = first & MASK32
    if lo + count > 1 << 32:
        return None
    k0, k1 = split64(key)
    c0, c1 = split64(counter)
    words = jnp.asarray([k0, k1, c0, c1, lo, (first >> 32) & MASK32], dtype=jnp.uint32)
    return _cut(_blocks(words, count), jnp.int32(offset - 4 * first), n)
