"""What the dropout family's ops share: dispatch, argument checks, the words of one draw.

Every op of the family (:mod:`dropkit.gaussian`, :mod:`dropkit.alpha`,
:mod:`dropkit.structured`) is written once against the array API. Its random
words come from one draw of ``rng``: ``backend.random_bits(key, counter, n)``,
bit-identical on every backend, unless the backend supplies
``family_bits(rng, x, n)`` (the framework integrations do: torch draws the
key from its own generator and computes the words in a registered op that
``torch.compile`` keeps in its graph; JAX takes JAX keys, traced under
``jax.jit``). Either way the words of ``(key, counter)`` are the same.
"""

from __future__ import annotations

import math
import operator
from numbers import Real
from typing import Any

import array_api_compat

from ._arrays import _overflow_bound, check_floating, check_same_array_kind
from .normals import box_muller, normal_words, wide_float
from .ops import _dispatch, keep_threshold
from .random import RNGLike, as_generator

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


def resolve(x: Any, name: str, backend: str | None) -> tuple[Any, Any]:
    """``(xp, backend)`` for the array ``x``: its namespace and the backend serving it."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        from ._arrays import namespace_of

        namespace_of(x, name)  # raises, naming the argument
    xp, b, native = _dispatch(x, name, backend)
    if native is not None:
        check_floating(xp, x, name)
    return xp, b


def device_of(x: Any) -> Any:
    """The array's device (a plain attribute where it has one: compilers trace it)."""
    device = getattr(x, "device", None)
    return device if device is not None and not callable(device) else array_api_compat.device(x)


def draw_words(b: Any, x: Any, rng: RNGLike, n: int) -> Any:
    """The ``n`` Philox words of one draw of ``rng``, on ``x``'s device (1-d)."""
    hook = getattr(b, "family_bits", None)
    if hook is not None:
        return hook(rng, x, n)
    key, counter = as_generator(rng).draw()
    return b.random_bits(key, counter, n, device=device_of(x))


def keep_mask(b: Any, xp: Any, x: Any, rng: RNGLike, shape: tuple[int, ...], p: float) -> Any:
    """The boolean keep-mask of ``shape`` for drop probability ``p`` (``dropout``'s mask)."""
    bits = draw_words(b, x, rng, math.prod(shape))
    limit = xp.asarray(keep_threshold(p), dtype=bits.dtype, device=device_of(bits))
    return xp.reshape(bits >= limit, shape)


def normals(b: Any, xp: Any, x: Any, rng: RNGLike, shape: tuple[int, ...]) -> Any:
    """Standard normals of ``shape`` from one draw, in the namespace's widest float."""
    n = math.prod(shape)
    bits = draw_words(b, x, rng, normal_words(n))
    return xp.reshape(box_muller(xp, bits, n, wide_float(xp)), shape)


def times(xp: Any, z: Any, factor: float) -> Any:
    """``z * factor`` with the factor rounded to ``z``'s dtype first (as the ops do)."""
    if factor == 1.0:
        return z
    return z * xp.asarray(factor, dtype=z.dtype, device=device_of(z))


def eval_output(xp: Any, x: Any, p: float, training: bool, mode: str) -> Any:
    """The output when nothing is drawn: ``x`` itself, or ``x * (1 - p)`` in vanilla evaluation."""
    return x if (training or mode == "inverted") else times(xp, x, 1.0 - p)


def finite_or_refuse(value: float, dtype: Any, finfo: Any, what: str, fix: str) -> None:
    """Raise ValueError when ``value`` (a bound on the op's output factor) overflows ``dtype``."""
    if value < _overflow_bound(finfo):
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


def check_stored(
    xp: Any, grad: Any, stored: Any, shape: tuple[int, ...], name: str, boolean: bool
) -> None:
    """Check a stored mask (boolean) or noise (floating) against ``grad`` and its noise shape."""
    check_same_array_kind(xp, grad, stored, ("grad", name))
    if boolean and stored.dtype != xp.bool:
        raise TypeError(f"{name} must be a boolean array (True = kept), got dtype {stored.dtype}")
    if not boolean and stored.dtype != grad.dtype:
        raise TypeError(
            f"{name} must have grad's dtype {grad.dtype} (it is the forward's noise), "
            f"got {stored.dtype}"
        )
    if tuple(stored.shape) != tuple(shape):
        raise ValueError(
            f"{name} has shape {tuple(stored.shape)}, but the forward pass's {name} for grad of "
            f"shape {tuple(grad.shape)} has shape {tuple(shape)}"
        )


def check_stddev(stddev: Any) -> float:
    """A standard deviation: a finite real number >= 0.

    Examples
    --------
    >>> check_stddev(0.1)
    0.1
    >>> check_stddev(-1.0)
    Traceback (most recent call last):
    ...
    ValueError: stddev must be a finite number >= 0 (the noise's standard deviation), got -1.0
    """
    if isinstance(stddev, bool) or not isinstance(stddev, Real):
        raise TypeError(
            f"stddev must be a real number >= 0 (the noise's standard deviation), got "
            f"{stddev!r} ({type(stddev).__name__})"
        )
    value = float(stddev)
    if not (0.0 <= value < math.inf):
        raise ValueError(
            f"stddev must be a finite number >= 0 (the noise's standard deviation), got {stddev!r}"
        )
    return value


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
