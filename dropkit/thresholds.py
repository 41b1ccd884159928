"""From a drop probability to the integers and factors the ops use.

``p`` is the probability of DROPPING a unit. A unit is kept when its 32-bit
Philox word is at or above the threshold ``t = round(p * 2**32)``, so the keep
probability is exactly ``(2**32 - t) / 2**32``: ``p`` is resolved to a multiple
of ``2**-32`` (:func:`keep_probability` gives the exact value).

Examples
--------
>>> keep_threshold(0.25) == 2**30
True
>>> train_scale(0.5, "inverted"), eval_factor(0.5, "vanilla")
(2.0, 0.5)
"""

from __future__ import annotations

from .checks import check_p

__all__ = [
    "FULL",
    "RESOLUTION_BITS",
    "eval_factor",
    "keep_probability",
    "keep_threshold",
    "threshold_of",
    "train_scale",
]

#: Bits of resolution of the drop probability: ``p`` is rounded to a multiple of 2**-32.
RESOLUTION_BITS = 32
#: The threshold that drops every unit (``p = 1``).
FULL = 1 << RESOLUTION_BITS
_FULL_FLOAT = float(FULL)


def keep_threshold(p: float) -> int:
    """The integer threshold for drop probability ``p``: keep iff word >= threshold.

    Examples
    --------
    >>> keep_threshold(0.5) == 2**31
    True
    """
    return threshold_of(check_p(p))


def threshold_of(p: float) -> int:
    """:func:`keep_threshold` of a ``p`` already checked (a float in [0, 1]).

    Examples
    --------
    >>> threshold_of(0.25) == keep_threshold(0.25)
    True
    """
    return round(p * _FULL_FLOAT)  # (exact: a power of two; a float product is faster)


def keep_probability(p: float) -> float:
    """The exact probability that a unit is kept, after resolving ``p`` to 2**-32.

    Examples
    --------
    >>> keep_probability(0.5)
    0.5
    >>> abs(keep_probability(0.1) - 0.9) < 2**-32
    True
    """
    return (FULL - keep_threshold(p)) / FULL


def train_scale(p: float, mode: str) -> float:
    """The factor of kept units in training: ``1 / (1 - p)`` (inverted) or 1 (vanilla).

    Examples
    --------
    >>> train_scale(0.75, "inverted"), train_scale(0.75, "vanilla")
    (4.0, 1.0)
    """
    return 1.0 / (1.0 - p) if mode == "inverted" else 1.0


def eval_factor(p: float, mode: str) -> float:
    """The evaluation output's factor: 1 (inverted) or ``1 - p`` (vanilla).

    Examples
    --------
    >>> eval_factor(0.25, "inverted"), eval_factor(0.25, "vanilla")
    (1.0, 0.75)
    """
    return 1.0 if mode == "inverted" else 1.0 - p
