"""Independent training runs, ``jobs`` at a time, in worker processes (or here, one by one).

:func:`run_tasks` trains every :class:`Task` (a run: its data, name, folder
and configuration), resuming each from its folder's checkpoint if there is
one. The runs go to ``jobs`` worker processes (``spawn`` start: no forked
Numba/OpenBLAS thread pools), each limited to ``cores // jobs`` BLAS, OpenMP
and Numba threads through the environment variables it starts with (those the
user set are left alone); within that share each run uses the BLAS threads
:func:`~dropkit.experiment.threads.choose_threads` chooses for its matrix
sizes (or the task's own). With ``jobs=1`` they run one after the other in
this process. A run's result does not depend on where it ran, nor on its
thread count. Each worker has its own plugin manager
(:func:`~dropkit.experiment.plugins.new_plugin_manager`): the installed
plugins, the metrics file, and the events that feed the parent's display
(:func:`run_tasks_shown`). Used by studies (:mod:`~dropkit.experiment.study`)
and sweeps (:mod:`~dropkit.experiment.sweep`).

Examples
--------
>>> thread_limits(4, cores=16)["OPENBLAS_NUM_THREADS"]
'4'
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pluggy

from .checkpoint import CHECKPOINT_NAME
from .data import Dataset
from .plugins import new_plugin_manager
from .result import headline
from .split import validation_split
from .threads import (
    USER_VARIABLES,
    ThreadChoice,
    available_cores,
    choose_threads,
    step_flops,
)
from .train import TrainConfig, TrainingDivergedError, TrainResult, train

__all__ = [
    "THREAD_VARIABLES",
    "Task",
    "progress_printer",
    "run_tasks",
    "run_tasks_shown",
    "thread_limits",
    "worker_threads",
]


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


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set the variables not already set (the user's choice wins) while the block runs."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


_WORKER: dict[str, Any] = {}


def _worker_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM in a worker (the parent stopping it, or SLURM): stop as on Ctrl-C.

    While a run trains, its last finished epoch is saved (the KeyboardInterrupt
    goes through :func:`~dropkit.experiment.train.train`); an idle worker just exits.
    """
    _WORKER["stop"] = True
    if _WORKER.get("busy"):
        raise KeyboardInterrupt("terminated")
    os._exit(143)


def _init_worker(datasets: dict[str, Dataset], metrics: bool, events: Any = None) -> None:
    import signal

    from .reporters import Events, MetricsFile

    _WORKER["datasets"] = datasets
    signal.signal(signal.SIGTERM, _worker_sigterm)
    # the worker's own manager: the installed plugins, the metrics file, and (a queue)
    # each run's start and epochs going to the parent's display
    reporters: list[object] = [MetricsFile()] if metrics else []
    if events is not None:
        reporters.append(Events(events.put))
    _WORKER["pm"] = new_plugin_manager(*reporters)


@dataclass(frozen=True)
class _Diverged:
    """A worker's TrainingDivergedError, in a form that crosses the process boundary."""

    message: str
    epoch: int
    kept_epoch: int


def _run_task(task: Task) -> TrainResult | _Diverged:
    _WORKER["busy"] = True
    try:
        return _train_task(task, _WORKER["datasets"][task.data], _WORKER["pm"])
    except TrainingDivergedError as exc:  # its keyword-only fields do not unpickle
        return _Diverged(str(exc), exc.epoch, exc.kept_epoch)
    finally:
        _WORKER["busy"] = False
        if _WORKER.get("stop"):  # terminated: the epoch is saved; take no queued run
            os._exit(143)


def _train_task(task: Task, data: Dataset, pm: pluggy.PluginManager) -> TrainResult:
    return train(
        task.config,
        data,
        name=task.name,
        out_dir=task.folder,
        resume=(task.folder / CHECKPOINT_NAME).exists(),
        plugin_manager=pm,
        threads=task.threads,
    )


