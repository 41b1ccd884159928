"""A study's results as one tidy table: ``runs.csv``, one row per run.

Each row has the run's place in the study (the sweep's axes, when there are
any, then ``method`` and ``seed``), every hyperparameter of its
configuration, the data it saw (``n_train`` training examples given,
``n_val`` of them held out for validation, ``n_test``), its
selected and final accuracies with their epochs (see
:meth:`~dropkit.experiment.train.TrainResult.summary`), its training time
and thread choice, and the versions it ran with: a file pandas or Polars
reads as it is (``pandas.read_csv(".../runs.csv")``), without our JSON.

Examples
--------
>>> import io
>>> rows = [{"method": "dropout", "seed": 0, "hidden": (8,), "best_val_epoch": None}]
>>> buffer = io.StringIO()
>>> write_rows(buffer, rows)
>>> print(buffer.getvalue().strip())
method,seed,hidden,best_val_epoch
dropout,0,8,
"""

from __future__ import annotations

import csv
import io
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from .checkpoint import atomic_write_text
from .data import Dataset
from .split import dataset_entry
from .train import TrainResult

__all__ = ["RESULT_COLUMNS", "TABLE_NAME", "run_rows", "versions", "write_rows", "write_table"]

#: The table's file in a study or sweep folder.
TABLE_NAME = "runs.csv"
#: The values of each run's summary the table has, in its order.
RESULT_COLUMNS = (
    "best_val_epoch",
    "best_val_acc",
    "test_acc_at_best_val",
    "best_test_epoch",
    "best_test_acc",
    "best_train_epoch",
    "best_train_acc",
    "final_train_acc",
    "final_val_acc",
    "final_test_acc",
    "final_test_loss",
    "final_gap",
    "selection",
    "epochs",
    "seconds",
)


def versions(backend: str | None) -> dict[str, str]:
    """The versions a study's runs ran with (dropkit, NumPy, Python) and the backend's name."""
    import numpy

    from .._version import __version__
    from ..selection import get_backend

    try:
        name = get_backend(backend).name
    except (ValueError, RuntimeError, ImportError):
        name = str(backend)
    return {
        "backend_used": name,
        "dropkit_version": __version__,
        "numpy_version": numpy.__version__,
        "python_version": platform.python_version(),
    }


def run_rows(
    runs: Mapping[str, Mapping[int, TrainResult]],
    data: Dataset,
    *,
    point: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per run of ``{method: {seed: result}}`` (``point``: the sweep's axis values first).

    Examples
    --------
    >>> from dropkit.experiment.data import load_dataset
    >>> from dropkit.experiment.train import TrainConfig, train
    >>> data = load_dataset(train_size=100)
    >>> result = train(TrainConfig(epochs=1, hidden=(8,)), data)
    >>> row = run_rows({"dropout": {0: result}}, data, point={"p_hidden": 0.5})[0]
    >>> list(row)[:4], row["n_train"], row["n_val"], row["epochs"]
    (['p_hidden', 'method', 'seed', 'dataset'], 100, 10, 1)
    """
    rows = []
    for method, per_seed in runs.items():
        for seed, result in per_seed.items():
            summary = result.summary()
            config = summary["config"]
            entry = dataset_entry(data, config.get("val_size", 0))
            threads = summary["threads"] or {}
            row: dict[str, Any] = dict(point or {})
            row.update(method=method, seed=seed)
            row.update({k: v for k, v in config.items() if k not in row and k != "seed"})
            row.update({k: entry[k] for k in ("n_train", "n_val", "n_test")})
            row.update({k: summary[k] for k in RESULT_COLUMNS})
            row["blas_threads"] = threads.get("threads")
            row.update(versions(config.get("backend")))
            rows.append(row)
    return rows


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return value


def write_rows(stream: TextIO, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``rows`` as CSV (the first row's keys, then any new ones, as the header)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    writer = csv.DictWriter(stream, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})


def write_table(out: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``out/runs.csv`` (atomically); return its path."""
    buffer = io.StringIO()
    write_rows(buffer, rows)
    path = Path(out) / TABLE_NAME
    atomic_write_text(path, buffer.getvalue())
    return path
