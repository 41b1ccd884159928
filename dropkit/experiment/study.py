"""Multi-method, multi-seed comparisons: independent runs in parallel processes, aggregated.

A study trains every method of :mod:`dropkit.experiment.methods` it is given for every
seed: each (seed, method) pair is an independent :func:`~dropkit.experiment.train.train`
run in its own folder ``<out>/seed-<s>/<method>/`` (checkpoint, metrics), so
all methods of one seed start from the same weights and see the same batches.
The runs go to Dask distributed (:mod:`~dropkit.experiment.cluster`: a
local cluster of ``jobs`` worker processes, each with its share of the
cores, or the workers of the scheduler at ``cluster``; with ``jobs=1`` and
no cluster, one after the other in this process). A run's result does not
depend on where it ran, nor on its thread count.

Every run of a study holds out the same validation examples (the split
depends on the data and ``val_size``, not on the seed), and its headline
number is the test accuracy at its best validation epoch
(``test_acc_at_best_val``); ``best_test_acc``, selected on the test set as
the source article does, is kept beside it. Without a validation set
(``val_size=0``) the headline is ``best_test_acc``, and the table says it
was selected on test.

The study writes ``study.json`` (its plan: base configuration, methods, seeds,
activation, data), then, at the end, ``history.json`` and ``summary.json``
(:mod:`~dropkit.experiment.study_report`, which also prints the table), and
calls the ``dropkit_study_end`` hook (the plots plugin draws the mean curves
with the spread over seeds shaded).

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

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pluggy

from .checkpoint import atomic_write_text
from .cluster import study_watch
from .config import check_seed
from .data import Dataset
from .methods import METHODS, OPTIONAL_DEFAULTS, check_activation, noise_layer
from .plugins import new_plugin_manager
from .rundir import RunConfigError, RunLock, is_held_here
from .runfiles import RunFileError, read_run_bytes
from .study_report import (
    STATS_KEYS,
    dataset_entry,
    format_study_table,
    study_summary,
    write_study_files,
)
from .tasks import Task, progress_printer, run_tasks, run_tasks_shown, thread_limits
from .train import TrainConfig, TrainResult

__all__ = [
    "MAX_SEEDS",
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
#: The most seeds a study takes (``--seeds``): each seed is a whole comparison.
MAX_SEEDS = 100_000


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
        if len(self.seeds) > MAX_SEEDS:
            raise ValueError(
                f"a study takes at most {MAX_SEEDS} seeds (each is a whole comparison), got "
                f"{len(self.seeds)}; use fewer seeds"
            )
        for seed in self.seeds:
            check_seed(seed)
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"the seeds must be distinct, got {list(self.seeds)}")
        check_activation(self.activation)
        self._method_configs  # noqa: B018 - every method's configuration is valid, checked now

    @functools.cached_property
    def _method_configs(self) -> dict[str, TrainConfig]:
        """Each method's configuration (checked, every option against the method), seed aside."""
        configs = {}
        for method in self.methods:
            m = METHODS[method]
            changes: dict[str, Any] = {
                "noise": m.noise,
                "activation": m.activation_for(self.activation),
            }
            if not m.drop:
                changes.update(p_hidden=0.0, p_input=0.0)
            try:
                configs[method] = dataclasses.replace(self.config, **changes)
            except ValueError as exc:
                raise ValueError(f"{exc} (in a study of {', '.join(self.methods)})") from None
        return configs

    def run_config(self, method: str, seed: int) -> TrainConfig:
        """The configuration of one run."""
        return self._method_configs[method].with_seed(seed)

    @functools.cached_property
    def _configs(self) -> dict[tuple[int, str], TrainConfig]:
        per_method = self._method_configs
        return {(s, m): per_method[m].with_seed(s) for s in self.seeds for m in self.methods}

    def configs(self) -> dict[tuple[int, str], TrainConfig]:
        """Every run's configuration, seed-major: ``{(seed, method): config}``.

        Planning is linear in the number of runs: each method's configuration is
        checked once, each run's differs from it by its seed alone.
        """
        return dict(self._configs)

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
    cluster: str | None = None,
) -> dict[str, dict[int, TrainResult]]:
    """Train ``plan``'s runs, write ``history.json`` and ``summary.json``, call the hook.

    Returns ``{method: {seed: result}}``. Existing checkpoints are continued
    (a study is resumed by running it again). ``progress``: a stream for the
    study's progress (:func:`run_tasks_shown`). Holds ``out_dir``'s
    :class:`~dropkit.experiment.rundir.RunLock` (unless this thread already does);
    writes ``study.json`` if absent.
    ``threads``: every run's BLAS threads (None: chosen per run, see :func:`run_tasks`).
    ``jobs``: the local cluster's workers (1: every run here, one by one);
    ``cluster``: the address of an existing Dask scheduler (``tcp://HOST:PORT``)
    whose workers train the runs instead (they must see ``out_dir`` at the same path).
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
            cluster=cluster,
            watch=study_watch(out),
            resume=f"dropkit compare --resume {out}",
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
        doc = json.loads(read_run_bytes(path).decode())
    except RunFileError as exc:
        raise RunConfigError(
            f"{exc}. {STUDY_NAME} holds the study's plan: put it back as a regular file to "
            "resume the study, or start a new study in another --out folder"
        ) from None
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
    data = doc["data"]
    if not (data.get("data_dir") is None or isinstance(data.get("data_dir"), str)):
        raise RunConfigError(
            f"{path}: 'data.data_dir' must be a folder name (a string) or null, got "
            f"{data['data_dir']!r}; {fix}"
        )
    size = data.get("train_size")
    if not (size is None or (type(size) is int and size > 0)):
        raise RunConfigError(
            f"{path}: 'data.train_size' must be a positive integer or null, got {size!r}; {fix}"
        )
    try:
        # studies made before a key existed ran with the value its absence means
        config = TrainConfig.from_dict({**OPTIONAL_DEFAULTS, **doc["config"]})
    except (TypeError, ValueError) as exc:
        raise RunConfigError(f"{path}: 'config' is damaged: {exc}; {fix}") from None
    try:
        plan = StudyPlan(config, doc["methods"], doc["seeds"], doc["activation"])
    except (TypeError, ValueError) as exc:
        # e.g. a study made before every option was checked against every method: its
        # finished runs are sound, but the plan cannot go on as it is
        raise RunConfigError(
            f"{path}: this study cannot go on: {exc}. Nothing was changed and its finished "
            f"runs are kept in {Path(folder)}/seed-*/; start a new study in another --out "
            "folder with options that suit every method (or without that method)"
        ) from None
    return doc, plan
