"""Independent training runs: here one by one, or on Dask distributed.

:func:`run_tasks` trains every :class:`Task` (a run: its data, name, folder
and configuration), resuming each from its folder's checkpoint if there is
one. With ``jobs=1`` (and no cluster) they run one after the other in this
process. Otherwise they go to Dask distributed (:mod:`~dropkit.experiment.cluster`):
a local cluster of ``jobs`` worker processes, each limited to ``cores // jobs``
BLAS, OpenMP and Numba threads through the environment variables it starts
with (those the user set are left alone), or the workers of an existing
scheduler (``cluster="tcp://HOST:PORT"``). Within its share each run uses
the BLAS threads :func:`~dropkit.experiment.threads.choose_threads` chooses
for its matrix sizes (or the task's own). A run's result does not depend on
where it ran, nor on its thread count. Each run on a worker has its own
plugin manager (:func:`~dropkit.experiment.plugins.new_plugin_manager`):
the installed plugins, the metrics file, and the events that feed this
process's display (:func:`run_tasks_shown`). Used by studies
(:mod:`~dropkit.experiment.study`) and sweeps (:mod:`~dropkit.experiment.sweep`).

Examples
--------
>>> thread_limits(4, cores=16)["OPENBLAS_NUM_THREADS"]
'4'
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import pluggy

from .data import Dataset
from .plugins import new_plugin_manager
from .result import headline
from .task import THREAD_VARIABLES, Task, thread_limits, train_task, worker_threads
from .threads import available_cores
from .train import TrainResult

if TYPE_CHECKING:
    from .cluster import Watch

__all__ = [
    "THREAD_VARIABLES",
    "Task",
    "progress_printer",
    "run_tasks",
    "run_tasks_shown",
    "thread_limits",
    "train_task",
    "worker_threads",
]


def run_tasks(
    tasks: Sequence[Task],
    datasets: dict[str, Dataset],
    *,
    jobs: int = 1,
    metrics: bool = True,
    plugin_manager: pluggy.PluginManager | None = None,
    on_done: Callable[[Task, TrainResult, int], None] | None = None,
    on_event: Callable[[tuple[str, str, int, int]], None] | None = None,
    cluster: str | None = None,
    watch: Watch | None = None,
    resume: str | None = None,
    notes: TextIO | None = None,
) -> list[TrainResult]:
    """Train every task, ``jobs`` at a time; results in the order of ``tasks``.

    Each task resumes from its folder's checkpoint if there is one. With
    ``jobs=1`` and no ``cluster`` the tasks run here, on ``plugin_manager``
    (default: a new one with the installed plugins,
    :func:`~dropkit.experiment.plugins.new_plugin_manager`); otherwise on Dask
    (:func:`~dropkit.experiment.cluster.run_on_dask`): a local cluster of
    ``min(jobs, len(tasks))`` worker processes, or the scheduler at
    ``cluster``, each run on a new manager with the installed plugins (the
    plugins of ``plugin_manager`` do not reach them). ``watch``, ``resume``
    and ``notes``: see :func:`~dropkit.experiment.cluster.run_on_dask`. ``metrics``
    adds a :class:`~dropkit.experiment.reporters.MetricsFile` (``metrics.csv`` per run).
    ``on_done(task, result, finished)`` is called here as each run ends;
    ``on_event`` here with each run's start and epochs (the events of
    :class:`~dropkit.experiment.reporters.Events`), from the workers too.
    A task's ``threads`` (None: chosen for its matrix sizes) caps at the
    workers' share of the cores; in this process (``jobs=1``) the whole machine;
    on an existing cluster, each worker's machine.

    A failing run stops the others (their finished epochs are saved) and its
    error is raised; so is an interrupt.
    """
    from .reporters import Events, MetricsFile

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    results: list[TrainResult | None] = [None] * len(tasks)
    if cluster is None and (jobs == 1 or len(tasks) <= 1):
        pm = plugin_manager if plugin_manager is not None else new_plugin_manager()
        added: list[Any] = []  # registered for these runs only
        if metrics and not any(isinstance(p, MetricsFile) for p in pm.get_plugins()):
            added.append(MetricsFile())
        if on_event is not None:
            added.append(Events(on_event))
        for plugin in added:
            pm.register(plugin)
        try:
            for i, task in enumerate(tasks):
                results[i] = trained = train_task(task, datasets[task.data], pm)
                if on_done is not None:
                    on_done(task, trained, i + 1)
        finally:
            for plugin in added:
                pm.unregister(plugin)
        return results  # type: ignore[return-value]
    from .cluster import run_on_dask

    workers = min(jobs, len(tasks))
    if cluster is None:
        # chosen here, where the cores are known (a variable the user set wins); the workers
        # of an existing cluster choose for their own machine
        cap = max(1, available_cores() // workers)
        tasks = [worker_threads(task, datasets[task.data], cap) for task in tasks]
    return run_on_dask(
        tasks,
        datasets,
        workers=workers,
        address=cluster,
        metrics=metrics,
        watch=watch,
        resume=resume,
        on_done=on_done,
        on_event=on_event,
        notes=notes,
    )


def _finished_line(task: Task, result: TrainResult, finished: int, total: int, start: float) -> str:
    s = result.summary()
    key, label = headline(s)
    epoch = s["best_val_epoch"] if key == "test_acc_at_best_val" else s["best_test_epoch"]
    return (
        f"[{finished:>{len(str(total))}}/{total}] {task.name}: {label} "
        f"{s[key]:.2%} (epoch {epoch}), final gap "
        f"{s['final_gap'] * 100:.2f} points, {s['seconds']:.1f} s "
        f"({time.perf_counter() - start:.0f} s since the start)"
    )


def progress_printer(
    total: int, stream: TextIO | None
) -> Callable[[Task, TrainResult, int], None] | None:
    """An ``on_done`` for :func:`run_tasks` printing a line per finished run (None: silent)."""
    if stream is None:
        return None
    start = time.perf_counter()

    def report(task: Task, result: TrainResult, finished: int) -> None:
        print(_finished_line(task, result, finished, total, start), file=stream, flush=True)

    return report


def run_tasks_shown(
    tasks: Sequence[Task],
    datasets: dict[str, Dataset],
    progress: TextIO | None,
    **options: Any,
) -> list[TrainResult]:
    """:func:`run_tasks`, its progress shown on ``progress`` (None: silent).

    The display (:class:`~dropkit.experiment.reporters.StudyProgress`) shows the
    runs done, running and waiting, each running run's epoch and an ETA, and a
    line per finished run (that of :func:`progress_printer`).
    """
    from .reporters import StudyProgress

    if progress is None:
        return run_tasks(tasks, datasets, **options)
    display = StudyProgress({t.name: t.config.epochs for t in tasks}, progress)
    start = time.perf_counter()

    def done(task: Task, result: TrainResult, finished: int) -> None:
        display.finished(task.name, _finished_line(task, result, finished, len(tasks), start))

    try:
        return run_tasks(
            tasks, datasets, on_done=done, on_event=display.event, notes=progress, **options
        )
    finally:
        display.close()
