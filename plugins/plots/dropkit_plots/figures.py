"""The figures: per-epoch curves of runs and studies, and a sweep against the train size.

Accuracies are drawn in percent and gaps in percentage points, as the tables
print them. Each split has one line style everywhere: train dashed, validation
dotted, test solid; each run or method has one colour; the legend, below the
panels, names both. Validation (``val_acc``, ``val_loss``) and test loss
(``test_loss``) are drawn when the history has them (older histories do not).
Loss axes are logarithmic with plain numbers as labels (0.5, 1, 2), never
``2 x 10^0``. Panel titles are short enough for their panel; the figure's own title says
what was run, wrapped to the figure's width.

Uses matplotlib's object API with the Agg canvas, so it never touches pyplot's
global state or the user's interactive backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from dropkit.experiment.runfiles import write_run_atomic

__all__ = [
    "AXIS_LABELS",
    "SPLITS",
    "SWEEP_PANELS",
    "SWEEP_VAL_PANELS",
    "histories_figure",
    "plot_histories",
    "plot_study",
    "plot_sweep",
    "study_figure",
    "sweep_axes",
    "sweep_figure",
    "sweep_panels",
]

Record = Mapping[str, Any]

#: Each split: its name, line style, accuracy key and loss key in an epoch record.
SPLITS = (
    ("train", "--", "train_acc", "loss"),
    ("validation", ":", "val_acc", "val_loss"),
    ("test", "-", "test_acc", "test_loss"),
)
#: The panels of :func:`plot_sweep`: the row key, the panel title and its y label.
SWEEP_PANELS = (
    ("best_test_acc", "best test accuracy", "accuracy (%)"),
    ("final_gap", "final train - test gap", "gap (percentage points)"),
)
# the headline of a sweep with a validation split: no number in it is chosen on test
SWEEP_VAL_PANELS = (
    ("test_acc_at_best_val", "test accuracy at the best validation epoch", "accuracy (%)"),
    ("final_gap", "final train - test gap", "gap (percentage points)"),
)


#: The x-axis label of each sweep axis (``dropkit sweep``'s options).
AXIS_LABELS = {
    "train_size": "training examples",
    "p_hidden": "p of the hidden layers (drop probability)",
    "lr": "learning rate",
    "weight_decay": "weight decay",
}


def sweep_axes(table: Sequence[Mapping[str, Any]]) -> list[str]:
    """The axes of a sweep's table: the keys of a row that hold numbers (not stats, not method).

    Examples
    --------
    >>> sweep_axes([{"p_hidden": .5, "lr": .01, "method": "dropout", "best_test_acc": {}}])
    ['p_hidden', 'lr']
    """
    if not table:
        return []
    return [
        k
        for k, v in table[0].items()
        if k != "method" and isinstance(v, int | float) and not isinstance(v, bool)
    ]


def sweep_panels(table: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str, str], ...]:
    """:data:`SWEEP_VAL_PANELS` where every row has the validation-selected number.

    Otherwise (no validation split) :data:`SWEEP_PANELS`.

    Examples
    --------
    >>> sweep_panels([{"test_acc_at_best_val": {"mean": .5}}])[0][0]
    'test_acc_at_best_val'
    >>> sweep_panels([{"best_test_acc": {"mean": .5}}])[0][0]
    'best_test_acc'
    """
    if table and all(row.get("test_acc_at_best_val") is not None for row in table):
        return SWEEP_VAL_PANELS
    return SWEEP_PANELS


def _has(history: Sequence[Record], key: str) -> bool:
    return bool(history) and all(r.get(key) is not None for r in history)


def _plain_log_axis(ax: Axes) -> None:
    """A log y axis labelled with plain numbers, enough of them to read a value off."""
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    decades = math.log10(high / low) if low > 0 and high > low else 1.0
    subs = (1.0, 2.0, 5.0) if decades >= 1 else tuple(float(s) for s in range(1, 10))
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _legend(fig: Figure, labels: Sequence[tuple[str, str]], splits: Sequence[str]) -> None:
    """One legend under the panels: a coloured line per run, a line style per split."""
    handles = [Line2D([], [], color=color, lw=2) for _, color in labels]
    names = [label for label, _ in labels]
    for name, style, _, _ in SPLITS:
        if name in splits:
            color = labels[0][1] if len(labels) == 1 else "black"
            handles.append(Line2D([], [], color=color, ls=style))
            names.append(name)
    if len(labels) == 1:  # one run: its colour needs no entry of its own
        handles, names = handles[1:], names[1:]
    fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 6))


def _panels(fig: Figure) -> tuple[Axes, Axes, Axes]:
    acc_ax, gap_ax, loss_ax = fig.subplots(1, 3)
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    gap_ax.set(
        xlabel="epoch", ylabel="train - test (percentage points)", title="generalisation gap"
    )
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy (log scale)", title="loss")
    for ax in (acc_ax, gap_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs: 1, 2, 3, never 1.5
    return acc_ax, gap_ax, loss_ax


def _title(fig: Figure, *lines: str) -> None:
    """The figure's title, each line wrapped to the figure's width (never cut off)."""
    import textwrap

    chars = int(fig.get_figwidth() * 11)  # characters of the title font per line
    parts = [part for line in lines if line for part in line.split("\n")]
    text = "\n".join(textwrap.fill(part, chars) for part in parts)
    if text:
        fig.suptitle(text)


def plot_histories(
    histories: Mapping[str, Sequence[Record]], path: str | Path, title: str = ""
) -> Path:
    r"""Draw accuracy, gap and loss curves of one or more runs; write a PNG atomically.

    The figure is :func:`histories_figure`'s.

    Parameters
    ----------
    histories : mapping
        Run label -> list of epoch records (``epoch``, ``train_acc``,
        ``test_acc``, ``loss``; ``val_acc``, ``val_loss`` and ``test_loss``
        when present).
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
    return _save(histories_figure(histories, title), path)


