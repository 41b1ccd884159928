"""From an ``rng=`` argument to the four ``uint32`` words of one dropkit draw, in JAX.

A dropkit draw is ``(key, counter)``: a 64-bit key and a 64-bit counter. In JAX
it travels as four 0-d ``uint32`` arrays ``(key_lo, key_hi, counter_lo,
counter_hi)``, which may be traced: under ``jax.jit`` one compilation serves
every key (:func:`dropkit.philox.random_bits_words`).

The mapping from a JAX key: a typed key (``jax.random.key(seed)``) or a raw
``uint32[2]`` key (``jax.random.PRNGKey(seed)``) holds two words ``(d0, d1)``
(``jax.random.key_data``); its dropkit draw is ::

    key = d1 + 2**32 * d0,  counter = 0

so ``jax.random.PRNGKey(s)`` for ``s < 2**32`` (data ``[0, s]``) is dropkit key
``s``, and the mask of ``rng=jax.random.PRNGKey(7)`` equals the NumPy
backend's for ``rng=7``. Split or fold JAX keys as usual to get new masks.
Only the default ``threefry2x32`` implementation (two words) is accepted.

dropkit's own stream, traced: :class:`Draw` holds a key and a counter as
``uint32`` words (a pytree, so it can be a ``jit`` argument or a ``scan``
carry); ``draw.next()`` advances it the way :meth:`dropkit.Generator.draw`
does, so a loop over ``Draw.of(s)``, ``.next()``, ... gives the masks of
``dropkit.Generator(s)``.

An ``int`` seed, a :class:`dropkit.Generator` or a ``numpy.random.Generator``
give their draw as Python integers (eagerly: a Python-side generator cannot
advance inside a trace, see :func:`seed_words`).

Examples
--------
>>> import jax
>>> [int(w) for w in seed_words(jax.random.PRNGKey(7))]
[7, 0, 0, 0]
>>> [int(w) for w in seed_words(jax.random.key(7))]
[7, 0, 0, 0]
>>> [int(w) for w in seed_words(2**32 + 5)]
[5, 1, 0, 0]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dropkit import Generator, as_generator
from dropkit.philox import split64

__all__ = ["Draw", "JaxRNGLike", "is_traced", "seed_words"]

JaxRNGLike = (
    Any  # a JAX key (typed or uint32[2]) | Draw | int | dropkit.Generator | numpy Generator
)


class Draw(NamedTuple):
    """One dropkit draw as ``uint32`` words: ``key = (lo, hi)``, ``counter = (lo, hi)``.

    A pytree of two ``uint32[2]`` arrays, so it may be traced (a ``jit``
    argument, a ``scan`` carry, ``vmap``-ed). Counters must stay below
    ``2**63`` (the range :class:`dropkit.Generator` draws from); :meth:`of`
    checks that, :meth:`next` cannot under a trace.

    Examples
    --------
    >>> import jax, numpy as np, dropkit
    >>> d = Draw.of(7, counter=2)
    >>> [int(w) for w in seed_words(d)]
    [7, 0, 2, 0]
    >>> [int(w) for w in d.next().counter]
    [3, 0]
    >>> g = dropkit.Generator(7, counter=2)
    >>> y = dropkit.dropout(jax.numpy.ones(5), 0.5, rng=d)
    >>> bool(np.all(np.asarray(y) == dropkit.dropout(np.ones(5, np.float32), 0.5, rng=g)))
    True
    """

    key: Any
    counter: Any

    @classmethod
    def of(cls, key: int, counter: int = 0) -> Draw:
        """The draw ``(key, counter)`` of Python ints, checked as by :class:`dropkit.Generator`."""
        key, counter = Generator(key, counter).draw()  # refuses the last counter too
        return cls(
            jnp.asarray(split64(key), dtype=jnp.uint32),
            jnp.asarray(split64(counter), dtype=jnp.uint32),
        )

    def next(self) -> Draw:
        """The following draw: the counter plus one, carried into the high word (traceable)."""
        lo = self.counter[0] + jnp.uint32(1)
        hi = self.counter[1] + (lo == 0).astype(jnp.uint32)
        return Draw(self.key, jnp.stack([lo, hi]))


def _draw_words(draw: Draw) -> tuple[Any, Any, Any, Any]:
    for name in ("key", "counter"):
        value = getattr(draw, name)
        if getattr(value, "dtype", None) != jnp.uint32 or tuple(value.shape) != (2,):
            raise TypeError(
                f"Draw.{name} must be uint32 of shape (2,) (low word, high word), got "
                f"{getattr(value, 'dtype', type(value).__name__)} of shape "
                f"{tuple(getattr(value, 'shape', ()))}; build draws with Draw.of(key, counter)"
            )
    return draw.key[0], draw.key[1], draw.counter[0], draw.counter[1]


_TYPES = (
    "a JAX key (jax.random.key or PRNGKey), a dropkit_jax.keys.Draw, an int seed, "
    "a dropkit.Generator"
)


def is_traced(*values: Any) -> bool:
    """Whether any value is a JAX tracer (inside ``jit``, ``grad``, ``vmap``, ``scan``)."""
    return any(isinstance(v, jax.core.Tracer) for v in values)


def _staging() -> bool:
    """Whether a staging trace (``jit``, ``scan``, ``eval_shape``...) is active.

    Inside one, even an operation on constants gives a tracer; ``grad`` and
    ``vmap`` run eagerly and do not count (their Python runs once per call).
    """
    return isinstance(jnp.zeros((), dtype=jnp.uint32), jax.core.Tracer)


def _from_key_data(data: Any) -> tuple[Any, Any, Any, Any]:
    zero = jnp.zeros((), dtype=jnp.uint32)
    return data[1], data[0], zero, zero


def seed_words(rng: JaxRNGLike) -> tuple[Any, Any, Any, Any]:
    """The words ``(key_lo, key_hi, counter_lo, counter_hi)`` of one draw from ``rng``.

    Parameters
    ----------
    rng : JAX key, Draw, int, dropkit.Generator or numpy.random.Generator
        See the module docs for the mapping. A Python-side generator is
        refused inside a staging trace (``jit``, ``scan``), which would freeze
        its state; eager transforms (``grad``, ``vmap``) run it once per call.

    Raises
    ------
    TypeError
        A key of the wrong dtype or shape, a key of another PRNG
        implementation, ``None``, or a generator inside a trace.
    """
    if isinstance(rng, Draw):
        return _draw_words(rng)
    if isinstance(rng, jax.Array) or hasattr(rng, "dtype"):
        dtype = rng.dtype
        if jnp.issubdtype(dtype, jax.dtypes.prng_key):
            if rng.shape != ():
                raise TypeError(
                    f"rng must be a single JAX key, got a key array of shape {rng.shape}; "
                    "split it and pass one key per call (or vmap over the keys)"
                )
            data = jax.random.key_data(rng)
            if data.shape != (2,) or data.dtype != jnp.uint32:
                raise TypeError(
                    f"rng is a JAX key of implementation {jax.random.key_impl(rng)}, whose "
                    f"data is {data.dtype}{list(data.shape)}; dropkit maps the default "
                    "threefry2x32 keys (uint32[2]) to its draws: use jax.random.key(seed)"
                )
            return _from_key_data(data)
        if tuple(rng.shape) == () and jnp.issubdtype(dtype, jnp.integer):
            if is_traced(rng):
                raise TypeError(
                    "rng is a traced integer; a seed cannot enter a trace as an array: pass "
                    "rng=jax.random.key(seed) (for seeds below 2**32 the same mask as "
                    "rng=seed), or close over the seed as a Python int"
                )
            return seed_words(int(rng))  # a concrete NumPy/JAX integer
        if tuple(rng.shape) != (2,) or dtype != jnp.uint32:
            shape = tuple(rng.shape)
            hint = ""
            if dtype == jnp.uint32 and len(shape) == 2 and shape[1] == 2:
                hint = f": that is a batch of {shape[0]} raw keys; pass one per call (or vmap)"
            elif dtype == jnp.uint32 and shape == (4,):
                hint = (
                    ": a uint32[4] array is ambiguous (a raw key of another PRNG "
                    "implementation, or dropkit's key and counter words); use a typed key "
                    "(jax.random.key) or dropkit_jax.keys.Draw(key, counter)"
                )
            raise TypeError(
                f"rng as an array must be a raw JAX key, uint32 of shape (2,) "
                f"(jax.random.PRNGKey), got {dtype} of shape {shape}{hint}"
            )
        return _from_key_data(jnp.asarray(rng))
    if rng is None:
        raise TypeError(f"rng is required on JAX arrays ({_TYPES}): JAX has no global random state")
    if not isinstance(rng, int) and _staging():
        raise TypeError(
            f"rng={type(rng).__name__} is Python state that a JAX trace would freeze (the "
            "same mask on every call); pass a JAX key as an argument of the traced function "
            "(or an int seed, for a fixed mask)"
        )
    if isinstance(rng, Generator | int) or hasattr(rng, "bit_generator"):
        key, counter = as_generator(rng).draw()
        k0, k1, c0, c1 = (
            jnp.asarray(w, dtype=jnp.uint32) for w in (*split64(key), *split64(counter))
        )
        return k0, k1, c0, c1
    raise TypeError(f"rng must be {_TYPES} or a numpy.random.Generator, got {rng!r}")
