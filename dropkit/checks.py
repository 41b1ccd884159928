"""Argument checks shared by the ops and the backends: every message names the argument and value.

This module is public: a backend or framework integration validates its own
arguments with the same functions and messages as the core (the core's other
modules are private).

Examples
--------
>>> check_p(0.25)
0.25
>>> check_flag(True, "training")
True
"""

from __future__ import annotations

import math
import operator
from numbers import Integral, Real
from typing import Any, Literal, TypeAlias

import array_api_compat
import numpy as np

__all__ = [
    "ReturnMask",
    "as_integer",
    "check_flag",
    "check_floating",
    "check_mode",
    "check_noise_shape",
    "check_p",
    "check_return_mask",
    "check_same_array_kind",
    "check_scale",
    "check_shape",
    "check_stddev",
    "check_stored",
    "finfo",
    "is_real_floating",
    "namespace_of",
    "overflow_bound",
    "to_numpy",
]

MODES = ("inverted", "vanilla")

#: What ``return_mask`` accepts: False (no mask), True (the boolean mask) or
#: ``"packed"`` (a 1-bit :class:`~dropkit.packed.PackedMask`).
ReturnMask: TypeAlias = bool | Literal["packed"]


def _refuse_numpy_subclass(x: Any, name: str) -> None:
    """Refuse NumPy subclasses whose semantics differ from an array's: never guessed.

    ``numpy.matrix`` (``*`` is a matrix product, results stay 2-d) and
    ``numpy.ma.MaskedArray`` (the masked values would be used as data).
    """
    if isinstance(x, np.matrix):
        raise TypeError(
            f"{name} is a numpy.matrix, whose operators differ from an array's; convert it "
            f"first with np.asarray({name})"
        )
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a numpy.ma.MaskedArray, whose masked values would be used as data; "
            f"convert it first with np.asarray({name}.filled(0)) (or np.asarray({name}))"
        )


def namespace_of(x: Any, name: str) -> Any:
    """The array-API namespace of ``x``, or a TypeError naming the argument."""
    if type(x) is not np.ndarray and isinstance(x, np.ndarray):
        _refuse_numpy_subclass(x, name)
    try:
        return array_api_compat.array_namespace(x)
    except TypeError as exc:
        raise TypeError(
            f"{name} must be an array of a library with an array API namespace (NumPy, CuPy, "
            f"torch, ...), got {type(x).__module__}.{type(x).__qualname__}"
        ) from exc


def _extension_finfo(dtype: Any) -> Any:
    """``ml_dtypes.finfo`` of a floating dtype of ml_dtypes (bfloat16, float8...), else None.

    NumPy has such dtypes only as extensions: ``isdtype`` and ``finfo`` refuse
    them (NumPy 2.5), while their arithmetic works.
    """
    module = getattr(getattr(dtype, "type", None), "__module__", None) or ""
    if module.partition(".")[0] != "ml_dtypes":
        return None
    import ml_dtypes

    try:
        return ml_dtypes.finfo(dtype)
    except (TypeError, ValueError, KeyError):  # an integer type of ml_dtypes (int4 ...)
        return None


def is_real_floating(xp: Any, dtype: Any) -> bool:
    """Whether ``dtype`` is a real floating dtype, ml_dtypes' (bfloat16 on NumPy) included.

    Examples
    --------
    >>> import ml_dtypes
    >>> import array_api_compat.numpy as xp
    >>> is_real_floating(xp, xp.float16), is_real_floating(xp, xp.int8)
    (True, False)
    >>> is_real_floating(xp, np.dtype(ml_dtypes.bfloat16))
    True
    """
    try:
        return bool(xp.isdtype(dtype, "real floating"))
    except TypeError:
        return _extension_finfo(dtype) is not None


def finfo(xp: Any, dtype: Any) -> Any:
    """``xp.finfo(dtype)``, or ml_dtypes' for its floating dtypes (which NumPy's refuses).

    Examples
    --------
    >>> import ml_dtypes
    >>> import array_api_compat.numpy as xp
    >>> float(finfo(xp, np.dtype(ml_dtypes.bfloat16)).eps)
    0.0078125
    """
    try:
        return xp.finfo(dtype)
    except (TypeError, AttributeError, ValueError):
        info = _extension_finfo(dtype)
        if info is None:
            raise
        return info


def check_floating(xp: Any, x: Any, name: str) -> None:
    """Raise TypeError unless ``x`` has a real floating dtype."""
    if not is_real_floating(xp, x.dtype):
        raise TypeError(
            f"{name} must have a real floating dtype (float16/32/64, bfloat16), got dtype "
            f"{x.dtype}; convert it first, e.g. xp.astype({name}, xp.float32)"
        )


