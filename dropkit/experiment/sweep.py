"""A study per point of one or two axes: how each method changes with p, lr, decay or data.

``dropkit sweep --train-size 500,1000,2000,4000 --seeds 3`` runs the study of
:mod:`dropkit.experiment.study` on the first ``n`` training examples for each ``n``,
every (size, seed, method) run in its own folder
``<out>/size-<n>/seed-<s>/<method>/`` and all of them on one Dask cluster.
The axes (:data:`AXES`) are ``--train-size``, ``--p-hidden``, ``--lr`` and
``--weight-decay``: one or two of them given with several values
(``--p-hidden 0.1,0.3,0.5,0.7 --lr 0.01,0.05``) make the grid, each point
a study in its folder (``p-0.3_lr-0.01``: the axes' short names and values).
Each point's folder gets the study's ``summary.json``,
``history.json`` (and the plots plugin's ``curves.png``); the sweep's folder
gets ``sweep.json`` and ``sweep.md``: one row per (size, method) with the
test accuracy at the best validation epoch (the headline; each size's
validation examples are held out of its own ``n`` training examples), the
best test accuracy (selected on test, as the source article), the final test
accuracy and the final train-test gap over the seeds (mean, sample standard
deviation, 95% t-interval), and the ``dropkit_sweep_end`` hook is called (the
plots plugin draws ``sweep.png``: error bars against one axis, a heat map for
two). Its ``runs.csv`` has one
row per run of every size (:mod:`~dropkit.experiment.study_table`). ``sweep.json`` names the
headline's key in ``"headline"``; without a validation set (``val_size=0``)
it is ``best_test_acc``, and the table says it was selected on test.

Examples
--------
>>> parse_train_sizes("500,1000")
[500, 1000]
>>> parse_train_sizes("500,0")
Traceback (most recent call last):
...
ValueError: --train-size: sizes must be positive integers like 500,1000,2000,4000, got '500,0'
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import pluggy

from .checkpoint import atomic_write_text
from .cluster import study_watch
from .data import Dataset
from .plugins import new_plugin_manager
from .rundir import RunLock, is_held_here
from .study import STUDY_NAME, StudyPlan, run_folder, runs_by_method
from .study_report import write_study_files
from .study_table import run_rows, write_table
from .tasks import Task, run_tasks_shown
from .train import TrainConfig

__all__ = [
    "AXES",
    "DEFAULT_SIZES",
    "format_sweep_table",
    "grid_points",
    "parse_axis",
    "parse_train_sizes",
    "point_folder",
    "run_sweep",
    "size_folder",
]

#: The options a sweep may vary, and each one's short name in folder names.
AXES = {"train_size": "size", "p_hidden": "p", "lr": "lr", "weight_decay": "wd"}
#: The most axes of one sweep (a table, or a heat map).
MAX_AXES = 2

#: The sizes of ``dropkit sweep`` without ``--train-size``.
DEFAULT_SIZES = (500, 1000, 2000, 4000)
#: The statistics of a sweep's rows (those the runs have values for).
_COLUMNS = ("test_acc_at_best_val", "best_test_acc", "final_test_acc", "final_gap")


def parse_train_sizes(text: str) -> list[int]:
    """The sizes of a comma-separated list: positive integers, each once.

    Examples
    --------
    >>> parse_train_sizes("1000,1000")
    Traceback (most recent call last):
    ...
    ValueError: --train-size: 1000 is listed twice; list each size once
    """
    problem = f"--train-size: sizes must be positive integers like 500,1000,2000,4000, got {text!r}"
    try:
        sizes = [int(part) for part in str(text).split(",")]
    except ValueError:
        raise ValueError(problem) from None
    if not sizes or min(sizes) < 1:
        raise ValueError(problem)
    for i, n in enumerate(sizes):
        if n in sizes[:i]:
            raise ValueError(f"--train-size: {n} is listed twice; list each size once")
    return sizes


def parse_axis(flag: str, text: str) -> list[float]:
    """The values of a comma-separated list for ``flag`` (``--p-hidden``): finite, each once.

    Examples
    --------
    >>> parse_axis("--p-hidden", "0.1,0.3,0.5")
    [0.1, 0.3, 0.5]
    >>> parse_axis("--lr", "0.1,fast")
    Traceback (most recent call last):
    ...
    ValueError: --lr: expected comma-separated finite numbers like 0.01,0.05, got '0.1,fast'
    """
    problem = f"{flag}: expected comma-separated finite numbers like 0.01,0.05, got {text!r}"
    try:
        values = [float(part) for part in str(text).split(",")]
    except ValueError:
        raise ValueError(problem) from None
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(problem)
    for i, v in enumerate(values):
        if v in values[:i]:
            raise ValueError(f"{flag}: {v} is listed twice; list each value once")
    return values


def grid_points(axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every point of the grid, the first axis major.

    Examples
    --------
    >>> grid_points({"p_hidden": [0.1, 0.5], "lr": [0.01]})
    [{'p_hidden': 0.1, 'lr': 0.01}, {'p_hidden': 0.5, 'lr': 0.01}]
    """
    if not 1 <= len(axes) <= MAX_AXES or not set(axes) <= set(AXES):
        raise ValueError(
            f"a sweep has one or two axes among {', '.join(AXES)}, got {', '.join(axes) or 'none'}"
        )
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


