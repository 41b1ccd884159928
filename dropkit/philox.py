"""Philox4x32-10, written once in array-API integer operations.

This is the *reference* generator of dropkit: every backend's random bits must
equal what this module computes, bit for bit. It uses only ``uint32`` arrays and
the operations ``&``, ``|``, ``^``, ``<<``, ``>>``, ``+`` and ``*`` on values
that never overflow 32 bits, so it runs on any conforming namespace, including
ones without 64-bit integers (JAX without x64).

The 32x32->64 multiply
----------------------
Philox needs the high and low 32-bit words of ``a * M`` for 32-bit ``a`` and
``M``. Instead of widening to ``uint64`` (not available everywhere, and
wrapping overflow of unsigned integers is left unspecified by the standard)
both factors are split into 16-bit limbs; each partial product is below
``2**32`` and every partial sum is bounded so that nothing overflows. The
result is exact on every backend. Fast backends compute the same words with a
native 64-bit multiply.

Signed 64-bit variant
---------------------
Some namespaces lack unsigned arithmetic (PyTorch 2.13 on CPU has no ``>>``,
``+``, ``>=`` or even ``arange`` for uint32). ``random_bits(..., int64=True)``
computes the same words as ``int64`` values in ``[0, 2**32)``: the constant
factor is split into 16-bit limbs, so every product stays below ``2**49``.

Counter layout
--------------
A draw is identified by a 64-bit ``key`` and a 64-bit ``counter`` (the number
of draws made before it by the generator). The random word of global element
``i`` is word ``i % 4`` of the Philox block with counter
``(b_lo, b_hi, counter_lo, counter_hi)`` where ``b = i // 4``, and key
``(key_lo, key_hi)``. Hence a mask is a pure function of
``(key, counter, element index)``: chunks of an array computed separately
(``offset``) equal the corresponding slice of the whole.

Examples
--------
>>> import array_api_strict as xp
>>> words = philox4x32(xp, (0, 0, 0, 0), (0, 0))
>>> [hex(int(w)) for w in words]
['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
>>> random_bits(xp, key=0, counter=0, n=3)
Array([1713891541, 3781805453, 3159862348], dtype=array_api_strict.uint32)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import array_api_compat

__all__ = [
    "MASK32",
    "PHILOX_M0",
    "PHILOX_M1",
    "PHILOX_W0",
    "PHILOX_W1",
    "philox4x32",
    "random_bits",
    "random_bits_elementwise",
    "random_bits_words",
    "split64",
]

MASK32 = 0xFFFFFFFF
#: Philox4x32 round multipliers (Salmon et al., SC'11).
PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
#: Weyl key-schedule increments (golden ratio and sqrt(3) - 1).
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
ROUNDS = 10

Word = Any  # a uint32 array or a Python int in [0, 2**32)


def split64(value: int) -> tuple[int, int]:
    """Split a 64-bit unsigned integer into its (low, high) 32-bit words.

    Examples
    --------
    >>> split64(0x0123456789ABCDEF) == (0x89ABCDEF, 0x01234567)
    True
    """
    return value & MASK32, (value >> 32) & MASK32


def _mulhilo(a: Word, m: int) -> tuple[Word, Word]:
    """High and low words of ``a * m``, exactly, with 16-bit limbs."""
    if isinstance(a, int):
        product = a * m
        return product >> 32, product & MASK32
    m_lo, m_hi = m & 0xFFFF, m >> 16
    a_lo = a & 0xFFFF
    a_hi = a >> 16
    p00 = a_lo * m_lo
    p01 = a_lo * m_hi
    p10 = a_hi * m_lo
    p11 = a_hi * m_hi
    # Each term is below 2**16, so `mid` is below 3 * 2**16.
    mid = (p00 >> 16) + (p01 & 0xFFFF) + (p10 & 0xFFFF)
    lo = ((mid & 0xFFFF) << 16) | (p00 & 0xFFFF)
    # The exact high word is below 2**32, and so is every partial sum of it.
    hi = p11 + (p01 >> 16) + (p10 >> 16) + (mid >> 16)
    return hi, lo


def _xor3(xp: Any, a: Word, b: Word, k: Word) -> Word:
    """``a ^ b ^ k``, Python ints entering as arrays of the words' dtype.

    JAX without x64 reads a bare Python int above 2**31 as int32 and overflows,
    so the int operands are combined first and converted once.
    """
    ints = [w for w in (a, b, k) if isinstance(w, int)]
    arrays = [w for w in (a, b, k) if not isinstance(w, int)]
    if not arrays:
        return a ^ b ^ k
    out = arrays[0]
    for w in arrays[1:]:
        out = out ^ w
    if ints:
        folded = 0
        for w in ints:
            folded ^= w
        out = out ^ xp.asarray(folded, dtype=out.dtype, device=array_api_compat.device(out))
    return out


def _bump(xp: Any, k: Word, w: int, int64: bool) -> Word:
    """The key schedule's ``(k + w) mod 2**32`` for an int or an array word."""
    if isinstance(k, int):
        return (k + w) & MASK32
    total = k + xp.asarray(w, dtype=k.dtype, device=array_api_compat.device(k))
    return total & MASK32 if int64 else total  # uint32 arithmetic wraps by itself


