"""The figure: train and test accuracy, and training loss, per epoch, for one or more runs.

Uses matplotlib's object API with the Agg canvas, so it never touches pyplot's
global state or the user's interactive backend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_histories", "plot_study", "plot_sweep"]


def plot_histories(
    histories: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path, title: str = ""
) -> Path:
    r"""Draw accuracy (train dashed, test solid) and loss curves; write a PNG atomically.

    Parameters
    ----------
    histories : mapping
        Run label -> list of epoch records (``epoch``, ``train_acc``,
        ``test_acc``, ``loss``).
    path : path
        Where the PNG goes.
    title : str
        Figure title.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> h = [{"epoch": 1, "train_acc": .5, "test_acc": .4, "loss": 1.0},
    ...      {"epoch": 2, "train_acc": .7, "test_acc": .5, "loss": .8}]
    >>> out = plot_histories({"run": h}, pathlib.Path(tempfile.mkdtemp()) / "c.png")
    >>> out.read_bytes()[:4]
    b'\x89PNG'
    """
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    acc_ax, gap_ax, loss_ax = fig.subplots(1, 3)
    for i, (label, history) in enumerate(histories.items()):
        color = f"C{i}"
        epochs = [r["epoch"] for r in history]
        acc_ax.plot(
            epochs, [r["train_acc"] for r in history], "--", color=color, label=f"{label} train"
        )
        acc_ax.plot(
            epochs, [r["test_acc"] for r in history], "-", color=color, label=f"{label} test"
        )
        gap_ax.plot(
            epochs, [r["train_acc"] - r["test_acc"] for r in history], color=color, label=label
        )
        loss_ax.plot(epochs, [r["loss"] for r in history], color=color, label=label)
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy (train dashed, test solid)")
    gap_ax.set(xlabel="epoch", ylabel="train - test accuracy", title="generalisation gap")
    loss_ax.set(
        xlabel="epoch",
        ylabel="loss",
        yscale="log",
        title="training loss (minibatches, training mode)",
    )
    for ax in (acc_ax, gap_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fig.savefig(tmp, format="png", dpi=110)
    os.replace(tmp, path)
    return path


def _band(runs: Sequence[Sequence[Mapping[str, Any]]], key: Any) -> tuple[Any, Any, Any, Any]:
    """Epochs, and the mean, minimum and maximum over the runs of ``key(record)``."""
    import numpy as np

    length = min(len(h) for h in runs)
    values = np.array([[key(r) for r in h[:length]] for h in runs], dtype=float)
    epochs = [r["epoch"] for r in runs[0][:length]]
    return epochs, values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def plot_study(
    runs: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]], path: str | Path, title: str = ""
) -> Path:
    r"""Per method, the mean curves over seeds with their spread (min to max) shaded.

    Parameters
    ----------
    runs : mapping
        Method -> one history (list of epoch records) per seed.
    path : path
        Where the PNG goes (written atomically).
    title : str
        Figure title.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> h = lambda a: [{"epoch": 1, "train_acc": a, "test_acc": a - .1, "loss": 1.0},
    ...                {"epoch": 2, "train_acc": a + .1, "test_acc": a, "loss": .8}]
    >>> out = plot_study({"dropout": [h(.5), h(.6)]}, pathlib.Path(tempfile.mkdtemp()) / "c.png")
    >>> out.read_bytes()[:4]
    b'\x89PNG'
    """
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    acc_ax, gap_ax, loss_ax = fig.subplots(1, 3)
    for i, (label, histories) in enumerate(runs.items()):
        color = f"C{i}"
        n = len(histories)
        for ax, key, style, name in (
            (acc_ax, lambda r: r["test_acc"], "-", f"{label} test"),
            (acc_ax, lambda r: r["train_acc"], "--", f"{label} train"),
            (gap_ax, lambda r: r["train_acc"] - r["test_acc"], "-", label),
            (loss_ax, lambda r: r["loss"], "-", label),
        ):
            epochs, mean, low, high = _band(histories, key)
            ax.plot(epochs, mean, style, color=color, label=f"{name} (mean of {n})")
            if n > 1 and style == "-":
                ax.fill_between(epochs, low, high, color=color, alpha=0.2, linewidth=0)
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy (train dashed, test solid)")
    gap_ax.set(xlabel="epoch", ylabel="train - test accuracy", title="generalisation gap")
    loss_ax.set(xlabel="epoch", ylabel="loss", yscale="log", title="training loss")
    for ax in (acc_ax, gap_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle((title + "\n" if title else "") + "lines: mean over seeds; shaded: min to max")
    return _save(fig, path)


def plot_sweep(table: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    r"""Best test accuracy and final gap against the train size, per method, with error bars.

    The error bars are the 95% t-intervals of the mean over seeds (none with one seed).

    Parameters
    ----------
    table : sequence of mappings
        Rows with ``train_size``, ``method``, and ``best_test_acc`` and
        ``final_gap`` holding ``mean`` and ``ci95`` (``dropkit.experiment.stats.describe``).
    path : path
        Where the PNG goes (written atomically).
    title : str
        Figure title.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = {"mean": .6, "std": .01, "ci95": [.58, .62]}
    >>> rows = [{"train_size": n, "method": "dropout", "best_test_acc": d, "final_gap": d}
    ...         for n in (500, 1000)]
    >>> plot_sweep(rows, pathlib.Path(tempfile.mkdtemp()) / "s.png").read_bytes()[:4]
    b'\x89PNG'
    """
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    acc_ax, gap_ax = fig.subplots(1, 2)
    methods = list(dict.fromkeys(row["method"] for row in table))
    for i, method in enumerate(methods):
        rows = sorted((r for r in table if r["method"] == method), key=lambda r: r["train_size"])
        sizes = [r["train_size"] for r in rows]
        for ax, key in ((acc_ax, "best_test_acc"), (gap_ax, "final_gap")):
            means = [r[key]["mean"] for r in rows]
            below = [r[key]["mean"] - r[key]["ci95"][0] if r[key]["ci95"] else 0 for r in rows]
            above = [r[key]["ci95"][1] - r[key]["mean"] if r[key]["ci95"] else 0 for r in rows]
            ax.errorbar(
                sizes,
                means,
                yerr=[below, above],
                marker="o",
                capsize=4,
                color=f"C{i}",
                label=method,
            )
    acc_ax.set(xlabel="training examples", ylabel="best test accuracy", title="best test accuracy")
    gap_ax.set(xlabel="training examples", ylabel="train - test accuracy", title="final gap")
    sizes = sorted({row["train_size"] for row in table})
    for ax in (acc_ax, gap_ax):
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle((title + "\n" if title else "") + "mean over seeds; bars: 95% t-interval")
    return _save(fig, path)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fig.savefig(tmp, format="png", dpi=110)
    os.replace(tmp, path)
    return path