def point_folder(out: str | Path, point: dict[str, Any]) -> Path:
    """The study folder of one point: ``size-500``, ``p-0.3_lr-0.01``.

    Examples
    --------
    >>> point_folder("sw", {"p_hidden": 0.3, "lr": 0.01}).as_posix()
    'sw/p-0.3_lr-0.01'
    """
    return Path(out) / "_".join(f"{AXES[k]}-{v}" for k, v in point.items())


def size_folder(out: str | Path, size: int) -> Path:
    """The study folder of one train size (of a sweep over the train size alone)."""
    return point_folder(out, {"train_size": size})


def point_plan(plan: StudyPlan, point: dict[str, Any]) -> StudyPlan:
    """``plan`` with the point's hyperparameters (its train size is the data's)."""
    changes = {k: v for k, v in point.items() if k != "train_size"}
    if not changes:
        return plan
    config = dataclasses.replace(plan.config, **changes)
    return StudyPlan(config, plan.methods, plan.seeds, plan.activation)


def _data_key(point: dict[str, Any]) -> str:
    return f"size-{point['train_size']}" if "train_size" in point else "data"


def sweep_tasks(
    plan: StudyPlan,
    points: Sequence[dict[str, Any]],
    out: str | Path,
    threads: int | None = None,
) -> tuple[list[Task], list[int]]:
    """Every run of the sweep once, and the run that serves each (point, seed, method).

    The second list has one entry per (point, seed, method), point-major then
    seed-major: the index of its task in the first. A method whose
    configuration a point does not change (``standard`` under ``--p-hidden``:
    it has no dropout to vary) would train the same run again at every point:
    it trains once, in the first such point's folder, and every point's
    summary uses that run (training is deterministic, so a second run would
    give the same result bit for bit).

    Examples
    --------
    >>> from dropkit.experiment.train import TrainConfig
    >>> plan = StudyPlan(TrainConfig(epochs=1, hidden=(8,)), ("standard", "dropout"), (0,))
    >>> tasks, slots = sweep_tasks(plan, [{"p_hidden": 0.1}, {"p_hidden": 0.5}], "sw")
    >>> [t.name for t in tasks], slots
    (['p-0.1/seed-0/standard', 'p-0.1/seed-0/dropout', 'p-0.5/seed-0/dropout'], [0, 1, 0, 2])
    """
    tasks: list[Task] = []
    slots: list[int] = []
    seen: dict[tuple[str, str, TrainConfig], int] = {}
    for point in points:
        folder = point_folder(out, point)
        for (s, m), cfg in point_plan(plan, point).configs().items():
            key = (_data_key(point), m, cfg)  # (the seed is in the configuration)
            index = seen.get(key)
            if index is None:
                index = seen[key] = len(tasks)
                run = run_folder(folder, s, m)
                tasks.append(
                    Task(_data_key(point), f"{folder.name}/seed-{s}/{m}", run, cfg, threads)
                )
            slots.append(index)
    return tasks, slots