def _mulhilo_int64(a: Word, m: int) -> tuple[Word, Word]:
    """High and low words of ``a * m`` for int64 ``a`` in [0, 2**32), exactly."""
    if isinstance(a, int):
        return _mulhilo(a, m)
    p_lo = a * (m & 0xFFFF)  # < 2**48
    p_hi = a * (m >> 16)  # < 2**48; a * m == p_hi * 2**16 + p_lo
    t = p_lo + ((p_hi & 0xFFFF) << 16)  # < 2**49
    return (p_hi >> 16) + (t >> 32), t & MASK32


def philox4x32(
    xp: Any,
    counter: Sequence[Word],
    key: Sequence[Word],
    rounds: int = ROUNDS,
    *,
    int64: bool = False,
) -> tuple[Word, Word, Word, Word]:
    """Philox4x32 block function on arrays (or Python ints) of uint32 words.

    Parameters
    ----------
    xp : namespace
        The array namespace of the array words (unused for all-int input).
    counter : sequence of 4 words
        The counter; each word is a uint32 array or a Python int. Arrays must
        broadcast against each other.
    key : sequence of 2 words
        The key words: Python ints, or 0-d arrays of the counter words' dtype
        (traced values under a compiler such as ``jax.jit``).
    rounds : int, optional
        Number of rounds; 10 is the standard Philox4x32-10.
    int64 : bool, optional
        The array words are int64 holding values in [0, 2**32) (for
        namespaces without unsigned arithmetic).

    Returns
    -------
    tuple of 4 words
        The output block, of the same kind as the input words.

    Examples
    --------
    >>> out = philox4x32(None, (0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF))
    >>> [hex(w) for w in out]
    ['0x408f276d', '0x41c83b0e', '0xa20bc7c6', '0x6d5451fd']
    """
    mulhilo = _mulhilo_int64 if int64 else _mulhilo
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(rounds):
        if r:
            k0 = _bump(xp, k0, PHILOX_W0, int64)
            k1 = _bump(xp, k1, PHILOX_W1, int64)
        hi0, lo0 = mulhilo(c0, PHILOX_M0)
        hi1, lo1 = mulhilo(c2, PHILOX_M1)
        c0, c1, c2, c3 = _xor3(xp, hi1, c1, k0), lo1, _xor3(xp, hi0, c3, k1), lo0
    return c0, c1, c2, c3


