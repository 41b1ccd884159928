"""Hypothesis settings of the conformance suite: the same examples everywhere, deeper on request.

Two profiles, registered when this module is imported (registering loads nothing):

``dropkit`` (the default of dropkit's own test runs)
    Derandomized, no example database, no deadline: every machine draws the
    same examples, whatever ``CI``, ``PYTHONHASHSEED`` or a ``.hypothesis``
    folder left by an earlier run; a failure reproduces by running the test
    again.
``dropkit-deep`` (opt in: ``pytest --hypothesis-profile=dropkit-deep``)
    Random examples, :data:`DEEP_FACTOR` times as many per test, the local
    example database (a failure found once is replayed first), and the
    reproduction blob printed with every failure.
``dropkit-no-shrink`` (``pytest --hypothesis-profile=dropkit-no-shrink``)
    The default's examples without the shrink phase: a failure reports the
    first counterexample found, not a minimal one. For checking *that* a
    backend fails (dropkit's own test of deliberately broken backends), where
    shrinking every failing property costs minutes and tells nothing.

The shipped suite's tests take their settings from :func:`suite_settings`, so
``pytest --pyargs dropkit.testing`` is deterministic in a third party's project
too, whatever profile that project loads, unless it asks for ``dropkit-deep``.
The pytest plugin imports this module only when ``--hypothesis-profile`` names
a ``dropkit`` profile: other projects' runs are untouched.

Examples
--------
>>> from hypothesis import Phase, settings
>>> s = suite_settings(max_examples=30)
>>> (s.derandomize, s.database, s.deadline, s.max_examples)
(True, None, None, 30)
>>> settings.get_profile(DEEP).derandomize
False
"""

from __future__ import annotations

from typing import Any

from hypothesis import Phase, settings

__all__ = ["DEEP", "DEEP_FACTOR", "NO_SHRINK", "PROFILE", "is_deep", "suite_settings"]

PROFILE = "dropkit"
DEEP = "dropkit-deep"
NO_SHRINK = "dropkit-no-shrink"
DEEP_FACTOR = 10
_DETERMINISTIC: dict[str, Any] = {"derandomize": True, "database": None, "deadline": None}

settings.register_profile(PROFILE, **_DETERMINISTIC)
settings.register_profile(
    NO_SHRINK, phases=[p for p in Phase if p is not Phase.shrink], **_DETERMINISTIC
)
settings.register_profile(DEEP, derandomize=False, deadline=None, print_blob=True)


def is_deep() -> bool:
    """Whether the loaded Hypothesis profile is ``dropkit-deep`` (or derived from it).

    Hypothesis's pytest plugin derives a profile for ``--hypothesis-verbosity``
    (``dropkit-deep-with-verbose-verbosity``); that counts as deep too.
    """
    try:
        name = settings.get_current_profile_name()
    except AssertionError:  # no profile loaded yet
        return False
    return name.startswith(DEEP)


def suite_settings(*, max_examples: int) -> settings:
    """The settings of one of the suite's properties, ``max_examples`` in the default run.

    Deterministic (derandomized, no database, no deadline) on top of the loaded
    profile, so that profile's other choices (verbosity, health checks, phases)
    still apply; under ``dropkit-deep``: random, with ``DEEP_FACTOR * max_examples``.
    """
    if is_deep():
        return settings(max_examples=DEEP_FACTOR * max_examples)
    return settings(max_examples=max_examples, **_DETERMINISTIC)
