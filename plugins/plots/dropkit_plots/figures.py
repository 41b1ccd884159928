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

__all__ = ["plot_histories"]


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
