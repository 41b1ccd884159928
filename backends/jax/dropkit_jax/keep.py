"""The keep-mask of a draw, each Philox block computed once, as 1-bit packed words.

Philox gives four words per block, one per element. Written element-wise
(:func:`dropkit.philox.random_bits_elementwise`), every element computes its
whole block: four times the work. Computing each block once and interleaving
its four words is what XLA's fusion undoes (it copies the block function into
the interleave's loop, once per element) or runs slowly (a transpose). Here the
block function feeds a reduction instead, which XLA does not copy: blocks are
laid out ``(m, 8)``, each row of 8 blocks (32 elements) gives the 32 keep bits
of one ``uint32`` word (element ``32 j + i`` is bit ``i`` of word ``j``), and
the mask is unpacked from those words by cheap shifts fused into its consumer.
On the 2-core CPU VM this halves dropout's time at (256, 512) (see the README's
JAX table), and the packed words, ``n / 8`` bytes, are what the backward keeps.

The bits are those of :func:`dropkit.philox.random_bits_elementwise` compared
with the threshold: the words beyond the last element are computed and unused.

Examples
--------
>>> import numpy as np
>>> from dropkit import philox
>>> words = jnp.asarray([7, 0, 3, 0], dtype=jnp.uint32)
>>> keep = unpack(packed_keep(words, 40, jnp.uint32(2**31)), (5, 8))
>>> want = philox.random_bits(np, 7, 3, 40).reshape(5, 8) >= 2**31
>>> bool(np.array_equal(np.asarray(keep), want))
True
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .bits import philox4x32

__all__ = ["KEEP_PACKED_MAX", "PACKED_MAX", "keeps_packed", "packed_keep", "packs", "unpack"]

#: The most elements packed: ``2**30`` blocks, so a block index is one ``uint32``.
PACKED_MAX = 1 << 32
#: Up to this many elements the backward keeps the packed mask (``n / 8`` bytes,
#: 512 KiB here); above, it keeps the 16-byte draw and regenerates the mask.
KEEP_PACKED_MAX = 1 << 22


def _size(shape: tuple[Any, ...]) -> int | None:
    n = math.prod(shape)
    return n if isinstance(n, int) else None  # None: symbolic (jax.export)


def packs(shape: tuple[Any, ...]) -> bool:
    """Whether the mask of ``shape`` is computed packed (a known size, 1 to ``2**32``).

    Examples
    --------
    >>> packs((256, 512)), packs((0, 3)), packs((2**17, 2**16))
    (True, False, False)
    """
    n = _size(shape)
    return n is not None and 0 < n <= PACKED_MAX


def keeps_packed(shape: tuple[Any, ...]) -> bool:
    """Whether the backward of a mask of ``shape`` keeps it packed instead of regenerating it.

    Examples
    --------
    >>> keeps_packed((1024, 512)), keeps_packed((4096, 4096))
    (True, False)
    """
    n = _size(shape)
    return packs(shape) and n is not None and n <= KEEP_PACKED_MAX


@partial(jax.jit, static_argnums=(1,))
def packed_keep(words: Any, n: int, threshold: Any) -> Any:
    """The keep bits (``word >= threshold``) of elements ``0 .. n - 1``: ``uint32[ceil(n / 32)]``.

    ``words`` is the draw's ``uint32[4]`` (key low, high, counter low, high),
    ``threshold`` a ``uint32`` scalar; both may be traced. Bit ``i`` of word
    ``j`` is element ``32 j + i``; bits past ``n`` are those of the next elements
    of the stream.
    """
    rows = -(-n // 32)
    block = jnp.reshape(jnp.arange(8 * rows, dtype=jnp.uint32), (rows, 8))
    zero = jnp.zeros((), dtype=jnp.uint32)
    out = philox4x32((block, zero, words[2], words[3]), (words[0], words[1]))
    nibble = sum((w >= threshold).astype(jnp.uint32) << np.uint32(i) for i, w in enumerate(out))
    at = jnp.arange(0, 32, 4, dtype=jnp.uint32)  # block b of a row: bits 4b .. 4b + 3
    return jnp.sum(nibble << at, axis=1, dtype=jnp.uint32)  # disjoint bits: the sum is an or


@partial(jax.jit, static_argnums=(1,))
def unpack(packed: Any, shape: tuple[int, ...]) -> Any:
    """The boolean mask of ``shape`` from :func:`packed_keep`'s words."""
    n = math.prod(shape)
    bits = (packed[:, None] >> jnp.arange(32, dtype=jnp.uint32)) & np.uint32(1)
    flat = jnp.reshape(bits, (-1,))
    if flat.shape[0] != n:
        flat = flat[:n]
    return jnp.reshape(flat, shape).astype(bool)
