"""The figures of the plots plugin: percent, test loss when present, legends, titles, log axes,
sweep bars apart."""

import json

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("dropkit_plots")

from dropkit_plots.figures import (
    histories_figure,
    plot_histories,
    study_figure,
    sweep_figure,
)
from dropkit_plots.heatmap import heatmap_figure
from dropkit_plots.plugin import dropkit_sweep_end, sweep_title


def _history(n=6, *, new=True, drop=0.0):
    out = []
    for e in range(1, n + 1):
        record = {
            "epoch": e,
            "train_acc": 0.5 + 0.08 * e,
            "test_acc": 0.4 + 0.03 * e - drop,
            "loss": 2.3 * 0.4**e,  # spans several decades
            "lr": 0.05,
            "seconds": 0.1,
        }
        if new:
            record.update(
                val_acc=0.41 + 0.03 * e, val_loss=1.3 + 0.01 * e, test_loss=1.2 + 0.02 * e
            )
        out.append(record)
    return out


def _legend(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def _inside(fig):
    """Every text of the figure (titles, labels, legend) lies within the drawn canvas."""
    fig.canvas.draw()
    box = fig.bbox
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
    for text in texts:
        extent = text.get_window_extent()
        assert extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1, text.get_text()
        assert extent.y0 >= box.y0 - 1 and extent.y1 <= box.y1 + 1, text.get_text()
    for legend in fig.legends:
        extent = legend.get_window_extent()
        assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1


def test_one_run_has_a_legend_of_splits_not_train_train():
    fig = histories_figure({"train": _history(new=False)}, title="train: mnist1d")
    assert _legend(fig) == ["train", "test"]


def test_several_runs_have_one_entry_per_run_and_per_split():
    fig = histories_figure({"standard": _history(), "dropout": _history(drop=0.05)})
    assert _legend(fig) == ["standard", "dropout", "train", "validation", "test"]


def test_accuracy_is_in_percent_and_the_gap_in_points():
    history = _history(new=False)
    fig = histories_figure({"run": history})
    acc_ax, gap_ax, _ = fig.axes
    ys = sorted(tuple(round(float(y), 9) for y in line.get_ydata()) for line in acc_ax.lines)
    want = sorted(
        tuple(round(r[key] * 100, 9) for r in history) for key in ("train_acc", "test_acc")
    )
    assert ys == want
    assert "%" in acc_ax.get_ylabel()
    gap = gap_ax.lines[0].get_ydata()
    assert list(gap) == pytest.approx([(r["train_acc"] - r["test_acc"]) * 100 for r in history])
    assert "percentage points" in gap_ax.get_ylabel()


def test_test_and_validation_loss_are_drawn_when_present_and_skipped_when_absent():
    _, _, loss_ax = histories_figure({"run": _history()}).axes
    drawn = sorted(tuple(line.get_ydata()) for line in loss_ax.lines)
    history = _history()
    for key in ("loss", "val_loss", "test_loss"):
        assert tuple(r[key] for r in history) in [pytest.approx(d) for d in drawn]
    _, _, old_ax = histories_figure({"run": _history(new=False)}).axes
    assert len(old_ax.lines) == 1  # only the training loss: an old history has no more


def test_a_history_that_gains_keys_midway_is_drawn(tmp_path):
    history = _history(new=False)[:3] + _history()[3:]  # resumed by a newer dropkit
    path = plot_histories({"run": history}, tmp_path / "c.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_a_figure_is_never_written_through_a_symlink(tmp_path):
    """A planted link at the figure's name is refused; the file it points to is untouched."""
    from dropkit.experiment.runfiles import RunFileError

    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "c.png").symlink_to(victim)
    with pytest.raises(RunFileError, match=r"c\.png is a symlink"):
        plot_histories({"run": _history()}, tmp_path / "c.png")
    assert victim.read_text() == "precious"


def test_a_planted_temporary_link_is_replaced_not_followed(tmp_path):
    """The temporary name of the atomic write is a link to the victim: it is removed, not used."""
    import os

    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / f".c.png.tmp-{os.getpid()}").symlink_to(victim)
    path = plot_histories({"run": _history()}, tmp_path / "c.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert victim.read_text() == "precious"


def test_the_log_loss_axis_is_labelled_with_plain_numbers():
    _, _, loss_ax = histories_figure({"run": _history()}).axes
    loss_ax.figure.canvas.draw()
    labels = [t.get_text() for t in loss_ax.get_yticklabels() if t.get_text()]
    assert loss_ax.get_yscale() == "log"
    assert len(labels) >= 3
    for label in labels:
        float(label)  # "0.05", "1", "2": no "10^{0}" mathtext
    narrow = histories_figure(
        {"run": [dict(r, loss=1.6 + 0.2 * i) for i, r in enumerate(_history())]}
    )
    narrow.canvas.draw()
    labels = [t.get_text() for t in narrow.axes[2].get_yticklabels() if t.get_text()]
    assert len(labels) >= 3, labels  # less than a decade still shows several values


@pytest.mark.parametrize("width", [1, 3])
def test_titles_and_labels_are_not_cut_off(width):
    title = "a long title, " * 20 * width
    runs = {f"method{i}": [_history(), _history(drop=0.02)] for i in range(3)}
    _inside(study_figure(runs, title=title))
    _inside(histories_figure({"standard": _history(), "dropout": _history()}, title=title))


def _rows(methods, sizes, ci=0.05):
    return [
        {
            "train_size": n,
            "method": m,
            "best_test_acc": {"mean": 0.5, "std": 0.01, "ci95": [0.5 - ci, 0.5 + ci]},
            "final_gap": {"mean": 0.1, "std": 0.01, "ci95": [0.1 - ci, 0.1 + ci]},
        }
        for m in methods
        for n in sizes
    ]


def test_sweep_points_of_the_methods_are_set_apart_ticks_stay_at_the_sizes():
    methods, sizes = ["standard", "dropout", "gaussian", "alpha"], [500, 1000, 2000, 4000]
    fig = sweep_figure(_rows(methods, sizes), title="t")
    acc_ax = fig.axes[0]
    data = [bars.lines[0] for bars in acc_ax.containers]  # each method's error bars' line
    xs = [tuple(line.get_xdata()) for line in data]
    assert len(xs) == len(methods)
    for k, n in enumerate(sizes):
        at = sorted(x[k] for x in xs)
        assert len(set(at)) == len(methods)  # no two methods' bars on one x
        assert at[0] < n < at[-1] and at[-1] / at[0] < 1.5  # near the size, around it
        assert k == len(sizes) - 1 or at[-1] < sizes[k + 1] / 1.3  # far from the next size
    assert list(acc_ax.get_xticks()) == sizes
    assert [line.get_ydata()[0] for line in data] == pytest.approx([50.0] * 4)  # percent
    assert _legend(fig) == methods
    _inside(fig)


def test_the_sweep_title_says_what_was_run(tmp_path):
    doc = {
        "dataset": "mnist1d",
        "n_test": 1000,
        "methods": ["standard", "dropout"],
        "seeds": [0, 1, 2],
        "config": {"hidden": [512, 256], "p_hidden": 0.5, "epochs": 300},
    }
    (tmp_path / "sweep.json").write_text(json.dumps(doc))
    title = sweep_title(tmp_path)
    for part in ("mnist1d", "standard, dropout", "training-set size", "[512, 256]", "3 seeds"):
        assert part in title
    assert sweep_title(tmp_path / "missing") == "dropout against the swept settings"
    _inside(sweep_figure(_rows(doc["methods"], [500, 1000]), title=title))


def test_a_study_title_names_the_dropout_configuration_not_the_first_run(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import dropkit_plots.figures
    from dropkit_plots import plugin

    from dropkit.experiment.train import TrainConfig

    seen = {}
    monkeypatch.setattr(
        dropkit_plots.figures, "plot_study", lambda runs, path, title: seen.update(title=title)
    )

    def result(p):
        return SimpleNamespace(config=TrainConfig(p_hidden=p, hidden=(32,)), history=_history())

    runs = {"standard": {0: result(0.0)}, "dropout": {0: result(0.5)}}
    plugin.dropkit_study_end(out_dir=tmp_path, runs=runs)
    assert seen["title"].startswith("mnist1d: standard, dropout; hidden [32], p_hidden=0.5")


def test_the_sweep_headline_is_validation_selected_when_the_rows_have_it():
    rows = _rows(["standard", "dropout"], [500, 1000])
    assert sweep_figure(rows).axes[0].get_title() == "best test accuracy"  # no validation split
    for row in rows:
        row["test_acc_at_best_val"] = {"mean": 0.4, "ci95": [0.35, 0.45]}
    axes = sweep_figure(rows).axes
    assert axes[0].get_title() == "test accuracy at the best validation epoch"
    heights = sorted({round(y, 6) for line in axes[0].get_lines() for y in line.get_ydata()})
    assert 40.0 in heights  # the validation-selected means, in percent


def _point_rows(axes, methods=("standard", "dropout")):
    """Sweep rows over the product of ``axes`` (name -> values), distinct means per cell."""
    import itertools

    rows = []
    for k, values in enumerate(itertools.product(*axes.values())):
        for m, method in enumerate(methods):
            mean = 0.5 + 0.01 * k + 0.1 * m
            d = {"mean": mean, "std": 0.01, "ci95": [mean - 0.02, mean + 0.02], "n": 3}
            rows.append(
                {
                    **dict(zip(axes, values, strict=True)),
                    "method": method,
                    "test_acc_at_best_val": d,
                    "best_test_acc": d,
                    "final_gap": d,
                }
            )
    return rows


def test_a_p_sweep_is_drawn_against_p_on_a_linear_axis():
    fig = sweep_figure(_point_rows({"p_hidden": [0.1, 0.3, 0.5]}))
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "0.3", "0.5"]
    assert "drop probability" in ax.get_xlabel()
    xs = sorted(x for line in ax.get_lines() for x in line.get_xdata())
    assert min(xs) < 0.1 < 0.5 < max(xs) < 0.6  # the methods set apart around each p


def test_a_learning_rate_sweep_is_drawn_on_a_log_axis():
    fig = sweep_figure(_point_rows({"lr": [0.01, 0.1]}))
    assert fig.axes[0].get_xscale() == "log" and "learning rate" in fig.axes[0].get_xlabel()


def test_a_two_axis_sweep_is_a_heat_map_per_method(tmp_path):
    rows = _point_rows({"p_hidden": [0.2, 0.5], "lr": [0.01, 0.05, 0.1]})
    fig = heatmap_figure(rows)
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in panels] == ["standard", "dropout"]
    grid = panels[1].get_images()[0].get_array()
    assert grid.shape == (2, 3)  # p down, lr across
    assert grid[1, 2] == pytest.approx((0.5 + 0.01 * 5 + 0.1) * 100)  # p=0.5, lr=0.1, dropout
    assert panels[0].texts[0].get_text() == "50.0\n±2.0"
    dropkit_sweep_end(out_dir=tmp_path, table=rows)  # the hook picks the heat map
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_a_heat_map_needs_two_axes():
    with pytest.raises(ValueError, match="two axes"):
        heatmap_figure(_point_rows({"p_hidden": [0.2, 0.5]}))
