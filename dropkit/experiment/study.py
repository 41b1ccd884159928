"""Multi-method, multi-seed comparisons: independent runs in parallel processes, aggregated.

A study trains every method of :mod:`dropkit.experiment.methods` it is given for every
seed: each (seed, method) pair is an independent :func:`~dropkit.experiment.train.train`
run in its own folder ``<out>/seed-<s>/<method>/`` (checkpoint, metrics), so
all methods of one seed start from the same weights and see the same batches.
The runs go to ``jobs`` worker processes (``spawn`` start: no forked
Numba/OpenBLAS thread pools), each limited to ``cores // jobs`` BLAS, OpenMP
and Numba threads through the environment variables it starts with (those the
user set are left alone); within that share each run uses the BLAS threads
:func:`~dropkit.experiment.threads.choose_threads` chooses for its matrix
sizes (or ``threads``, the user's ``--threads``). With ``jobs=1`` they run
one after the other in this process. A run's result does not depend on
where it ran, nor on its thread count.

Every run of a study holds out the same validation examples (the split
depends on the data and ``val_size``, not on the seed), and its headline
number is the test accuracy at its best validation epoch
(``test_acc_at_best_val``); ``best_test_acc``, selected on the test set as
the source article does, is kept beside it. Without a validation set
(``val_size=0``) the headline is ``best_test_acc``, and the table says it
was selected on test.

The study writes ``study.json`` (its plan: base configuration, methods, seeds,
activation, data), then, at the end, ``history.json`` (every run's epochs) and
``summary.json``: a top-level entry per method with the seed means of
:meth:`~dropkit.experiment.train.TrainResult.summary`'s values (today's
``{"standard": ..., "dropout": ...}`` shape), ``"methods"`` with every
method's per-seed values and their statistics (:func:`dropkit.experiment.stats.describe`:
mean, sample standard deviation, 95% t-interval), ``"headline"`` (the key of
the number the table leads with, and its label), ``"seeds"`` and
``"dataset"``; and calls the ``dropkit_study_end`` hook (the plots plugin
draws the mean curves with the spread over seeds shaded).

Resuming (``resume=True``) continues each run from its checkpoint; finished
runs are only read back.

Examples
--------
>>> import tempfile
>>> from dropkit.experiment.data import load_dataset
>>> from dropkit.experiment.train import TrainConfig
>>> plan = StudyPlan(TrainConfig(epochs=1, hidden=(8,)), ("standard", "dropout"), (0, 1))
>>> out = tempfile.mkdtemp()
>>> runs = run_study(plan, load_dataset(train_size=200), out, jobs=1)
>>> sorted(runs), sorted(runs["dropout"])
(['dropout', 'standard'], [0, 1])
>>> sorted(json.load(open(f"{out}/summary.json")))
['dataset', 'dropout', 'headline', 'methods', 'seeds', 'standard']
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pluggy

from .checkpoint import CHECKPOINT_NAME, atomic_write_text
from .data import Dataset
from .methods import METHODS, OPTIONAL_DEFAULTS, check_activation, noise_layer
from .plugins import new_plugin_manager
from .result import headline
from .rundir import RunConfigError, RunLock, is_held_here
from .split import validation_split
from .stats import describe
from .threads import (
    USER_VARIABLES,
    ThreadChoice,
    available_cores,
    choose_threads,
    step_flops,
)
from .train import TrainConfig, TrainingDivergedError, TrainResult, train

__all__ = [
    "STATS_KEYS",
    "STUDY_NAME",
    "StudyPlan",
    "Task",
    "dataset_entry",
    "format_study_table",
    "progress_printer",
    "read_study_plan",
    "run_folder",
    "run_study",
    "run_tasks",
    "run_tasks_shown",
    "runs_by_method",
    "study_summary",
    "thread_limits",
    "write_study_files",
]

#: The study's plan file in its folder.
STUDY_NAME = "study.json"
#: The per-run values whose statistics over seeds ``summary.json`` gives (those a run has:
#: without a validation set, ``test_acc_at_best_val`` is None and has none).
STATS_KEYS = (
    "test_acc_at_best_val",
    "best_test_acc",
    "final_test_acc",
    "final_gap",
    "best_train_acc",
)
#: The variables that size the thread pools of BLAS, OpenMP and Numba in a worker.
THREAD_VARIABLES = (*USER_VARIABLES, "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass(frozen=True)
class StudyPlan:
    """What a study trains: ``config`` for every method and seed.

    Parameters
    ----------
    config : TrainConfig
        The base configuration (its ``seed``, ``noise`` and ``activation`` are
        replaced per run; ``p_hidden``/``p_input`` are 0 for "standard").
    methods : sequence of str
        Names in :data:`dropkit.experiment.methods.METHODS`.
    seeds : sequence of int
        Distinct seeds, each a whole comparison.
    activation : {"relu", "selu"}
        The activation of the methods that do not need their own (alpha: SELU).

    Examples
    --------
    >>> plan = StudyPlan(TrainConfig(), ("standard", "dropout"), (3, 4), activation="selu")
    >>> [(s, m, c.activation, c.p_hidden) for (s, m), c in plan.configs().items()][:3]
    [(3, 'standard', 'selu', 0.0), (3, 'dropout', 'selu', 0.5), (4, 'standard', 'selu', 0.0)]
    """

    config: TrainConfig
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    activation: str = "relu"

    def __post_init__(self) -> None:
        put = object.__setattr__
        if not isinstance(self.config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {self.config!r}")
        put(self, "methods", tuple(self.methods))
        put(self, "seeds", tuple(self.seeds))
        if not self.methods:
            raise ValueError(f"a study needs at least one method among {', '.join(METHODS)}")
        for name in self.methods:
            if name not in METHODS:
                raise ValueError(f"unknown method {name!r}; the methods are {', '.join(METHODS)}")
            noise_layer(METHODS[name].noise, method=name)
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"each method may be listed once, got {list(self.methods)}")
        if not self.seeds:
            raise ValueError("a study needs at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"the seeds must be distinct, got {list(self.seeds)}")
        check_activation(self.activation)
        self.configs()  # every run's configuration is valid

    def run_config(self, method: str, seed: int) -> TrainConfig:
        """The configuration of one run."""
        m = METHODS[method]
        changes: dict[str, Any] = {
            "seed": seed,
            "noise": m.noise,
            "activation": m.activation_for(self.activation),
        }
        if not m.drop:
            changes.update(p_hidden=0.0, p_input=0.0)
        return dataclasses.replace(self.config, **changes)

    def configs(self) -> dict[tuple[int, str], TrainConfig]:
        """Every run's configuration, seed-major: ``{(seed, method): config}``."""
        return {(s, m): self.run_config(m, s) for s in self.seeds for m in self.methods}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``study.json`` (with the command and the data options)."""
        return {
            "config": self.config.to_dict(),
            "methods": list(self.methods),
            "seeds": list(self.seeds),
            "activation": self.activation,
        }


def run_folder(out: str | Path, seed: int, method: str) -> Path:
    """Where the run of ``method`` with ``seed`` lives in the study folder ``out``."""
    return Path(out) / f"seed-{seed}" / method


# ---- running -----------------------------------------------------------------------------------


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


def _worker_threads(task: Task, data: Dataset, cap: int) -> Task:
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
    tasks = [_worker_threads(task, datasets[task.data], cap) for task in tasks]
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


# ---- a study -----------------------------------------------------------------------------------


def run_study(
    plan: StudyPlan,
    data: Dataset,
    out_dir: str | Path,
    *,
    jobs: int = 1,
    metrics: bool = True,
    plugin_manager: pluggy.PluginManager | None = None,
    progress: TextIO | None = None,
    threads: int | None = None,
) -> dict[str, dict[int, TrainResult]]:
    """Train ``plan``'s runs, write ``history.json`` and ``summary.json``, call the hook.

    Returns ``{method: {seed: result}}``. Existing checkpoints are continued
    (a study is resumed by running it again). ``progress``: a stream for the
    study's progress (:func:`run_tasks_shown`). Holds ``out_dir``'s
    :class:`~dropkit.experiment.rundir.RunLock` (unless this thread already does);
    writes ``study.json`` if absent.
    ``threads``: every run's BLAS threads (None: chosen per run, see :func:`run_tasks`).
    """
    out = Path(out_dir)
    pm = plugin_manager if plugin_manager is not None else new_plugin_manager()
    lock = None if is_held_here(out) else RunLock(out).acquire()
    try:
        if not (out / STUDY_NAME).exists():
            doc = {"command": "compare", **plan.to_dict(), "data": {}}
            atomic_write_text(out / STUDY_NAME, json.dumps(doc, indent=2))
        tasks = [
            Task("data", f"seed-{s}/{m}", run_folder(out, s, m), cfg, threads)
            for (s, m), cfg in plan.configs().items()
        ]
        results = run_tasks_shown(
            tasks,
            {"data": data},
            progress,
            jobs=jobs,
            metrics=metrics,
            plugin_manager=pm,
        )
        runs = runs_by_method(plan, results)
        write_study_files(out, plan, runs, data, pm)
        return runs
    finally:
        if lock is not None:
            lock.release()


def runs_by_method(
    plan: StudyPlan, results: list[TrainResult]
) -> dict[str, dict[int, TrainResult]]:
    """``{method: {seed: result}}`` from the results in the order of :meth:`StudyPlan.configs`."""
    runs: dict[str, dict[int, TrainResult]] = {m: {} for m in plan.methods}
    for ((seed, method), _), result in zip(plan.configs().items(), results, strict=True):
        runs[method][seed] = result
    return runs


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


def dataset_entry(data: Dataset, val_size: int | float = 0) -> dict[str, Any]:
    """The ``"dataset"`` entry of ``summary.json``.

    ``n_train`` counts the training examples given (``--train-size``);
    ``n_val`` those of them held out for validation (``val_size``).
    """
    return {
        "name": data.name,
        "n_train": int(data.x_train.shape[0]),
        "n_val": len(validation_split(data.y_train, val_size).val),
        "n_test": int(data.x_test.shape[0]),
        "n_features": data.n_features,
        "n_classes": data.n_classes,
    }


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seed_mean(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Today's summary keys, with each numeric value averaged over the seeds.

    Values that are not numbers in every seed (the config, the split, the
    thread choice, None where a run has no validation set) are the first seed's.
    """
    mean: dict[str, Any] = {}
    for key, first in summaries[0].items():
        values = [s[key] for s in summaries]
        same = all(v == first for v in values)
        if key == "config" or (key == "epochs" and same) or not all(map(_number, values)):
            mean[key] = first
        else:
            mean[key] = sum(values) / len(values)
    return mean