def random_bits(
    xp: Any,
    key: int,
    counter: int,
    n: int,
    *,
    offset: int = 0,
    device: Any = None,
    int64: bool = False,
) -> Any:
    """The reference random words of elements ``offset .. offset + n - 1``.

    Parameters
    ----------
    xp : namespace
        Array namespace to compute in.
    key, counter : int
        64-bit key and draw counter.
    n : int
        Number of 32-bit words wanted.
    offset : int, optional
        Global index of the first element (for chunked computation).
    device : optional
        Device of the result.
    int64 : bool, optional
        Compute and return the words as int64 values in [0, 2**32).

    Returns
    -------
    array
        A 1-d ``uint32`` (or ``int64``) array of length ``n``.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> whole = random_bits(xp, 7, 3, 10)
    >>> part = random_bits(xp, 7, 3, 4, offset=5)
    >>> bool(xp.all(whole[5:9] == part))
    True
    """
    if n == 0:
        return xp.empty((0,), dtype=xp.int64 if int64 else xp.uint32, device=device)
    key_words = split64(key)
    ctr_lo, ctr_hi = split64(counter)
    first, last = offset // 4, (offset + n - 1) // 4
    if int64:
        blocks = xp.arange(first, last + 1, dtype=xp.int64, device=device)
        counter_words = (blocks & MASK32, blocks >> 32, ctr_lo, ctr_hi)
        words = philox4x32(xp, counter_words, key_words, int64=True)
        flat = xp.reshape(xp.stack(words, axis=-1), (-1,))
        return flat[offset - 4 * first : offset - 4 * first + n]
    pieces = []
    block = first
    while block <= last:
        # Blocks whose index shares the same high word form one segment.
        hi = block >> 32
        stop = min(last + 1, (hi + 1) << 32)
        start = xp.asarray(block & MASK32, dtype=xp.uint32, device=device)
        lo = xp.arange(stop - block, dtype=xp.uint32, device=device) + start
        words = philox4x32(xp, (lo, hi, ctr_lo, ctr_hi), key_words)
        pieces.append(xp.reshape(xp.stack(words, axis=-1), (-1,)))
        block = stop
    flat = pieces[0] if len(pieces) == 1 else xp.concat(pieces)
    start = offset - 4 * first
    return flat[start : start + n]


