"""The portable generator: a key, a draw counter and a spawn counter.

A :class:`Generator` holds no arrays, only three plain integers. Each dropout
draw takes the pair ``(key, counter)`` and advances ``counter`` by one; the
random bits themselves come from Philox4x32-10 (:mod:`dropkit.philox`), so the
same state gives the same mask on every backend and for every dtype.

Child streams (one per layer, say) get keys *derived* through Philox from the
parent key and the child's index, in a domain of counters that draws never use.
Unlike ``seed + layer_index`` schemes, seed 0's second layer does not collide
with seed 1's first layer.

``rng=`` arguments follow SPEC 7: ``None`` (fresh entropy), an ``int`` seed, a
:class:`Generator`, or a ``numpy.random.Generator`` (a key is drawn from it).

Examples
--------
>>> g = Generator(42)
>>> g.draw()
(42, 0)
>>> g.draw()
(42, 1)
>>> saved = g.state
>>> g.draw() == Generator.from_state(saved).draw()
True
>>> a, b = Generator(0).spawn(2)
>>> a.key != b.key
True
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from numbers import Integral
from typing import Any

from .philox import philox4x32, split64

__all__ = ["Generator", "RNGLike", "as_generator"]

_MAX64 = 1 << 64
#: Draw counters stay below 2**63; the top bit marks the spawn domain.
_MAX_COUNTER = 1 << 63
_SPAWN_DOMAIN = 0x80000000

RNGLike = Any  # None | int | Generator | numpy.random.Generator

_FIELD_LIMITS = {"key": _MAX64, "counter": _MAX_COUNTER, "spawned": _MAX64}


def _check_u64(name: str, value: object, limit: int = _MAX64) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(
            f"{name} must be a non-negative integer below 2**{limit.bit_length() - 1}, "
            f"got {value!r} ({type(value).__name__})"
        )
    value = int(value)
    if not 0 <= value < limit:
        raise ValueError(
            f"{name} must be a non-negative integer below 2**{limit.bit_length() - 1}, got {value}"
        )
    return value


@dataclass
class Generator:
    """A counter-based random stream: ``(key, counter, spawned)``.

    Parameters
    ----------
    key : int
        The 64-bit key (the seed). Any integer in ``[0, 2**64)``.
    counter : int, optional
        Number of draws already made from this key, in ``[0, 2**63)``.
    spawned : int, optional
        Number of child streams already spawned, in ``[0, 2**64)``.

    Each field is checked whenever it is set (NumPy integers are stored as
    ``int``); an out-of-range or non-integer value raises and leaves the
    generator as it was.

    Examples
    --------
    >>> g = Generator(7, counter=5)
    >>> g.draw()
    (7, 5)
    >>> g.counter
    6
    """

    key: int
    counter: int = 0
    spawned: int = 0

    def __setattr__(self, name: str, value: Any) -> None:
        # Every assignment is validated (in __init__ and later): a key of 2**64 + 7
        # must not silently act as key 7 in the 64-bit Philox words.
        limit = _FIELD_LIMITS.get(name)
        if limit is not None and not (type(value) is int and 0 <= value < limit):
            value = _check_u64(name, value, limit)
        object.__setattr__(self, name, value)

    def draw(self) -> tuple[int, int]:
        """Return ``(key, counter)`` for one draw and advance the counter.

        Examples
        --------
        >>> Generator(3).draw()
        (3, 0)
        """
        if self.counter + 1 >= _MAX_COUNTER:
            raise OverflowError("this generator has made 2**63 draws; spawn a new one")
        pair = (self.key, self.counter)
        object.__setattr__(self, "counter", self.counter + 1)  # in range: checked above
        return pair

    def spawn(self, n: int) -> list[Generator]:
        """Derive ``n`` independent child generators.

        Child ``j`` has key Philox(parent key, counter ``(j_lo, j_hi, 0,
        2**31)``), words 0 and 1. Draw counters stay below ``2**63``, so the
        spawn domain never overlaps the parent's draws. Successive calls give
        new children.

        Examples
        --------
        >>> g = Generator(0)
        >>> first = g.spawn(1)[0]
        >>> second = g.spawn(1)[0]
        >>> first.key != second.key
        True
        """
        n = _check_u64("n", n)
        children = []
        key_words = split64(self.key)
        for j in range(self.spawned, self.spawned + n):
            j_lo, j_hi = split64(j)
            w0, w1, _, _ = philox4x32(None, (j_lo, j_hi, 0, _SPAWN_DOMAIN), key_words)
            children.append(Generator((w1 << 32) | w0))
        self.spawned += n
        return children

    @property
    def state(self) -> dict[str, int]:
        """The full state as plain integers (JSON-serialisable).

        Examples
        --------
        >>> Generator(5, 2).state
        {'key': 5, 'counter': 2, 'spawned': 0}
        """
        return {"key": self.key, "counter": self.counter, "spawned": self.spawned}

    @classmethod
    def from_state(cls, state: dict[str, int]) -> Generator:
        """Rebuild a generator from :attr:`state`.

        Examples
        --------
        >>> Generator.from_state({"key": 1, "counter": 4, "spawned": 0}).counter
        4
        """
        if not isinstance(state, dict) or "key" not in state:
            raise ValueError(
                f"a generator state is a dict with 'key', 'counter' and 'spawned', got {state!r}"
            )
        unknown = set(state) - {"key", "counter", "spawned"}
        if unknown:
            raise ValueError(f"unknown generator state fields {sorted(unknown)}")
        return cls(**state)

    def copy(self) -> Generator:
        """An independent copy with the same state (replays the same draws)."""
        return Generator(self.key, self.counter, self.spawned)


def as_generator(rng: RNGLike) -> Generator:
    """Turn an ``rng=`` argument (SPEC 7) into a :class:`Generator`.

    Parameters
    ----------
    rng : None, int, Generator or numpy.random.Generator
        ``None`` draws a fresh key from OS entropy; an ``int`` is the key; a
        :class:`Generator` is used (and advanced) as is; a NumPy generator
        gives a key drawn from it.

    Examples
    --------
    >>> as_generator(9)
    Generator(key=9, counter=0, spawned=0)
    >>> g = Generator(1)
    >>> as_generator(g) is g
    True
    """
    if isinstance(rng, Generator):
        return rng
    if rng is None:
        return Generator(secrets.randbits(64))
    if isinstance(rng, Integral) and not isinstance(rng, bool):
        return Generator(_check_u64("rng", rng))
    if hasattr(rng, "bit_generator") and hasattr(rng, "integers"):
        words = rng.integers(0, 1 << 32, size=2, dtype="uint64")
        return Generator((int(words[1]) << 32) | int(words[0]))
    raise TypeError(
        "rng must be None, an int seed in [0, 2**64), a dropkit.Generator or a "
        f"numpy.random.Generator, got {rng!r} ({type(rng).__name__})"
    )
