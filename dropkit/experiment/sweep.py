"""A study per training-set size: how each method's benefit changes with the data.

``dropkit sweep --train-size 500,1000,2000,4000 --seeds 3`` runs the study of
:mod:`dropkit.experiment.study` on the first ``n`` training examples for each ``n``,
every (size, seed, method) run in its own folder
``<out>/size-<n>/seed-<s>/<method>/`` and all of them on one Dask cluster.
Each ``size-<n>`` folder gets the study's ``summary.json``,
``history.json`` (and the plots plugin's ``curves.png``); the sweep's folder
gets ``sweep.json`` and ``sweep.md``: one row per (size, method) with the
test accuracy at the best validation epoch (the headline; each size's
validation examples are held out of its own ``n`` training examples), the
best test accuracy (selected on test, as the source article), the final test
accuracy and the final train-test gap over the seeds (mean, sample standard
deviation, 95% t-interval), and the ``dropkit_sweep_end`` hook is called (the
plots plugin draws ``sweep.png``, with error bars). Its ``runs.csv`` has one
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

import json
import sys
from collections.abc import Sequence
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

__all__ = ["DEFAULT_SIZES", "format_sweep_table", "parse_train_sizes", "run_sweep", "size_folder"]

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


def size_folder(out: str | Path, size: int) -> Path:
    """The study folder of one train size."""
    return Path(out) / f"size-{size}"


def sweep_tasks(
    plan: StudyPlan, sizes: Sequence[int], out: str | Path, threads: int | None = None
) -> list[Task]:
    """Every run of the sweep, size-major then seed-major."""
    return [
        Task(
            f"size-{n}",
            f"size-{n}/seed-{s}/{m}",
            run_folder(size_folder(out, n), s, m),
            cfg,
            threads,
        )
        for n in sizes
        for (s, m), cfg in plan.configs().items()
    ]


def run_sweep(
    plan: StudyPlan,
    datasets: dict[int, Dataset],
    out_dir: str | Path,
    *,
    jobs: int = 1,
    metrics: bool = True,
    plugin_manager: pluggy.PluginManager | None = None,
    progress: TextIO | None = None,
    threads: int | None = None,
    cluster: str | None = None,
) -> list[dict[str, Any]]:
    """Run ``plan`` on each dataset (``{train size: data}``); write the files; return the table.

    Existing checkpoints are continued. Holds ``out_dir``'s
    :class:`~dropkit.experiment.rundir.RunLock` (unless this thread already does).
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
    sizes = list(datasets)
    pm = plugin_manager if plugin_manager is not None else new_plugin_manager()
    lock = None if is_held_here(out) else RunLock(out).acquire()
    try:
        if not (out / STUDY_NAME).exists():
            doc = {"command": "sweep", **plan.to_dict(), "data": {}, "train_sizes": sizes}
            atomic_write_text(out / STUDY_NAME, json.dumps(doc, indent=2))
        tasks = sweep_tasks(plan, sizes, out, threads)
        results = run_tasks_shown(
            tasks,
            {f"size-{n}": data for n, data in datasets.items()},
            progress,
            jobs=jobs,
            metrics=metrics,
            plugin_manager=pm,
            cluster=cluster,
            watch=study_watch(out),
            resume=f"dropkit sweep --resume {out}",
        )
        per_size = len(results) // len(sizes)
        table = []
        rows: list[dict[str, Any]] = []
        key = "best_test_acc"
        for k, n in enumerate(sizes):
            runs = runs_by_method(plan, results[k * per_size : (k + 1) * per_size])
            summary = write_study_files(size_folder(out, n), plan, runs, datasets[n], pm)
            rows += run_rows(runs, datasets[n], point={"train_size": n})
            key = summary["headline"]["key"]
            for method in plan.methods:
                stats = summary["methods"][method]["stats"]
                row = {"train_size": n, "method": method}
                row.update({c: stats[c] for c in _COLUMNS if c in stats})
                table.append(row)
        first = datasets[sizes[0]]
        doc = {
            "dataset": first.name,
            "n_test": int(first.x_test.shape[0]),
            "train_sizes": sizes,
            "methods": list(plan.methods),
            "seeds": list(plan.seeds),
            "config": plan.config.to_dict(),
            "activation": plan.activation,
            "headline": key,
            "table": table,
        }
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


def _markdown(doc: dict[str, Any]) -> str:
    seeds = doc["seeds"]
    cfg = doc["config"]
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
        f"{cfg['epochs']} epochs, p_hidden={cfg['p_hidden']}, {len(seeds)} seed"
        f"{'s' * (len(seeds) > 1)} ({', '.join(str(s) for s in seeds)}); {held}; mean ± "
        "sample std over seeds, 95% t-interval of the mean.",
        "",
        f"| train size | method | {label} | 95% interval | final test acc (%) | best test acc "
        "(%, selected on test, as the article) | final train-test gap (points) | 95% interval |",
        "|---:|---|---:|---|---:|---:|---:|---|",
    ]
    for row in doc["table"]:
        acc, gap = row[key], row["final_gap"]
        final, best = row.get("final_test_acc"), row.get("best_test_acc")
        lines.append(
            f"| {row['train_size']} | {row['method']} | {_cell(acc)} | {_ci(acc)} | "
            f"{_cell(final) if final else 'n/a'} | {_cell(best) if best else 'n/a'} | "
            f"{_cell(gap)} | {_ci(gap)} |"
        )
    return "\n".join(lines) + "\n"


def format_sweep_table(out_dir: str | Path, stream: TextIO = sys.stdout) -> None:
    """Print the sweep's table (``sweep.md``) from its folder."""
    print("\n" + (Path(out_dir) / "sweep.md").read_text(), end="", file=stream)