def random_bits_words(
    xp: Any, key_words: Sequence[Any], counter_words: Sequence[Any], n: int
) -> Any:
    """The reference words of elements ``0 .. n - 1`` for a draw given as arrays.

    The same words as :func:`random_bits` for ``key = k0 + 2**32 k1`` and
    ``counter = c0 + 2**32 c1``, but the four words are 0-d ``uint32`` arrays
    (on the result's device), so a tracing compiler (``jax.jit``) can take the
    key as an argument and compile once for every key. ``n`` must be below
    ``2**34`` (the block index stays in one 32-bit word).

    Examples
    --------
    >>> import numpy as np
    >>> import array_api_compat.numpy as xp
    >>> words = [np.uint32(w) for w in (7, 0, 3, 0)]
    >>> got = random_bits_words(xp, words[:2], words[2:], 5)
    >>> bool(np.all(got == random_bits(xp, 7, 3, 5)))
    True
    """
    k0, k1 = key_words
    c0, c1 = counter_words
    device = array_api_compat.device(k0)
    if n == 0:
        return xp.empty((0,), dtype=xp.uint32, device=device)
    if n > 4 << 32:
        raise ValueError(f"random_bits_words draws at most 2**34 words, got n={n}")
    blocks = xp.arange((n + 3) // 4, dtype=xp.uint32, device=device)
    zero = xp.zeros((), dtype=xp.uint32, device=device)
    words = philox4x32(xp, (blocks, zero, c0, c1), (k0, k1))
    full = [xp.broadcast_to(w, blocks.shape) for w in words]
    return xp.reshape(xp.stack(full, axis=-1), (-1,))[:n]


def _symbolic_row(shape: tuple[Any, ...]) -> int:
    """A row length for a shape with symbolic dimensions: a power of two in [4, 2**30].

    The largest power of two not above the product of the known dimensions, so
    that the rows computed exceed the array by less than the array itself (and
    by nothing when the known part is a power of two).
    """
    known = math.prod(d for d in shape if isinstance(d, int))
    return min(max(1 << (max(known, 1).bit_length() - 1), 4), 1 << 30)


def random_bits_elementwise(
    xp: Any,
    key_words: Sequence[Any],
    counter_words: Sequence[Any],
    shape: tuple[int, ...],
    *,
    row: int | None = None,
) -> Any:
    """The reference words of an array of ``shape``, each element from its own block.

    The same words as :func:`random_bits_words` (element ``i`` of the C-order
    flattening gets word ``i % 4`` of block ``i // 4``), computed as one
    elementwise expression of the element index: every element evaluates its
    block and keeps its word. That is four times the arithmetic of
    :func:`random_bits_words`, but it has no interleaving of the four output
    words, which XLA on CPU turns into a transpose about 80 times slower than the
    Philox itself; a fusing compiler (``jax.jit``) makes the whole mask one
    loop. Meant for such compilers; eager namespaces should use
    :func:`random_bits_words`.

    Up to ``2**32`` elements the index is one ``uint32``; beyond, the elements
    are laid out in rows of ``row`` (a power of two, default ``2**30``) and
    the block index takes two words.

    Examples
    --------
    >>> import numpy as np
    >>> import array_api_compat.numpy as xp
    >>> words = [np.uint32(w) for w in (7, 0, 3, 0)]
    >>> got = random_bits_elementwise(xp, words[:2], words[2:], (2, 3))
    >>> bool(np.all(got == np.reshape(random_bits(xp, 7, 3, 6), (2, 3))))
    True
    >>> rows = random_bits_elementwise(xp, words[:2], words[2:], (2, 3), row=4)
    >>> bool(np.all(rows == got))
    True
    """
    k0, k1 = key_words
    c0, c1 = counter_words
    device = array_api_compat.device(k0)
    n = math.prod(shape)
    static = isinstance(n, int)  # False for symbolic dimensions (jax.export's shape polymorphism)
    if static and n == 0:
        return xp.zeros(shape, dtype=xp.uint32, device=device)
    u32 = {v: xp.asarray(v, dtype=xp.uint32, device=device) for v in (2, 3)}
    if row is None and not static:  # rows: the size of a symbolic array is not known here
        row = _symbolic_row(shape)
    if row is None and n <= 1 << 32:
        index = xp.reshape(xp.arange(n, dtype=xp.uint32, device=device), shape)
        block_lo, block_hi, lane = index >> u32[2], 0, index & u32[3]
    else:
        row = 1 << 30 if row is None else row
        if row < 4 or row & (row - 1) or row > 1 << 32:
            raise ValueError(f"row must be a power of two in [4, 2**32], got {row}")
        rows = -(-n // row)
        if static and rows > 1 << 32:
            raise ValueError(f"random_bits_elementwise draws fewer than 2**62 words, got {shape}")
        shift = (row // 4).bit_length() - 1  # block = r * 2**shift + c // 4
        r = xp.reshape(xp.arange(rows, dtype=xp.uint32, device=device), (rows, 1))
        c = xp.reshape(xp.arange(row, dtype=xp.uint32, device=device), (1, row))
        up, down = (xp.asarray(v, dtype=xp.uint32, device=device) for v in (shift, 32 - shift))
        block_hi = r >> down if shift else 0  # the bits of r shifted past 32
        block_lo, lane = (r << up) | (c >> u32[2]), c & u32[3]
    w0, w1, w2, w3 = philox4x32(xp, (block_lo, block_hi, c0, c1), (k0, k1))
    out = xp.where(lane == 0, w0, xp.where(lane == 1, w1, xp.where(lane == 2, w2, w3)))
    if out.shape != shape:
        out = xp.reshape(xp.reshape(out, (-1,))[:n], shape)
    return out