def run_sweep(
    plan: StudyPlan,
    datasets: dict[int, Dataset] | dict[int | None, Dataset],
    out_dir: str | Path,
    *,
    axes: Mapping[str, Sequence[Any]] | None = None,
    jobs: int = 1,
    metrics: bool = True,
    plugin_manager: pluggy.PluginManager | None = None,
    progress: TextIO | None = None,
    threads: int | None = None,
    cluster: str | None = None,
) -> list[dict[str, Any]]:
    """Run ``plan`` at every point of ``axes``; write the files; return the table.

    ``datasets``: ``{train size: data}`` (``{None: data}`` when the train size
    is not an axis); ``axes``: ``{option: values}``, one or two of :data:`AXES`
    (default: the train sizes of ``datasets``). Existing checkpoints are
    continued. Holds ``out_dir``'s :class:`~dropkit.experiment.rundir.RunLock`
    (unless this thread already does).
    ``threads``: every run's BLAS threads (None: chosen per run). ``jobs`` and
    ``cluster``: where the runs train, as :func:`~dropkit.experiment.study.run_study`.

    Examples
    --------
    >>> import tempfile
    >>> from dropkit.experiment.data import load_dataset
    >>> from dropkit.experiment.train import TrainConfig
    >>> plan = StudyPlan(TrainConfig(epochs=1, hidden=(8,)), ("standard",), (0, 1))
    >>> data = {n: load_dataset(train_size=n) for n in (100, 200)}
    >>> table = run_sweep(plan, data, tempfile.mkdtemp())
    >>> [(row["train_size"], row["method"], row["test_acc_at_best_val"]["n"]) for row in table]
    [(100, 'standard', 2), (200, 'standard', 2)]
    """
    out = Path(out_dir)
    axes = {k: list(v) for k, v in (axes or {"train_size": list(datasets)}).items()}
    points = grid_points(axes)
    pm = plugin_manager if plugin_manager is not None else new_plugin_manager()
    lock = None if is_held_here(out) else RunLock(out).acquire()
    try:
        if not (out / STUDY_NAME).exists():
            doc = {"command": "sweep", **plan.to_dict(), "data": {}, "axes": axes}
            if "train_size" in axes:
                doc["train_sizes"] = axes["train_size"]
            atomic_write_text(out / STUDY_NAME, json.dumps(doc, indent=2))
        tasks, slots = sweep_tasks(plan, points, out, threads)
        by_key = {_data_key({"train_size": n} if n else {}): d for n, d in datasets.items()}
        results = run_tasks_shown(
            tasks,
            by_key,
            progress,
            jobs=jobs,
            metrics=metrics,
            plugin_manager=pm,
            cluster=cluster,
            watch=study_watch(out),
            resume=f"dropkit sweep --resume {out}",
        )
        results = [results[i] for i in slots]  # a run shared by several points, at each
        per_point = len(results) // len(points)
        table = []
        rows: list[dict[str, Any]] = []
        key = "best_test_acc"
        for k, point in enumerate(points):
            data = by_key[_data_key(point)]
            here = point_plan(plan, point)
            runs = runs_by_method(here, results[k * per_point : (k + 1) * per_point])
            summary = write_study_files(point_folder(out, point), here, runs, data, pm)
            rows += run_rows(runs, data, point=point)
            key = summary["headline"]["key"]
            for method in plan.methods:
                stats = summary["methods"][method]["stats"]
                row = {**point, "method": method}
                row.update({c: stats[c] for c in _COLUMNS if c in stats})
                table.append(row)
        first = next(iter(by_key.values()))
        doc = {
            "dataset": first.name,
            "n_test": int(first.x_test.shape[0]),
            "axes": axes,
            "methods": list(plan.methods),
            "seeds": list(plan.seeds),
            "config": plan.config.to_dict(),
            "activation": plan.activation,
            "headline": key,
            "table": table,
        }
        if "train_size" in axes:
            doc["train_sizes"] = axes["train_size"]
        atomic_write_text(out / "sweep.json", json.dumps(doc, indent=2))
        atomic_write_text(out / "sweep.md", _markdown(doc))
        write_table(out, rows)
        pm.hook.dropkit_sweep_end(out_dir=out, table=table)
        return table
    finally:
        if lock is not None:
            lock.release()


def _cell(d: dict[str, Any], unit: str = "") -> str:
    text = f"{d['mean'] * 100:.2f}"
    return text + (f" ± {d['std'] * 100:.2f}" if d["std"] is not None else "") + unit


def _ci(d: dict[str, Any]) -> str:
    ci = d["ci95"]
    return "n/a" if ci is None else f"[{ci[0] * 100:.2f}, {ci[1] * 100:.2f}]"


_TITLES = {
    "train_size": "train size",
    "p_hidden": "p_hidden",
    "lr": "lr",
    "weight_decay": "weight decay",
}


def _markdown(doc: dict[str, Any]) -> str:
    seeds = doc["seeds"]
    cfg = doc["config"]
    axes = list(doc.get("axes") or {"train_size": doc.get("train_sizes")})
    fixed = ", ".join(f"{k}={cfg[k]}" for k in ("p_hidden", "lr", "weight_decay") if k not in axes)
    key = doc.get("headline", "best_test_acc")
    val = cfg.get("val_size", 0)
    if key == "test_acc_at_best_val":
        label = "test acc at best val (%)"
        held = f"validation: val_size {val} of each train size, the same for every method and seed"
    else:
        label = "best test acc (%, selected on test)"
        held = "no validation set (val_size 0): every accuracy is selected on the test set"
    lines = [
        f"Sweep on {doc['dataset']} ({doc['n_test']} test examples): hidden {cfg['hidden']}, "
        f"{cfg['epochs']} epochs, {fixed}, {len(seeds)} seed"
        f"{'s' * (len(seeds) > 1)} ({', '.join(str(s) for s in seeds)}); {held}; mean ± "
        "sample std over seeds, 95% t-interval of the mean.",
        "",
        f"| {' | '.join(_TITLES[a] for a in axes)} | method | {label} | 95% interval | final "
        "test acc (%) | best test acc (%, selected on test, as the article) | final train-test "
        "gap (points) | 95% interval |",
        "|" + "---:|" * len(axes) + "---|---:|---|---:|---:|---:|---|",
    ]
    for row in doc["table"]:
        acc, gap = row[key], row["final_gap"]
        final, best = row.get("final_test_acc"), row.get("best_test_acc")
        lines.append(
            f"| {' | '.join(str(row[a]) for a in axes)} | {row['method']} | {_cell(acc)} | "
            f"{_ci(acc)} | "
            f"{_cell(final) if final else 'n/a'} | {_cell(best) if best else 'n/a'} | "
            f"{_cell(gap)} | {_ci(gap)} |"
        )
    return "\n".join(lines) + "\n"


def format_sweep_table(out_dir: str | Path, stream: TextIO = sys.stdout) -> None:
    """Print the sweep's table (``sweep.md``) from its folder."""
    print("\n" + (Path(out_dir) / "sweep.md").read_text(), end="", file=stream)