def study_summary(
    plan: StudyPlan, runs: dict[str, dict[int, TrainResult]], data: Dataset
) -> dict[str, Any]:
    """The contents of ``summary.json`` (see the module's description).

    A method's top-level entry has the keys of
    :meth:`~dropkit.experiment.train.TrainResult.summary`, each the mean over the seeds
    (``config``: the first seed's). A method's ``stats`` has the keys of
    :data:`STATS_KEYS` its runs have values for.
    """
    summary: dict[str, Any] = {}
    methods: dict[str, Any] = {}
    for method in plan.methods:
        per_seed = {seed: runs[method][seed].summary() for seed in plan.seeds}
        summaries = list(per_seed.values())
        summary[method] = _seed_mean(summaries)
        m = METHODS[method]
        methods[method] = {
            "description": m.description,
            "layer": m.layer if m.drop else None,
            "activation": m.activation_for(plan.activation),
            "stats": {
                key: describe([s[key] for s in summaries])
                for key in STATS_KEYS
                if all(s[key] is not None for s in summaries)
            },
            "per_seed": {
                str(seed): {k: v for k, v in s.items() if k != "config"}
                for seed, s in per_seed.items()
            },
            "config": summaries[0]["config"],
        }
    summary["methods"] = methods
    key, label = headline(summary[plan.methods[0]])
    summary["headline"] = {"key": key, "label": label}
    summary["seeds"] = list(plan.seeds)
    summary["dataset"] = dataset_entry(data, plan.config.val_size)
    return summary