def check_p(p: Any) -> float:
    """Validate a drop probability and return it as a float.

    Examples
    --------
    >>> check_p(0.25)
    0.25
    >>> check_p(1.5)
    Traceback (most recent call last):
    ...
    ValueError: p is the probability of DROPPING a unit and must be in [0, 1], got 1.5
    """
    if not isinstance(p, Real | np.ndarray) and hasattr(p, "shape") and hasattr(p, "dtype"):
        p = _scalar_of(p)  # a 0-d tensor (torch) or array (JAX); NumPy arrays are refused
    if isinstance(p, bool) or not isinstance(p, Real):
        raise TypeError(
            f"p must be a real number in [0, 1] (the drop probability), got {p!r} "
            f"({type(p).__name__})"
        )
    value = float(p)
    # (not math.isnan: compilers trace comparisons on symbolic floats; NaN fails both)
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"p is the probability of DROPPING a unit and must be in [0, 1], got {p!r}"
        )
    return value


def _scalar_of(p: Any) -> float:
    """A drop probability given as a 0-d real array (a tensor): its value, read once."""
    kind = "tensor" if type(p).__name__ in ("Tensor", "Parameter") else "array"
    dtype = str(p.dtype)
    if tuple(p.shape) != () or "bool" in dtype or "complex" in dtype:
        raise TypeError(
            f"p must be a real number in [0, 1] or a 0-d real tensor (array), got a {kind} of "
            f"shape {tuple(p.shape)} and dtype {p.dtype}"
        )
    try:
        detach = getattr(p, "detach", None)
        return float(detach() if callable(detach) else p)
    except Exception as exc:  # a traced value (jax.jit): no concrete number to read
        raise TypeError(
            "p is a traced value; dropkit needs p as a static Python float (its threshold "
            "is part of the compiled computation): mark it static, e.g. "
            "jax.jit(f, static_argnames='p'), or close over it"
        ) from exc


def as_integer(value: Any) -> int:
    """``value`` as a Python int if it is an integer (NumPy ones too), never a boolean.

    Raises a bare ``TypeError`` otherwise: callers word the message.

    Examples
    --------
    >>> import numpy as np
    >>> as_integer(np.int64(3))
    3
    >>> as_integer(True)
    Traceback (most recent call last):
    ...
    TypeError
    """
    if isinstance(value, bool | np.bool_):
        raise TypeError
    return operator.index(value)


def check_flag(value: Any, name: str) -> bool:
    """Validate a boolean argument: a ``bool`` or a NumPy boolean, nothing merely truthy.

    Examples
    --------
    >>> check_flag(True, "training")
    True
    >>> check_flag("no", "training")
    Traceback (most recent call last):
    ...
    TypeError: training must be a bool (True or False), got 'no' (str)
    """
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if "Tracer" in type(value).__name__:  # inside jax.jit: its value is not known here
        raise TypeError(
            f"{name} is a traced value; pass it as a static Python bool (e.g. "
            f"jax.jit(f, static_argnames='{name}'))"
        )
    raise TypeError(
        f"{name} must be a bool (True or False), got {value!r} ({type(value).__name__})"
    )


def check_return_mask(value: Any) -> ReturnMask:
    """Validate ``return_mask``: False, True (or NumPy booleans) or ``"packed"``.

    Examples
    --------
    >>> check_return_mask("packed")
    'packed'
    >>> check_return_mask(1)
    Traceback (most recent call last):
    ...
    TypeError: return_mask must be False, True or 'packed', got 1 (int)
    """
    if isinstance(value, str) and value == "packed":
        return "packed"
    if isinstance(value, bool | np.bool_):
        return bool(value)
    kind = ValueError if isinstance(value, str) else TypeError
    raise kind(
        f"return_mask must be False, True or 'packed', got {value!r} ({type(value).__name__})"
    )


def check_shape(shape: Any, name: str = "shape") -> tuple[int, ...]:
    """A shape as a tuple of non-negative Python ints (entries through ``operator.index``).

    A single integer is a 1-d shape, as in NumPy. Floats, strings and bools are refused.

    Examples
    --------
    >>> import numpy as np
    >>> check_shape((np.int64(2), 3))
    (2, 3)
    >>> check_shape((2.7,))
    Traceback (most recent call last):
    ...
    TypeError: shape must be a tuple of non-negative integers, got (2.7,): entry 0 is 2.7 (float)
    """
    if isinstance(shape, Integral) and not isinstance(shape, bool | np.bool_):
        shape = (shape,)
    if isinstance(shape, str | bytes) or not hasattr(shape, "__iter__"):
        raise TypeError(
            f"{name} must be a tuple of non-negative integers, got {shape!r} "
            f"({type(shape).__name__})"
        )
    entries = tuple(shape)
    out = []
    for i, n in enumerate(entries):
        try:
            value = as_integer(n)
        except TypeError:
            raise TypeError(
                f"{name} must be a tuple of non-negative integers, got {entries!r}: "
                f"entry {i} is {n!r} ({type(n).__name__})"
            ) from None
        if value < 0:
            raise ValueError(
                f"{name} must be a tuple of non-negative integers, got {entries!r}: "
                f"entry {i} is {value}"
            )
        out.append(value)
    return tuple(out)


