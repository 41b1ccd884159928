"""What the dropout family's ops share: dispatch, argument checks, the words of one draw.

Every op of the family (:mod:`dropkit.gaussian`, :mod:`dropkit.alpha`,
:mod:`dropkit.structured`) is written once against the array API. Its random
words come from one draw of ``rng``: ``random_bits(draw(rng, x), n)``, with
the backend's ``draw`` where it has one (torch draws the key from its own
generator, JAX takes JAX keys traced under ``jax.jit``), so the words of a
``(key, counter)`` are the same on every backend.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from ._core import selected
from .backend import Capabilities
from .checks import check_stddev, check_stored, overflow_bound
from .normals import box_muller, normal_words, wide_float
from .primitive import device_of, times
from .random import RNGLike
from .thresholds import keep_threshold

__all__ = [
    "MAX_ABS_NORMAL",
    "check_axis",
    "check_source",
    "check_stddev",
    "check_stored",
    "device_of",
    "draw_words",
    "eval_output",
    "finite_or_refuse",
    "keep_mask",
    "normals",
    "resolve",
    "times",
]

#: The largest |z| Box-Muller can give: sqrt(-2 log(2**-33)) (u1 >= 2**-33).
MAX_ABS_NORMAL = math.sqrt(66.0 * math.log(2.0))


def resolve(x: Any, name: str, backend: str | None) -> tuple[Any, Capabilities]:
    """``(xp, backend)`` for the array ``x``: its namespace and the backend serving it."""
    caps = selected(x, name, backend)
    return caps.xp, caps


def draw_words(b: Capabilities, x: Any, rng: RNGLike, n: int) -> Any:
    """The ``n`` Philox words of one draw of ``rng``, on ``x``'s device (1-d)."""
    return b.random_bits(b.draw(rng, x), n, device=device_of(x))


def keep_mask(
    b: Capabilities, xp: Any, x: Any, rng: RNGLike, shape: tuple[int, ...], p: float
) -> Any:
    """The boolean keep-mask of ``shape`` for drop probability ``p`` (``dropout``'s mask)."""
    bits = draw_words(b, x, rng, math.prod(shape))
    limit = xp.asarray(keep_threshold(p), dtype=bits.dtype, device=device_of(bits))
    return xp.reshape(bits >= limit, shape)


def normals(b: Capabilities, xp: Any, x: Any, rng: RNGLike, shape: tuple[int, ...]) -> Any:
    """Standard normals of ``shape`` from one draw, in the namespace's widest float."""
    n = math.prod(shape)
    bits = draw_words(b, x, rng, normal_words(n))
    return xp.reshape(box_muller(xp, bits, n, wide_float(xp)), shape)


def eval_output(xp: Any, x: Any, p: float, training: bool, mode: str) -> Any:
    """The output when nothing is drawn: ``x`` itself, or ``x * (1 - p)`` in vanilla evaluation."""
    return x if (training or mode == "inverted") else times(xp, x, 1.0 - p)


def finite_or_refuse(value: float, dtype: Any, finfo: Any, what: str, fix: str) -> None:
    """Raise ValueError when ``value`` (a bound on the op's output factor) overflows ``dtype``."""
    if value < overflow_bound(finfo):
        return
    name = getattr(dtype, "name", None) or str(dtype)
    raise ValueError(
        f"{what} can reach {value:.6g}, not finite in {name} (largest finite value "
        f"{float(finfo.max):.6g}); {fix}"
    )


def check_source(stored: Any, rng: Any, op: str, stored_name: str) -> None:
    """Raise unless exactly one of the stored noise/mask and ``rng`` is given to a backward."""
    if (stored is None) == (rng is None):
        raise ValueError(
            f"{op}_backward needs exactly one of {stored_name}= (from the forward pass, "
            f"return_{stored_name}=True) or rng= (the seed, or a copy of the generator taken "
            f"before the forward pass, to regenerate it)"
        )


def check_axis(axis: Any, ndim: int, name: str, *, exclude: tuple[int, ...] = ()) -> int:
    """A non-negative axis of an ``ndim``-d input, refusing the axes in ``exclude``."""
    try:
        if isinstance(axis, bool):
            raise TypeError
        value = operator.index(axis)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {axis!r}") from None
    if not -ndim <= value < ndim or value % ndim in exclude:
        allowed = [a for a in range(ndim) if a not in exclude]
        raise ValueError(
            f"{name} must name an axis of a {ndim}-d input other than the batch axis "
            f"({allowed} or their negative forms), got {axis}"
        )
    return value % ndim
