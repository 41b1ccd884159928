"""Entry point ``dropkit: plots``: curves for each run, comparison and study; sweep plots.

matplotlib is imported by the hooks, not here: loading the plugin happens on
every process's first dropkit call, and importing matplotlib took 1.2-2 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dropkit import hookimpl


@hookimpl
def dropkit_train_end(run: Any, result: Any) -> None:
    """Write ``<run folder>/curves.png``."""
    from .figures import plot_histories

    if run.out_dir is not None:
        plot_histories(
            {run.name: result.history},
            Path(run.out_dir) / "curves.png",
            title=f"{run.name}: {run.config.dataset}",
        )


@hookimpl
def dropkit_compare_end(out_dir: Any, results: dict[str, Any]) -> None:
    """Write ``<out>/curves.png`` with both nets."""
    from .figures import plot_histories

    cfg = results["dropout"].config
    title = (
        f"{cfg.dataset}: standard vs dropout (p_hidden={cfg.p_hidden}, p_input={cfg.p_input}), "
        f"hidden {list(cfg.hidden)}"
    )
    plot_histories(
        {name: r.history for name, r in results.items()}, Path(out_dir) / "curves.png", title=title
    )


@hookimpl
def dropkit_study_end(out_dir: Any, runs: dict[str, dict[int, Any]]) -> None:
    """Write ``<out>/curves.png``: each method's mean curves, the spread over seeds shaded."""
    from .figures import plot_study

    first = next(iter(next(iter(runs.values())).values())).config
    seeds = sorted(next(iter(runs.values())))
    title = (
        f"{first.dataset}: {', '.join(runs)}, hidden {list(first.hidden)}, "
        f"{len(seeds)} seed{'s' * (len(seeds) > 1)}"
    )
    plot_study(
        {method: [r.history for r in per_seed.values()] for method, per_seed in runs.items()},
        Path(out_dir) / "curves.png",
        title=title,
    )


@hookimpl
def dropkit_sweep_end(out_dir: Any, table: list[dict[str, Any]]) -> None:
    """Write ``<out>/sweep.png``: best test accuracy and gap against the train size."""
    from .figures import plot_sweep

    plot_sweep(table, Path(out_dir) / "sweep.png", title="dropkit sweep")
