"""Hook specifications of the ``dropkit`` pluggy project.

Plugins are found through the entry-point group ``dropkit``: a distribution
declares ``[project.entry-points.dropkit] name = "module"`` and the module
implements any of the hooks below with :data:`hookimpl`.

Examples
--------
A complete backend plugin module:

>>> from dropkit import hookimpl
>>> from dropkit.backend import ArrayAPIBackend, BackendRecord
>>> @hookimpl
... def dropkit_backends():
...     import array_api_strict
...     return [BackendRecord(
...         name="mine", summary="my arrays", namespaces=("array_api_strict",),
...         load=lambda: ArrayAPIBackend("mine", array_api_strict))]
>>> [r.name for r in dropkit_backends()]
['mine']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .backend import BackendRecord

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "dropkit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def dropkit_backends() -> Iterable[BackendRecord]:
    """Return the backends this plugin provides.

    Each :class:`~dropkit.backend.BackendRecord` names a backend, summarises
    it, lists the array libraries it serves (top-level module names, matched
    against the arrays passed to the ops) and carries a *lazy* loader: listing
    backends must work on a machine that lacks the backend's library or
    device, so import the library inside ``load``, not at module level.
    """
    raise NotImplementedError  # a specification: pluggy calls the implementations, never this


@hookspec
def dropkit_train_start(run: Any) -> None:
    """A training run starts (or resumes: ``run.history`` then holds the past epochs).

    ``run`` is a :class:`dropkit.experiment.train.Run`: its name, config, output folder
    (or None) and history.
    """


@hookspec
def dropkit_epoch_end(run: Any, record: dict[str, Any]) -> None:
    """An epoch ended; ``record`` holds its loss, accuracies, learning rate and seconds.

    Called after the epoch's state is saved, or kept to be saved (checkpoints
    are written every few seconds, and on any error for the last finished
    epoch: :class:`dropkit.experiment.checkpoint.PeriodicCheckpoint`), so a hook that
    fails loses nothing.
    """


@hookspec
def dropkit_train_end(run: Any, result: Any) -> None:
    """A run finished; ``result`` is its :class:`dropkit.experiment.train.TrainResult`."""


@hookspec
def dropkit_compare_end(out_dir: Any, results: dict[str, Any]) -> None:
    """``dropkit compare`` finished: ``results`` maps "standard" and "dropout" to results.

    ``out_dir`` is the comparison's output folder (a ``pathlib.Path``), where
    plugins may write files (the plots plugin writes ``curves.png``).
    """


@hookspec
def dropkit_study_end(out_dir: Any, runs: dict[str, dict[int, Any]]) -> None:
    """A multi-method, multi-seed comparison (:mod:`dropkit.experiment.study`) finished.

    ``runs`` maps each method name to ``{seed: result}`` (each a
    :class:`dropkit.experiment.train.TrainResult`, in the order of the study's methods and
    seeds); ``out_dir`` is the study's folder (a ``pathlib.Path``), already
    holding ``summary.json`` and ``history.json``. The plots plugin writes
    ``curves.png`` there: each method's mean curves with the spread over seeds
    shaded. Called once per train size by ``dropkit sweep``.
    """


@hookspec
def dropkit_sweep_end(out_dir: Any, table: list[dict[str, Any]]) -> None:
    """``dropkit sweep`` finished: ``table`` has one row per (train size, method).

    Each row: ``train_size``, ``method``, and ``best_test_acc`` and
    ``final_gap`` as :func:`dropkit.experiment.stats.describe` dictionaries (``mean``,
    ``std``, ``ci95``, ``n``, ``values``). ``out_dir`` (a ``pathlib.Path``)
    already holds ``sweep.json`` and ``sweep.md``; the plots plugin writes
    ``sweep.png`` (best test accuracy against train size, error bars over seeds).
    """
