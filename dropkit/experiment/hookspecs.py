"""The application's hook specifications: pluggy project and entry points ``dropkit.experiment``.

The application announces its events through these hooks (a run starts, an
epoch ends, a run, comparison, study or sweep finishes), so progress lines,
metric files, plots and checkpoints are plugins of the loop, not code in it,
and asks them for an optional fast optimiser kernel. They are not the
library's hooks: the library (:mod:`dropkit.hookspecs`, group ``dropkit``)
only knows backends, and importing it or calling :func:`dropkit.dropout`
never loads a plugin of this group.

An installed plugin declares ``[project.entry-points."dropkit.experiment"]
name = "module"``; its module implements any of the hooks below with
:data:`hookimpl`. The application builds one plugin manager per command
or run (:func:`dropkit.experiment.plugins.new_plugin_manager`), with the
installed plugins and that command's own reporters: there is no global one.

Examples
--------
A plugin (an installed one is a module with such functions):

>>> from types import SimpleNamespace as NS
>>> from dropkit.experiment.plugins import new_plugin_manager
>>> class Announce:
...     @hookimpl
...     def dropkit_train_end(self, run, result):
...         print(f"{run.name}: {len(result.history)} epochs")
>>> pm = new_plugin_manager(Announce(), installed=False)
>>> _ = pm.hook.dropkit_train_end(run=NS(name="demo"), result=NS(history=[1, 2]))
demo: 2 epochs
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

__all__ = ["GROUP", "PROJECT", "SGDKernel", "hookimpl", "hookspec"]

#: The pluggy project name of the application's hooks.
PROJECT = "dropkit.experiment"
#: The entry-point group its installed plugins are declared in (the same name).
GROUP = PROJECT
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: ``kernel(w, g, v, *, lr, momentum, weight_decay, nesterov) -> bool``: one SGD step
#: of parameter ``w`` with gradient ``g`` and velocity ``v``, both ``w`` and ``v``
#: updated in place; False (nothing changed) where it does not apply.
SGDKernel = Callable[..., bool]


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
    """``dropkit sweep`` finished: ``table`` has one row per (point, method).

    Each row: the point's value of each axis (one or two of ``train_size``,
    ``p_hidden``, ``lr``, ``weight_decay``: the row's numbers), ``method``, and
    ``best_test_acc``, ``final_gap`` (and, with a validation split,
    ``test_acc_at_best_val``) as :func:`dropkit.experiment.stats.describe`
    dictionaries (``mean``, ``std``, ``ci95``, ``n``, ``values``). ``out_dir``
    (a ``pathlib.Path``) already holds ``sweep.json`` and ``sweep.md``; the
    plots plugin writes ``sweep.png`` (one axis: the headline against it, error
    bars over seeds; two axes: a heat map per method).
    """


@hookspec(firstresult=True)
def dropkit_sgd_kernel(xp: Any) -> SGDKernel | None:
    """A fused in-place SGD step for the arrays of namespace ``xp``, or None.

    The first kernel returned is used by :class:`dropkit.experiment.optim.SGD`
    (see :data:`SGDKernel`); it must give the bits of the array-API update
    there, and may decline any call (return False: that call takes the
    array-API update). ``dropkit-numpy`` offers a Numba kernel for NumPy
    arrays, ``dropkit-cupy`` a CUDA kernel for CuPy arrays.
    """