def write_study_files(
    out: Path,
    plan: StudyPlan,
    runs: dict[str, dict[int, TrainResult]],
    data: Dataset,
    pm: pluggy.PluginManager,
) -> dict[str, Any]:
    """Write ``history.json`` and ``summary.json`` into ``out``; call ``dropkit_study_end``."""
    history = {m: {str(s): r.history for s, r in per.items()} for m, per in runs.items()}
    summary = study_summary(plan, runs, data)
    atomic_write_text(out / "history.json", json.dumps(history))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    pm.hook.dropkit_study_end(out_dir=out, runs=runs)
    return summary


def _pm(value: float | None, spread: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.2f}" + (f" ± {spread * 100:.2f}" if spread is not None else "")


def _interval(ci: list[float] | None) -> str:
    return "n/a (1 seed)" if ci is None else f"[{ci[0] * 100:.2f}, {ci[1] * 100:.2f}]"


def _headline_key(summary: dict[str, Any]) -> tuple[str, str]:
    """The headline's key and label (studies written before ``"headline"``: best test)."""
    entry = summary.get("headline") or {}
    return entry.get("key", "best_test_acc"), entry.get("label", "best test acc")


def format_study_table(summary: dict[str, Any], stream: TextIO = sys.stdout) -> None:
    """Print a study's table: per method, the headline test accuracy, the others, the final gap.

    The headline is the test accuracy at the best validation epoch (mean ±
    sample standard deviation over the seeds, and the 95% t-interval of the
    mean), or without a validation set the best test accuracy, labelled as
    selected on test. Then the final test accuracy, the best test accuracy
    (selected on test, as the source article), and the final train-test gap
    with its interval. Accuracies in percent, the gap in percentage points.
    """
    methods = summary["methods"]
    cfg = max((m["config"] for m in methods.values()), key=lambda c: c["p_hidden"])
    d = summary["dataset"]
    layers = "-".join(str(s) for s in (d["n_features"], *cfg["hidden"], d["n_classes"]))
    seeds = summary["seeds"]
    key, label = _headline_key(summary)
    n_val = d.get("n_val", 0)
    held = f" ({n_val} of them held out for validation)" if n_val else ""
    print(
        f"\nDropout study: {d['name']}, {d['n_train']} train{held} / {d['n_test']} test, layers "
        f"{layers}, {cfg['epochs']} epochs, {len(seeds)} seed{'s' * (len(seeds) > 1)} "
        f"({', '.join(str(s) for s in seeds)}), p_hidden={cfg['p_hidden']}",
        file=stream,
    )
    header = (
        "method",
        "activation",
        f"{label} % (mean ± std)",
        "95% interval",
        "final test acc %",
        "best test acc % (selected on test, as the article)",
        "final train-test gap (points)",
        "95% interval",
    )
    rows = [header]
    for name, m in methods.items():
        stats = m["stats"]
        acc, gap = stats[key], stats["final_gap"]
        final, best = stats.get("final_test_acc"), stats.get("best_test_acc")
        rows.append(
            (
                name,
                m["activation"],
                _pm(acc["mean"], acc["std"]),
                _interval(acc["ci95"]),
                _pm(final["mean"], final["std"]) if final else "n/a",
                _pm(best["mean"], best["std"]) if best else "n/a",
                _pm(gap["mean"], gap["std"]),
                _interval(gap["ci95"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        print(line.rstrip(), file=stream)
    if key == "best_test_acc":
        print(
            "no validation set (--val-size 0): every accuracy above was selected on the test set",
            file=stream,
        )


# ---- study.json --------------------------------------------------------------------------------


def read_study_plan(folder: str | Path) -> tuple[dict[str, Any], StudyPlan]:
    """Read and check ``folder/study.json``: the document and its plan.

    Raises
    ------
    RunConfigError
        The file is not what dropkit writes (the message names it and the key).
    """
    path = Path(folder) / STUDY_NAME
    fix = "it was left as is: fix it, or start a new study in another --out folder"
    try:
        doc = json.loads(path.read_bytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunConfigError(f"{path} is not valid JSON ({exc}); {fix}") from None
    want = {"command", "config", "methods", "seeds", "activation", "data"}
    if not isinstance(doc, dict) or not want <= set(doc):
        missing = sorted(want - set(doc)) if isinstance(doc, dict) else sorted(want)
        raise RunConfigError(f"{path}: missing keys {missing}; {fix}")
    checks = {
        "command": lambda v: v in ("compare", "sweep"),
        "config": lambda v: isinstance(v, dict),
        "methods": lambda v: isinstance(v, list) and all(isinstance(m, str) for m in v),
        "seeds": lambda v: isinstance(v, list) and all(type(s) is int for s in v),
        "activation": lambda v: isinstance(v, str),
        "data": lambda v: isinstance(v, dict),
    }
    for key, ok in checks.items():
        if not ok(doc[key]):
            raise RunConfigError(f"{path}: {key!r} is damaged: {doc[key]!r}; {fix}")
    try:
        # studies made before a key existed ran with the value its absence means
        config = TrainConfig.from_dict({**OPTIONAL_DEFAULTS, **doc["config"]})
        plan = StudyPlan(config, doc["methods"], doc["seeds"], doc["activation"])
    except (TypeError, ValueError) as exc:
        raise RunConfigError(f"{path}: {exc}; {fix}") from None
    return doc, plan
