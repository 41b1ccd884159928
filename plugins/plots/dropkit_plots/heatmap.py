"""The figure of a two-axis sweep: a heat map of the headline accuracy per method.

One panel per method, the first axis down, the second across, each cell the
mean over seeds (in percent) with the half-width of its 95% t-interval; one
colour scale for every panel, so methods compare by colour too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .figures import AXIS_LABELS, _save, _title, sweep_axes, sweep_panels

__all__ = ["heatmap_figure", "plot_heatmap"]


def plot_heatmap(table: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    r"""Draw a two-axis sweep's headline accuracy as one heat map per method; write a PNG.

    Parameters
    ----------
    table : sequence of mappings
        Rows with the two axes' values, ``method``, and the headline key of
        :func:`~dropkit_plots.figures.sweep_panels` as a mapping with ``mean``
        and ``ci95`` (fractions, drawn in percent).
    path : path
        Where the PNG goes (written atomically, never through a symlink).
    title : str
        Figure title.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = {"mean": .6, "std": .01, "ci95": [.58, .62]}
    >>> rows = [{"p_hidden": p, "lr": lr, "method": "dropout", "best_test_acc": d, "final_gap": d}
    ...         for p in (.2, .5) for lr in (.01, .05)]
    >>> plot_heatmap(rows, pathlib.Path(tempfile.mkdtemp()) / "s.png").read_bytes()[:4]
    b'\x89PNG'
    """
    return _save(heatmap_figure(table, title), path)


def heatmap_figure(table: Sequence[Mapping[str, Any]], title: str = "") -> Figure:
    """The figure of :func:`plot_heatmap`, not yet saved."""
    axes_names = sweep_axes(table)
    if len(axes_names) != 2:
        raise ValueError(f"a heat map needs a sweep of two axes, not {axes_names}")
    down, across = axes_names
    key, panel_title, _ = sweep_panels(table)[0]
    rows_values = sorted({row[down] for row in table})
    cols_values = sorted({row[across] for row in table})
    methods = list(dict.fromkeys(row["method"] for row in table))
    grids: dict[str, list[list[float]]] = {}
    halves: dict[str, list[list[float | None]]] = {}
    for method in methods:
        cell = {(r[down], r[across]): r[key] for r in table if r["method"] == method}
        grids[method] = [[cell[(a, b)]["mean"] * 100 for b in cols_values] for a in rows_values]
        halves[method] = [[_half_width(cell[(a, b)]) for b in cols_values] for a in rows_values]
    values = [v for grid in grids.values() for line in grid for v in line]
    low, high = min(values), max(values)
    fig = Figure(figsize=(1.2 + 3.2 * len(methods), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    panels = fig.subplots(1, len(methods), squeeze=False)[0]
    image = None
    for ax, method in zip(panels, methods, strict=True):
        image = ax.imshow(grids[method], cmap="viridis", vmin=low, vmax=high, aspect="auto")
        for i, line in enumerate(grids[method]):
            for j, mean in enumerate(line):
                half = halves[method][i][j]
                text = f"{mean:.1f}" + (f"\n±{half:.1f}" if half is not None else "")
                dark = mean < low + 0.6 * (high - low)
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "black",
                )
        ax.set_xticks(range(len(cols_values)), [f"{v:g}" for v in cols_values])
        ax.set_yticks(range(len(rows_values)), [f"{v:g}" for v in rows_values])
        ax.set(
            xlabel=AXIS_LABELS.get(across, across), ylabel=AXIS_LABELS.get(down, down), title=method
        )
    if image is not None:
        fig.colorbar(image, ax=list(panels), label=f"{panel_title} (%)")
    _title(fig, title, "cells: mean over seeds, ± half-width of the 95% t-interval")
    return fig


def _half_width(stats: Mapping[str, Any]) -> float | None:
    ci = stats.get("ci95")
    return None if not ci else (ci[1] - ci[0]) * 50  # half of the width, in points
