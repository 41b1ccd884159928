"""One training run for a worker: :class:`Task`, its thread share, and :func:`train_task`.

The unit of work of studies and sweeps, whatever runs it (this process or a
Dask worker, :mod:`~dropkit.experiment.tasks` and
:mod:`~dropkit.experiment.cluster`): what to train, where, with which
configuration and BLAS threads, and the call that trains it, continuing the
folder's checkpoint if there is one.

Examples
--------
>>> thread_limits(4, cores=16)["OPENBLAS_NUM_THREADS"]
'4'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pluggy

from .checkpoint import CHECKPOINT_NAME
from .data import Dataset
from .split import validation_split
from .threads import (
    USER_VARIABLES,
    ThreadChoice,
    available_cores,
    choose_threads,
    step_flops,
)
from .train import TrainConfig, TrainResult, train

__all__ = ["THREAD_VARIABLES", "Task", "thread_limits", "train_task", "worker_threads"]


#: The variables that size the thread pools of BLAS, OpenMP and Numba in a worker.
THREAD_VARIABLES = (*USER_VARIABLES, "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass(frozen=True)
class Task:
    """One run for a worker: its data (a key of the datasets), name, folder and configuration.

    ``threads``: the BLAS threads it trains with (None: chosen for it, see
    :func:`run_tasks`; a :class:`~dropkit.experiment.threads.ThreadChoice`: as made).
    """

    data: str
    name: str
    folder: Path
    config: TrainConfig
    threads: int | ThreadChoice | None = None


def worker_threads(task: Task, data: Dataset, cap: int) -> Task:
    """``task`` with the thread choice of a worker with ``cap`` cores (made in the parent)."""
    if isinstance(task.threads, ThreadChoice):
        return task
    split = validation_split(data.y_train, task.config.val_size)
    layers = [data.n_features, *task.config.hidden, data.n_classes]
    flops = step_flops(layers, min(task.config.batch_size, len(split.train)))
    choice = choose_threads(flops, requested=task.threads, cap=cap)
    return dataclasses.replace(task, threads=choice)


def thread_limits(jobs: int, cores: int | None = None) -> dict[str, str]:
    """The thread-pool variables for ``jobs`` workers on ``cores`` cores (``cores // jobs``).

    Examples
    --------
    >>> thread_limits(4, cores=16)["OPENBLAS_NUM_THREADS"]
    '4'
    """
    cores = cores if cores is not None else available_cores()
    return {name: str(max(1, cores // jobs)) for name in THREAD_VARIABLES}


def train_task(task: Task, data: Dataset, pm: pluggy.PluginManager) -> TrainResult:
    """Train ``task`` on ``data`` with ``pm``'s hooks, continuing its checkpoint if any."""
    return train(
        task.config,
        data,
        name=task.name,
        out_dir=task.folder,
        resume=(task.folder / CHECKPOINT_NAME).exists(),
        plugin_manager=pm,
        threads=task.threads,
    )