def overflow_bound(finfo: Any) -> float:
    """The smallest positive value that rounds to infinity (or NaN) in a float format."""
    fmax, eps = float(finfo.max), float(finfo.eps)
    _, exponent = math.frexp(fmax)  # fmax = m * 2**exponent, 0.5 <= m < 1
    return fmax + math.ldexp(eps, exponent - 2)  # max + half an ulp at max (inf for float64)


def check_scale(scale: float, p: float, dtype: Any, finfo: Any) -> None:
    """Raise ValueError where the training scale ``1 / (1 - p)`` is not finite in ``dtype``.

    ``finfo`` is the namespace's ``finfo(dtype)`` (``max`` and ``eps`` are
    read). In float16, ``p`` above ``1 - 1/65520`` (about 0.9999847) would make
    every kept unit inf; the remedy is a wider dtype or vanilla mode.

    Examples
    --------
    >>> import numpy as np
    >>> check_scale(1e4, 0.9999, "float16", np.finfo(np.float16))
    >>> check_scale(1e5, 0.99999, "float16", np.finfo(np.float16))
    Traceback (most recent call last):
    ...
    ValueError: p=0.99999 makes the inverted-dropout scale 1/(1 - p) = 100000 not finite in float16 (largest finite value 65504): every kept unit would be inf; use p < 0.99998473 with float16, a wider dtype (e.g. float32), or mode='vanilla'
    """  # noqa: E501
    bound = overflow_bound(finfo)
    if scale < bound:
        return
    name = getattr(dtype, "name", None) or str(dtype)
    limit = math.floor((1.0 - 1.0 / bound) * 1e8) / 1e8
    raise ValueError(
        f"p={p!r} makes the inverted-dropout scale 1/(1 - p) = {scale:.6g} not finite in "
        f"{name} (largest finite value {float(finfo.max):.6g}): every kept unit would be inf; "
        f"use p < {limit:.8f} with {name}, a wider dtype (e.g. float32), or mode='vanilla'"
    )


def check_mode(mode: Any) -> str:
    """Validate the dropout mode ("inverted" or "vanilla")."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def _same_symbolic_dim(n: Any, size: Any) -> bool:
    """Whether ``n`` is the symbolic dimension ``size`` (``jax.export``), not an int."""
    if isinstance(size, int) or type(n) is not type(size):
        return False
    try:
        return bool(n == size)
    except Exception:
        return False


def check_noise_shape(noise_shape: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Resolve ``noise_shape`` against the input shape.

    Each entry must be ``1``, ``None`` (meaning the input's size) or the
    input's size on that axis, and the rank must match.

    Examples
    --------
    >>> check_noise_shape((None, 1), (4, 3))
    (4, 1)
    """
    if noise_shape is None:
        return tuple(shape)
    try:
        entries = tuple(noise_shape)
    except TypeError:
        raise TypeError(f"noise_shape must be a tuple of ints, got {noise_shape!r}") from None
    if len(entries) != len(shape):
        raise ValueError(
            f"noise_shape {entries} must have one entry per axis of x, whose shape is {shape}"
        )
    out = []
    for axis, (n, size) in enumerate(zip(entries, shape, strict=True)):
        if n is None or _same_symbolic_dim(n, size):
            n = size
        if isinstance(n, Integral) and not isinstance(n, bool):
            n = int(n)  # NumPy integers too
        if n is size:  # a symbolic dimension (jax.export): the input's own
            out.append(n)
            continue
        if isinstance(n, bool) or not isinstance(n, int) or n not in (1, size):
            raise ValueError(
                f"noise_shape {entries} does not broadcast to x's shape {shape}: axis {axis} "
                f"must be 1, None or {size}, got {n!r}"
            )
        out.append(n)
    return tuple(out)


def check_same_array_kind(xp: Any, first: Any, other: Any, names: tuple[str, str]) -> None:
    """Raise unless ``other`` comes from the same namespace and device as ``first``."""
    other_xp = namespace_of(other, names[1])
    if other_xp is not xp:
        raise TypeError(
            f"{names[0]} and {names[1]} come from different array libraries "
            f"({xp.__name__} and {other_xp.__name__}); convert one of them"
        )
    d0, d1 = array_api_compat.device(first), array_api_compat.device(other)
    if d0 != d1:
        raise ValueError(
            f"{names[0]} is on device {d0} but {names[1]} is on device {d1}; move one of them"
        )


def to_numpy(x: Any) -> Any:
    """Copy any backend's array to a NumPy array (device arrays through ``.get()``)."""
    import numpy as np

    if isinstance(x, np.ndarray):
        return x
    getter = getattr(x, "get", None)
    if callable(getter):  # CuPy
        return np.asarray(getter())
    try:
        return np.from_dlpack(x)
    except (TypeError, RuntimeError, BufferError, AttributeError):
        return np.asarray(x)


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
            f"shape {tuple(grad.shape)} has shape {tuple(shape)}: pass the {name} that forward "
            "returned for this gradient's input (or rng= to regenerate it)"
        )
