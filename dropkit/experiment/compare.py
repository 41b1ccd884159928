"""The dropout experiment: the same net trained without and with dropout, compared.

Both nets start from the same weights (same seed), hold out the same
validation examples and see the same batches; only dropout differs. Results
go to an output folder: one subfolder per net (checkpoint, the best
validation epoch's ``best.npz``, metrics), ``history.json``,
``summary.json``, and whatever the plugins write there (the plots plugin:
``curves.png``).

The table leads with the test accuracy at each net's best validation epoch
(nothing in it was chosen on the test set), then the final epoch's, then the
best test accuracy over the epochs: the source article's number, selected
on the test set, labelled so.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TextIO

import pluggy

from .checkpoint import CHECKPOINT_NAME, atomic_write_text
from .data import Dataset
from .plugins import new_plugin_manager
from .result import headline
from .rundir import RunLock, is_held_here
from .study_report import dataset_entry
from .train import TrainConfig, TrainResult, train

__all__ = ["NETS", "format_table", "net_configs", "run_compare"]

NETS = ("standard", "dropout")


def net_configs(config: TrainConfig) -> dict[str, TrainConfig]:
    """The two nets' configurations: ``config`` without dropout, and ``config``.

    Examples
    --------
    >>> net_configs(TrainConfig(p_hidden=0.3))["standard"].p_hidden
    0.0
    """
    return {
        "standard": dataclasses.replace(config, p_hidden=0.0, p_input=0.0),
        "dropout": config,
    }


def run_compare(
    config: TrainConfig,
    data: Dataset,
    out_dir: str | Path,
    *,
    resume: bool = False,
    plugin_manager: pluggy.PluginManager | None = None,
    threads: int | None = None,
) -> dict[str, TrainResult]:
    """Train the standard and the dropout net; write config, history and summary.

    ``threads``: the BLAS threads of both runs (None: chosen for the net's sizes).

    Examples
    --------
    >>> import tempfile
    >>> from dropkit.experiment.data import load_dataset
    >>> out = tempfile.mkdtemp()
    >>> results = run_compare(TrainConfig(epochs=2, hidden=(16,)),
    ...                       load_dataset(train_size=300), out)
    >>> sorted(json.load(open(f"{out}/summary.json")))
    ['dataset', 'dropout', 'headline', 'standard']

    The run holds ``out_dir``'s :class:`~dropkit.experiment.rundir.RunLock` (unless this
    thread already does): another run there is refused.
    """
    out = Path(out_dir)
    lock = None if is_held_here(out) else RunLock(out).acquire()
    try:
        return _run_compare(config, data, out, resume, plugin_manager, threads)
    finally:
        if lock is not None:
            lock.release()


def _run_compare(
    config: TrainConfig,
    data: Dataset,
    out: Path,
    resume: bool,
    plugin_manager: pluggy.PluginManager | None,
    threads: int | None,
) -> dict[str, TrainResult]:
    pm = plugin_manager if plugin_manager is not None else new_plugin_manager()
    results = {}
    for name, cfg in net_configs(config).items():
        net_dir = out / name
        results[name] = train(
            cfg,
            data,
            name=name,
            out_dir=net_dir,
            resume=resume and (net_dir / CHECKPOINT_NAME).exists(),
            plugin_manager=pm,
            threads=threads,
        )
    history = {name: r.history for name, r in results.items()}
    summary: dict[str, Any] = {name: r.summary() for name, r in results.items()}
    key, label = headline(summary["dropout"])
    summary["headline"] = {"key": key, "label": label}
    summary["dataset"] = dataset_entry(data, config.val_size)
    atomic_write_text(out / "history.json", json.dumps(history))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    pm.hook.dropkit_compare_end(out_dir=out, results=results)
    return results


def format_table(results: dict[str, TrainResult], data: Dataset, stream: TextIO) -> None:
    """Print the comparison: test accuracy at the best validation epoch first.

    Columns: the test accuracy at the best validation epoch (and that epoch),
    the final epoch's test accuracy, the best test accuracy over the epochs
    (selected on test, as the source article reports it), the final
    train-test gap, the time. Without a validation set the first column is
    left out and a line says every number was selected on test.
    """
    cfg = results["dropout"].config
    summaries = {name: r.summary() for name, r in results.items()}
    first = summaries["dropout"]
    layers = "-".join(str(s) for s in (data.n_features, *cfg.hidden, data.n_classes))
    split = first["split"] or {}
    n_val = split.get("n_val", 0)
    held = f" ({n_val} of them held out for validation, --val-size {cfg.val_size})" if n_val else ""
    print(
        f"\nDropout experiment: {data.name}, {data.x_train.shape[0]} train{held} / "
        f"{data.x_test.shape[0]} test, layers {layers}, {cfg.epochs} epochs",
        file=stream,
    )
    labels = {
        "standard": "standard (no dropout)",
        "dropout": f"dropout (p_hidden={cfg.p_hidden}, p_input={cfg.p_input})",
    }
    validated = headline(first)[0] == "test_acc_at_best_val"
    header = (
        "net",
        *(("test acc at best val (epoch)",) if validated else ()),
        "final test acc",
        "best test acc (selected on test, as the article)",
        "final train-test gap",
        "time",
    )
    rows = [header]
    for name, s in summaries.items():
        selected: tuple[str, ...] = ()
        if validated:
            selected = (f"{s['test_acc_at_best_val']:.2%} (epoch {s['best_val_epoch']})",)
        rows.append(
            (
                labels[name],
                *selected,
                f"{s['final_test_acc']:.2%}",
                f"{s['best_test_acc']:.2%} (epoch {s['best_test_epoch']})",
                f"{s['final_gap'] * 100:.2f} points",
                f"{s['seconds']:.1f} s",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        print(line.rstrip(), file=stream)
    if not validated:
        print(
            "no validation set (--val-size 0): every accuracy above was selected on the test set",
            file=stream,
        )
    threads = first["threads"] or {}
    if threads:
        print(
            f"BLAS threads: {threads['threads'] or 'not limited'} ({threads['reason']})",
            file=stream,
        )
