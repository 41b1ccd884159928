"""What a study writes at its end, and its table.

``history.json`` (every run's epochs) and ``summary.json``: a top-level entry
per method with the seed means of
:meth:`~dropkit.experiment.train.TrainResult.summary`'s values (today's
``{"standard": ..., "dropout": ...}`` shape), ``"methods"`` with every
method's per-seed values and their statistics
(:func:`dropkit.experiment.stats.describe`: mean, sample standard deviation,
95% t-interval), ``"headline"`` (the key of the number the table leads with,
and its label), ``"seeds"`` and ``"dataset"``; ``runs.csv``, one row per
run (:mod:`~dropkit.experiment.study_table`); then the ``dropkit_study_end``
hook is called (the plots plugin draws the mean curves with the spread over
seeds shaded). :func:`format_study_table` prints the table from
``summary.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import pluggy

from .checkpoint import atomic_write_text
from .data import Dataset
from .methods import METHODS
from .result import headline
from .split import dataset_entry
from .stats import describe
from .train import TrainResult

if TYPE_CHECKING:
    from .study import StudyPlan

__all__ = [
    "STATS_KEYS",
    "dataset_entry",
    "format_study_table",
    "study_summary",
    "write_study_files",
]


#: The per-run values whose statistics over seeds ``summary.json`` gives (those a run has:
#: without a validation set, ``test_acc_at_best_val`` is None and has none).
STATS_KEYS = (
    "test_acc_at_best_val",
    "best_test_acc",
    "final_test_acc",
    "final_gap",
    "best_train_acc",
)


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
    """Write ``history.json``, ``summary.json`` and ``runs.csv`` into ``out``; call the hook.

    ``runs.csv``: one row per run (:mod:`~dropkit.experiment.study_table`);
    the hook is ``dropkit_study_end``.
    """
    from .study_table import run_rows, write_table

    history = {m: {str(s): r.history for s, r in per.items()} for m, per in runs.items()}
    summary = study_summary(plan, runs, data)
    atomic_write_text(out / "history.json", json.dumps(history))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    write_table(out, run_rows(runs, data))
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