def histories_figure(histories: Mapping[str, Sequence[Record]], title: str = "") -> Figure:
    """The figure of :func:`plot_histories`, not yet saved.

    Examples
    --------
    >>> h = [{"epoch": 1, "train_acc": .5, "test_acc": .4, "loss": 1.0}]
    >>> [t.get_text() for t in histories_figure({"run": h}).legends[0].get_texts()]
    ['train', 'test']
    """
    fig = Figure(figsize=(13, 5), layout="constrained")
    FigureCanvasAgg(fig)
    acc_ax, gap_ax, loss_ax = _panels(fig)
    shown: set[str] = set()
    labels = []
    for i, (label, history) in enumerate(histories.items()):
        color = f"C{i}"
        labels.append((label, color))
        for name, style, acc, loss in SPLITS:
            for ax, key, scale in ((acc_ax, acc, 100.0), (loss_ax, loss, 1.0)):
                points = [r for r in history if r.get(key) is not None]
                if points:
                    shown.add(name)
                    ys = [r[key] * scale for r in points]
                    ax.plot([r["epoch"] for r in points], ys, style, color=color)
        gap = [r for r in history if None not in (r.get("train_acc"), r.get("test_acc"))]
        gap_ax.plot(
            [r["epoch"] for r in gap],
            [(r["train_acc"] - r["test_acc"]) * 100 for r in gap],
            color=color,
        )
    _plain_log_axis(loss_ax)
    _legend(fig, labels, sorted(shown))
    _title(fig, title)
    return fig


def _value(key: str, scale: float) -> Callable[[Record], float]:
    """``record[key] * scale``, as a function of the record."""
    return lambda r: float(r[key]) * scale