def run_tasks(
    tasks: Sequence[Task],
    datasets: dict[str, Dataset],
    *,
    jobs: int = 1,
    metrics: bool = True,
    plugin_manager: pluggy.PluginManager | None = None,
    on_done: Callable[[Task, TrainResult, int], None] | None = None,
    on_event: Callable[[tuple[str, str, int, int]], None] | None = None,
) -> list[TrainResult]:
    """Train every task, ``jobs`` at a time; results in the order of ``tasks``.

    Each task resumes from its folder's checkpoint if there is one. With
    ``jobs=1`` the tasks run here, on ``plugin_manager`` (default: a new one
    with the installed plugins, :func:`~dropkit.experiment.plugins.new_plugin_manager`);
    otherwise in ``min(jobs, len(tasks))`` spawned worker processes, each on
    its own new manager with the installed plugins (the plugins of
    ``plugin_manager`` do not reach them). ``metrics``
    adds a :class:`~dropkit.experiment.reporters.MetricsFile` (``metrics.csv`` per run).
    ``on_done(task, result, finished)`` is called here as each run ends;
    ``on_event`` here with each run's start and epochs (the events of
    :class:`~dropkit.experiment.reporters.Events`), from the workers too.
    A task's ``threads`` (None: chosen for its matrix sizes) caps at the
    workers' share of the cores; in this process (``jobs=1``) the whole machine.

    A failing run stops the others (their finished epochs are saved) and its
    error is raised; so is an interrupt.
    """
    from .reporters import Events, MetricsFile

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    results: list[TrainResult | None] = [None] * len(tasks)
    if jobs == 1 or len(tasks) <= 1:
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
                results[i] = trained = _train_task(task, datasets[task.data], pm)
                if on_done is not None:
                    on_done(task, trained, i + 1)
        finally:
            for plugin in added:
                pm.unregister(plugin)
        return results  # type: ignore[return-value]
    workers = min(jobs, len(tasks))
    # chosen here, before the workers' variables are set: a variable the user set wins
    cap = max(1, available_cores() // workers)
    tasks = [worker_threads(task, datasets[task.data], cap) for task in tasks]
    context = multiprocessing.get_context("spawn")
    events = context.Queue() if on_event is not None else None
    with _environment(thread_limits(workers)):
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(datasets, metrics, events),
        )
        try:
            futures = {pool.submit(_run_task, task): i for i, task in enumerate(tasks)}
            pending, finished = set(futures), 0
            while pending:
                done, pending = concurrent.futures.wait(
                    pending,
                    timeout=None if events is None else 0.1,
                    return_when=concurrent.futures.FIRST_COMPLETED,
                )
                _drain(events, on_event)
                for future in done:
                    i, finished = futures[future], finished + 1
                    result = future.result()
                    if isinstance(result, _Diverged):
                        raise TrainingDivergedError(
                            result.message, epoch=result.epoch, kept_epoch=result.kept_epoch
                        )
                    results[i] = result
                    if on_done is not None:
                        on_done(tasks[i], result, finished)
        except BaseException:
            _stop(pool)
            raise
        finally:
            if events is not None:
                events.close()
        pool.shutdown()
    return results  # type: ignore[return-value]


def _drain(events: Any, on_event: Callable[[tuple[str, str, int, int]], None] | None) -> None:
    """Hand every event the workers have queued so far to ``on_event``."""
    import queue

    if events is None or on_event is None:
        return
    while True:
        try:
            on_event(events.get_nowait())
        except queue.Empty:
            return


def _stop(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Cancel the queued runs and end the running ones (their finished epochs are saved).

    The workers get SIGTERM, which makes a training worker save its last finished
    epoch before it stops (:func:`_worker_sigterm`).
    """
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():  # stuck: it cannot save anything more
            process.kill()
            process.join()


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
        return run_tasks(tasks, datasets, on_done=done, on_event=display.event, **options)
    finally:
        display.close()
