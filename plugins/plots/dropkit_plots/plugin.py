"""Entry point ``dropkit.experiment: plots``: curves of each run, comparison and study; sweeps.

A plugin of the application's hooks (:mod:`dropkit.experiment.hookspecs`): the
application loads it for each command; the library never does. matplotlib is
imported by the hooks, not here: importing it takes 1-2 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dropkit.experiment.hookspecs import hookimpl


@hookimpl
def dropkit_train_end(run: Any, result: Any) -> None:
    """Write ``<run folder>/curves.png``."""
    from .figures import plot_histories

    if run.out_dir is not None:
        c = run.config
        plot_histories(
            {run.name: result.history},
            Path(run.out_dir) / "curves.png",
            title=f"{run.name}: {c.dataset}, {run.n_train} training examples, {_net(c)}",
        )


def _net(c: Any) -> str:
    """The net of a configuration, for a title."""
    return f"hidden {list(c.hidden)}, p_hidden={c.p_hidden}, p_input={c.p_input}, {c.epochs} epochs"


@hookimpl
def dropkit_compare_end(out_dir: Any, results: dict[str, Any]) -> None:
    """Write ``<out>/curves.png`` with both nets."""
    from .figures import plot_histories

    cfg = results["dropout"].config
    title = f"{cfg.dataset}: standard vs dropout, {_net(cfg)}"
    plot_histories(
        {name: r.history for name, r in results.items()}, Path(out_dir) / "curves.png", title=title
    )


@hookimpl
def dropkit_study_end(out_dir: Any, runs: dict[str, dict[int, Any]]) -> None:
    """Write ``<out>/curves.png``: each method's mean curves, the spread over seeds shaded."""
    from .figures import plot_study

    configs = [r.config for per_seed in runs.values() for r in per_seed.values()]
    cfg = max(configs, key=lambda c: c.p_hidden)  # "standard" runs with p_hidden=0
    title = f"{cfg.dataset}: {', '.join(runs)}; {_net(cfg)}"
    plot_study(
        {method: [r.history for r in per_seed.values()] for method, per_seed in runs.items()},
        Path(out_dir) / "curves.png",
        title=title,
    )


@hookimpl
def dropkit_sweep_end(out_dir: Any, table: list[dict[str, Any]]) -> None:
    """Write ``<out>/sweep.png``.

    One axis: the headline accuracy and the gap against it, per method, with
    95% error bars. Two axes: a heat map of the headline accuracy per method.
    """
    from .figures import plot_sweep, sweep_axes

    path, title = Path(out_dir) / "sweep.png", sweep_title(Path(out_dir))
    if len(sweep_axes(table)) == 2:
        from .heatmap import plot_heatmap

        plot_heatmap(table, path, title=title)
    else:
        plot_sweep(table, path, title=title)


def sweep_title(out_dir: Path) -> str:
    """What the sweep in ``out_dir`` ran, from its ``sweep.json`` (a generic title without it)."""
    import json

    try:
        doc = json.loads((out_dir / "sweep.json").read_text())
        cfg = doc["config"]
        seeds = len(doc["seeds"])
        axes = list(doc.get("axes") or {"train_size": doc.get("train_sizes")})
        against = " and ".join(_AXIS_NAMES.get(a, a) for a in axes)
        fixed = ", ".join(f"{k}={cfg[k]}" for k in ("p_hidden", "lr") if k in cfg and k not in axes)
        return (
            f"{doc['dataset']}: {', '.join(doc['methods'])} against {against} "
            f"({doc['n_test']} test examples)\nhidden {cfg['hidden']}, "
            + (f"{fixed}, " if fixed else "")
            + f"{cfg['epochs']} epochs, {seeds} seed{'s' * (seeds > 1)}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "dropout against the swept settings"


_AXIS_NAMES = {
    "train_size": "the training-set size",
    "p_hidden": "p (hidden)",
    "lr": "the learning rate",
    "weight_decay": "the weight decay",
}
