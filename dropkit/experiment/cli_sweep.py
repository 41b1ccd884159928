"""The axes of ``dropkit sweep``: from the command line, from a saved ``study.json``.

``--train-size``, ``--p-hidden``, ``--lr`` and ``--weight-decay`` take
comma-separated lists on ``sweep``. Those given with two or more values are
the axes (one or two); one given with a single value is a fixed option of
every run. Without any axis, the sweep runs over the train size (the given
one, or :data:`~dropkit.experiment.sweep.DEFAULT_SIZES`), as before axes existed.

Examples
--------
>>> import argparse
>>> args = argparse.Namespace(train_size="500", p_hidden="0.1,0.5", lr=None, weight_decay=None)
>>> sweep_axes(args), args.train_size, args.p_hidden
({'p_hidden': [0.1, 0.5]}, 500, None)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .sweep import AXES, DEFAULT_SIZES, MAX_AXES, parse_axis, parse_train_sizes

__all__ = ["axes_differences", "saved_axes", "sweep_axes"]


def _given(args: argparse.Namespace) -> dict[str, list[Any]]:
    """The lists the command line gives for the axis flags (parsed)."""
    given: dict[str, list[Any]] = {}
    for key in AXES:
        text = getattr(args, key, None)
        if text is None:
            continue
        if isinstance(text, list):  # parsed already (a second attempt at getting ready)
            given[key] = text
        elif key == "train_size":
            given[key] = parse_train_sizes(text)
        else:
            given[key] = parse_axis("--" + key.replace("_", "-"), text)
    return given


def sweep_axes(args: argparse.Namespace) -> dict[str, list[Any]]:
    """The sweep's axes; ``args``' axis flags become the fixed values (or None).

    Sets ``args.sweep_given`` to the lists given (to compare with a saved sweep).
    """
    given = _given(args)
    args.sweep_given = given
    axes = {k: v for k, v in given.items() if len(v) > 1}
    if len(axes) > MAX_AXES:
        flags = ", ".join("--" + k.replace("_", "-") for k in axes)
        raise ValueError(
            f"a sweep has at most {MAX_AXES} axes (a table, or a heat map), got {len(axes)}: "
            f"{flags}; give one or two of them several values, the others one"
        )
    if not axes:
        axes = {"train_size": given.get("train_size", list(DEFAULT_SIZES))}
    for key in AXES:  # the fixed values, as train/compare take them
        value = given.get(key)
        setattr(args, key, value[0] if value is not None and key not in axes else None)
    return axes


def saved_axes(doc: dict[str, Any], path: Path) -> dict[str, list[Any]]:
    """The axes of a saved sweep (``"axes"``, or ``"train_sizes"`` of sweeps made before)."""
    axes = doc.get("axes")
    if axes is None and "train_sizes" in doc:
        axes = {"train_size": doc["train_sizes"]}
    fix = "it was left as is: fix it, or start a new sweep in another --out folder"
    if not (
        isinstance(axes, dict)
        and 1 <= len(axes) <= MAX_AXES
        and set(axes) <= set(AXES)
        and all(isinstance(v, list) and v for v in axes.values())
    ):
        raise ValueError(f"{path}: 'axes' is damaged: {axes!r}; {fix}")
    for key, values in axes.items():
        integer = key == "train_size"
        for v in values:
            ok = type(v) is int and v > 0 if integer else type(v) in (int, float)
            if not ok:
                raise ValueError(f"{path}: 'axes.{key}' is damaged: {values!r}; {fix}")
    return axes


def axes_differences(args: argparse.Namespace, saved: dict[str, list[Any]]) -> list[str]:
    """What the axis flags of a ``--resume`` command line change in the saved sweep."""
    differences = []
    for key, values in getattr(args, "sweep_given", {}).items():
        flag = "--" + key.replace("_", "-")
        if key in saved and values != saved[key]:
            differences.append(
                f"{flag}: saved {','.join(map(str, saved[key]))}, now {','.join(map(str, values))}"
            )
        elif key not in saved and len(values) > 1:
            differences.append(f"{flag}: saved one value, now {','.join(map(str, values))}")
    return differences
