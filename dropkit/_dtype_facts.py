"""What the ops check about a dtype, found once per ``(namespace, dtype)``: never per call.

Whether a dtype is real floating (:func:`dropkit.checks.is_real_floating`) and
the smallest value that overflows it (:func:`dropkit.checks.overflow_bound`)
depend on the namespace and the dtype alone, so they are remembered in plain
dicts. Only facts are remembered, never a refusal: a dtype that is not
floating is checked (and refused, with its message) on every call. A dtype that
cannot be hashed is checked every time.

Examples
--------
>>> import array_api_compat.numpy as xp
>>> check_floating_dtype(xp, xp.float32, "x")
>>> overflow_bound_of(xp, xp.float16)
65520.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .checks import finfo, is_real_floating, not_floating_error, overflow_bound

__all__ = ["FLOATING", "OVERFLOW", "check_floating_dtype", "overflow_bound_of", "prime"]

# Keyed by the namespace's name, then the dtype: torch Dynamo traces look-ups of
# strings and dtypes, not of module objects.

#: Namespace name -> the dtypes already found to be real floating there.
FLOATING: dict[str, dict[Any, bool]] = {}
#: Namespace name -> dtype -> :func:`dropkit.checks.overflow_bound` of its ``finfo``.
OVERFLOW: dict[str, dict[Any, float]] = {}
#: Dtypes remembered per namespace at most (a bound for processes that see many).
LIMIT = 64


def _remember(memo: dict[str, dict[Any, Any]], xp: Any, dtype: Any, value: Any) -> None:
    known = memo.setdefault(xp.__name__, {})
    try:
        if len(known) >= LIMIT:
            known.clear()
        known[dtype] = value
    except TypeError:  # an unhashable dtype: nothing remembered
        pass


def check_floating_dtype(xp: Any, dtype: Any, name: str) -> None:
    """Raise TypeError unless ``dtype`` is real floating (the message names ``name``)."""
    known = FLOATING.get(xp.__name__)
    try:
        if known is not None and dtype in known:
            return
    except TypeError:  # unhashable
        pass
    if not is_real_floating(xp, dtype):
        raise not_floating_error(dtype, name)
    _remember(FLOATING, xp, dtype, True)


def overflow_bound_of(xp: Any, dtype: Any) -> float:
    """The smallest positive value that overflows ``dtype`` (``finfo`` read once)."""
    known = OVERFLOW.get(xp.__name__)
    bound = None
    try:
        if known is not None:
            bound = known.get(dtype)
    except TypeError:
        pass
    if bound is None:
        bound = overflow_bound(finfo(xp, dtype))
        _remember(OVERFLOW, xp, dtype, bound)
    return bound


def _reported(dtype: Any) -> Any:
    """The dtype an array reports for a namespace's ``dtype``: ``np.dtype`` of a scalar type.

    NumPy's namespace (CuPy's and JAX's too) names dtypes by scalar types
    (``np.float32``) that compare equal to what arrays report
    (``np.dtype("float32")``) but hash differently, so a dict keyed by one misses
    the other. Other dtypes (torch's) are their own report.
    """
    if isinstance(dtype, type):
        try:
            return np.dtype(dtype)
        except TypeError:
            return dtype
    return dtype


def prime(xp: Any) -> dict[Any, float]:
    """Remember the facts of ``xp``'s floating dtypes now, when its backend is loaded.

    A compiler that traces the ops (``torch.compile``) guards on these dicts:
    filled during the first trace, they would fail that guard at the next call
    and compile the function a second time. Filled before, a trace only reads them.
    Returns the (hashable) dtypes found real floating, as the namespace names
    them and as its arrays report them, each with its :func:`overflow_bound_of`
    (a new dict, for the caller to keep).

    Examples
    --------
    >>> import array_api_compat.numpy as xp
    >>> bounds = prime(xp)
    >>> bounds[xp.float16] == bounds[xp.asarray(0.0, dtype=xp.float16).dtype] == 65520.0
    True
    """
    found: dict[Any, float] = {}
    for dtype_name in ("float16", "float32", "float64", "bfloat16"):
        dtype = getattr(xp, dtype_name, None)
        if dtype is None:
            continue
        for form in (dtype, _reported(dtype)):  # (the same object twice for torch)
            try:
                check_floating_dtype(xp, form, "x")
                found[form] = overflow_bound_of(xp, form)
            except Exception:  # a namespace without that dtype's finfo: found at first use
                continue
    return found