def _band(
    runs: Sequence[Sequence[Record]], key: Callable[[Record], float]
) -> tuple[Any, Any, Any, Any]:
    """Epochs, and the mean, minimum and maximum over the runs of ``key(record)``."""
    import numpy as np

    length = min(len(h) for h in runs)
    values = np.array([[key(r) for r in h[:length]] for h in runs], dtype=float)
    epochs = [r["epoch"] for r in runs[0][:length]]
    return epochs, values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def plot_study(
    runs: Mapping[str, Sequence[Sequence[Record]]], path: str | Path, title: str = ""
) -> Path:
    r"""Per method, the mean curves over seeds; the spread (min to max) of test and gap shaded.

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
    return _save(study_figure(runs, title), path)


def study_figure(runs: Mapping[str, Sequence[Sequence[Record]]], title: str = "") -> Figure:
    """The figure of :func:`plot_study`, not yet saved."""
    fig = Figure(figsize=(13, 5), layout="constrained")
    FigureCanvasAgg(fig)
    acc_ax, gap_ax, loss_ax = _panels(fig)
    shown: set[str] = set()
    labels = []
    seeds = set()
    for i, (method, histories) in enumerate(runs.items()):
        color = f"C{i}"
        seeds.add(len(histories))
        labels.append((method, color))
        curves: list[tuple[Axes, Callable[[Record], float], str, bool]] = [
            (gap_ax, lambda r: (r["train_acc"] - r["test_acc"]) * 100, "-", True)
        ]
        for name, style, acc, loss in SPLITS:
            if not all(_has(h, acc) for h in histories):
                continue
            shown.add(name)
            curves.append((acc_ax, _value(acc, 100.0), style, name == "test"))
            if all(_has(h, loss) for h in histories):
                curves.append((loss_ax, _value(loss, 1.0), style, name == "test"))
        for ax, key, style, shade in curves:
            epochs, mean, low, high = _band(histories, key)
            ax.plot(epochs, mean, style, color=color)
            if shade and len(histories) > 1:
                ax.fill_between(epochs, low, high, color=color, alpha=0.2, linewidth=0)
    _plain_log_axis(loss_ax)
    _legend(fig, labels, sorted(shown))
    n = "/".join(str(s) for s in sorted(seeds))
    _title(fig, title, f"lines: mean over {n} seeds; shaded: min to max over the seeds")
    return fig


def plot_sweep(
    table: Sequence[Mapping[str, Any]],
    path: str | Path,
    title: str = "",
    panels: Sequence[tuple[str, str, str]] | None = None,
) -> Path:
    r"""Each panel's value against the sweep's axis, per method, with 95% error bars.

    The axis is the one number every row holds besides its statistics
    (:func:`sweep_axes`): the train size, a learning rate or a weight decay on
    a log scale, p on a linear one.

    The error bars are the 95% t-intervals of the mean over seeds (none with
    one seed). The methods' points are set slightly apart along the x axis
    (the same small step each side of the value), so their bars do not
    hide each other; the tick marks stay at the swept values.

    Parameters
    ----------
    table : sequence of mappings
        Rows with the axis (``train_size``, ``p_hidden``, ...), ``method``, and for
        each panel's key a mapping with ``mean`` and ``ci95``
        (``dropkit.experiment.stats.describe``),
        fractions (drawn in percent or percentage points).
    path : path
        Where the PNG goes (written atomically).
    title : str
        Figure title.
    panels : sequence of (key, title, y label)
        What to draw (default: :func:`sweep_panels` of the table).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = {"mean": .6, "std": .01, "ci95": [.58, .62]}
    >>> rows = [{"train_size": n, "method": "dropout", "best_test_acc": d, "final_gap": d}
    ...         for n in (500, 1000)]
    >>> plot_sweep(rows, pathlib.Path(tempfile.mkdtemp()) / "s.png").read_bytes()[:4]
    b'\x89PNG'
    """
    return _save(sweep_figure(table, title, panels), path)


def sweep_figure(
    table: Sequence[Mapping[str, Any]],
    title: str = "",
    panels: Sequence[tuple[str, str, str]] | None = None,
) -> Figure:
    """The figure of :func:`plot_sweep`, not yet saved."""
    if panels is None:
        panels = sweep_panels(table)
    fig = Figure(figsize=(5 * len(panels), 5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    methods = list(dict.fromkeys(row["method"] for row in table))
    (axis,) = sweep_axes(table) or ["train_size"]
    sizes = sorted({row[axis] for row in table})
    log = axis != "p_hidden" and sizes[0] > 0  # sizes, rates, decays: log; p: linear
    if log:
        span = math.log10(sizes[-1] / sizes[0]) if len(sizes) > 1 else 1.0
        step = 0.03 * max(span, 0.5)  # decades between two methods' points
    else:
        step = 0.06 * ((sizes[-1] - sizes[0]) or 1.0) / max(len(sizes) - 1, 1)
    for i, method in enumerate(methods):
        rows = sorted((r for r in table if r["method"] == method), key=lambda r: r[axis])
        shift = (i - (len(methods) - 1) / 2) * step
        xs = [r[axis] * 10**shift if log else r[axis] + shift for r in rows]
        for ax, (key, _, _) in zip(axes, panels, strict=True):
            means = [r[key]["mean"] * 100 for r in rows]
            cis = [r[key].get("ci95") for r in rows]
            below = [m - ci[0] * 100 if ci else 0.0 for m, ci in zip(means, cis, strict=True)]
            above = [ci[1] * 100 - m if ci else 0.0 for m, ci in zip(means, cis, strict=True)]
            ax.errorbar(
                xs, means, yerr=[below, above], marker="o", capsize=4, color=f"C{i}", label=method
            )
    for ax, (_, panel_title, ylabel) in zip(axes, panels, strict=True):
        xlabel = AXIS_LABELS.get(axis, axis) + (" (log scale)" if log else "")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=panel_title)
        if log:
            ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{n:g}" for n in sizes])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        loc="outside lower center",
        ncols=min(len(methods), 6),
    )
    _title(fig, title, "mean over seeds; bars: 95% t-interval of the mean; methods set apart")
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically, never through a symlink.

    The run files' writer: a fresh temporary file (``O_EXCL``, no symlink
    followed) renamed over ``path``; a symlink, FIFO or folder at ``path`` is
    refused with a message, the file it may point to is left untouched.
    """
    path = Path(path)
    write_run_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110))
    return path
