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

from .checks import finfo, is_real_floating, not_floating_error, overflow_bound

__all__ = ["FLOATING", "OVERFLOW", "check_floating_dtype", "overflow_bound_of"]

#: ``(namespace, dtype)`` pairs already found to be real floating.
FLOATING: dict[tuple[Any, Any], bool] = {}
#: ``(namespace, dtype)`` -> :func:`dropkit.checks.overflow_bound` of its ``finfo``.
OVERFLOW: dict[tuple[Any, Any], float] = {}
#: Entries kept at most (a bound for processes that see many dtypes).
LIMIT = 256


def _remember(memo: dict[tuple[Any, Any], Any], key: tuple[Any, Any], value: Any) -> None:
    try:
        if len(memo) >= LIMIT:
            memo.clear()
        memo[key] = value
    except TypeError:  # an unhashable dtype: nothing remembered
        pass


def check_floating_dtype(xp: Any, dtype: Any, name: str) -> None:
    """Raise TypeError unless ``dtype`` is real floating (the message names ``name``)."""
    key = (xp, dtype)
    try:
        if key in FLOATING:
            return
    except TypeError:  # unhashable
        pass
    if not is_real_floating(xp, dtype):
        raise not_floating_error(dtype, name)
    _remember(FLOATING, key, True)


def overflow_bound_of(xp: Any, dtype: Any) -> float:
    """The smallest positive value that overflows ``dtype`` (``finfo`` read once)."""
    key = (xp, dtype)
    try:
        bound = OVERFLOW.get(key)
    except TypeError:
        bound = None
    if bound is None:
        bound = overflow_bound(finfo(xp, dtype))
        _remember(OVERFLOW, key, bound)
    return bound
