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
of blocks and cutting changes nothing. :func:`philox4x32` is the block function
in JAX's ``uint32`` arithmetic, which wraps: the low word of each product is one
multiplication, where the reference (written for any array namespace, whose
overflow the standard leaves open) builds it from 16-bit limbs.

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
import numpy as np

from dropkit.philox import MASK32, PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1, ROUNDS, split64

__all__ = ["philox4x32", "random_bits", "size_class"]

_U16 = np.uint32(16)
_LOW16 = np.uint32(0xFFFF)


def _mulhilo(a: Any, m: int) -> tuple[Any, Any]:
    """High and low words of ``a * m`` for a ``uint32`` array ``a`` (exact, no 64-bit integers).

    The high word from 16-bit limbs, every partial sum below ``2**32``
    (Hacker's Delight, ``mulhu``); the low word is the wrapping product.
    """
    m_lo, m_hi = np.uint32(m & 0xFFFF), np.uint32(m >> 16)
    a_lo, a_hi = a & _LOW16, a >> _U16
    t = a_hi * m_lo + ((a_lo * m_lo) >> _U16)  # < (2**16 - 1)**2 + 2**16 < 2**32
    u = (t & _LOW16) + a_lo * m_hi  # < 2**16 + (2**16 - 1)**2 < 2**32
    return a_hi * m_hi + (t >> _U16) + (u >> _U16), a * np.uint32(m)


def philox4x32(counter: tuple[Any, Any, Any, Any], key: tuple[Any, Any]) -> tuple[Any, ...]:
    """Philox4x32-10 on ``uint32`` JAX arrays: :func:`dropkit.philox.philox4x32`'s words.

    The counter words broadcast against each other; the key words are 0-d
    (traced under ``jit``). Each round is 2 multiplications of a word by a
    constant, each 5 ``uint32`` multiplications here (the reference: 4 and more
    shifts and masks).

    Examples
    --------
    >>> from dropkit import philox
    >>> c = jnp.asarray([0, 1, 2**32 - 1], dtype=jnp.uint32)
    >>> k = jnp.uint32(7), jnp.uint32(2**32 - 1)
    >>> got = philox4x32((c, c, c, c), k)
    >>> want = philox.philox4x32(jnp, (c, c, c, c), k)
    >>> all(bool(jnp.all(g == w)) for g, w in zip(got, want))
    True
    """
    c0, c1, c2, c3 = (jnp.asarray(w, dtype=jnp.uint32) for w in counter)
    k0, k1 = (jnp.asarray(w, dtype=jnp.uint32) for w in key)
    for r in range(ROUNDS):
        if r:
            k0, k1 = k0 + np.uint32(PHILOX_W0), k1 + np.uint32(PHILOX_W1)
        hi0, lo0 = _mulhilo(c0, PHILOX_M0)
        hi1, lo1 = _mulhilo(c2, PHILOX_M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


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
    out = philox4x32((index, hi, c0, c1), (k0, k1))
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
