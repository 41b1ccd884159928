"""dropkit sweep over --p-hidden/--lr/--weight-decay/--train-size: one or two axes."""

from __future__ import annotations

import csv
import json

import pytest
from dk_helpers import no_plots

from dropkit.experiment.cli import main

TINY = ["--epochs", "2", "--train-size", "300", "--hidden", "12", "--quiet", "--jobs", "1"]


@pytest.fixture(autouse=True)
def _no_plots():
    with no_plots():
        yield


def test_a_p_sweep_trains_each_p_and_tables_it(tmp_path, capsys):
    out = tmp_path / "sw"
    argv = ["sweep", *TINY, "--epochs", "1", "--p-hidden", "0.2,0.5", "--methods", "dropout"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "| p_hidden | method |" in capsys.readouterr().out
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["axes"] == {"p_hidden": [0.2, 0.5]} and "train_sizes" not in doc
    for p in (0.2, 0.5):
        summary = json.loads((out / f"p-{p}" / "summary.json").read_text())
        assert summary["dropout"]["config"]["p_hidden"] == p
    rows = (out / "runs.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rows[1:]] == [["0.2", "dropout"], ["0.5", "dropout"]]
    # a point's run resumed on its own: pointed to the sweep (was: "no config.json")
    capsys.readouterr()
    assert main(["train", "--resume", str(out / "p-0.2" / "seed-0" / "dropout")]) == 2
    assert f"dropkit sweep --resume {out}" in capsys.readouterr().err


@pytest.mark.slow
def test_a_two_axis_sweep_trains_every_point_with_its_values(tmp_path, capsys):
    out = tmp_path / "sw"
    axes = ["--p-hidden", "0.2,0.5", "--lr", "0.01,0.05", "--weight-decay", "0.002"]
    assert main(["sweep", *TINY, *axes, "--methods", "dropout", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| p_hidden | lr | method |" in printed and "| 0.5 | 0.01 | dropout |" in printed
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["axes"] == {"p_hidden": [0.2, 0.5], "lr": [0.01, 0.05]}
    points = [(r["p_hidden"], r["lr"]) for r in doc["table"]]
    assert points == [(0.2, 0.01), (0.2, 0.05), (0.5, 0.01), (0.5, 0.05)]
    for p, lr in points:
        summary = json.loads((out / f"p-{p}_lr-{lr}" / "summary.json").read_text())
        config = summary["dropout"]["config"]
        assert (config["p_hidden"], config["lr"], config["weight_decay"]) == (p, lr, 0.002)
        assert summary["dataset"]["n_train"] == 300
    with open(out / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(float(r["p_hidden"]), float(r["lr"])) for r in rows] == points
    assert {r["weight_decay"] for r in rows} == {"0.002"}
    # resumed: complete; with other axis values: refused, nothing changed
    assert main(["sweep", "--resume", str(out), "--quiet", "--jobs", "1"]) == 0
    assert "is already complete (4/4 runs" in capsys.readouterr().out
    assert main(["sweep", "--resume", str(out), "--p-hidden", "0.2,0.6"]) == 2
    assert "--p-hidden: saved 0.2,0.5, now 0.2,0.6" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (
            ["--p-hidden", "0.1,0.2", "--lr", "0.1,0.2", "--weight-decay", "0,0.1"],
            "a sweep has at most 2 axes (a table, or a heat map), got 3",
        ),
        (["--lr", "0.1,inf"], "--lr: expected comma-separated finite numbers"),
        (["--p-hidden", "0.5,0.5"], "--p-hidden: 0.5 is listed twice"),
        (
            ["--p-hidden", "0.2,1.0", "--methods", "standard,gaussian"],
            "--p-hidden 1.0 does not suit method 'gaussian'",
        ),
    ],
)
def test_bad_axes_are_refused_before_anything_is_written(tmp_path, capsys, args, match):
    out = tmp_path / "sw"
    assert main(["sweep", *TINY, *args, "--out", str(out)]) == 2
    assert match in capsys.readouterr().err
    assert not out.exists()


def test_a_method_the_axis_does_not_change_trains_once_and_serves_every_point(tmp_path):
    # standard has no dropout: under --p-hidden each point would train the same run again
    from dropkit.experiment.data import load_dataset
    from dropkit.experiment.study import StudyPlan
    from dropkit.experiment.sweep import run_sweep
    from dropkit.experiment.train import TrainConfig

    plan = StudyPlan(TrainConfig(epochs=2, hidden=(8,)), ("standard", "dropout"), (0, 1))
    data = {None: load_dataset(train_size=120)}
    axes = {"p_hidden": [0.2, 0.6]}
    table = run_sweep(plan, data, tmp_path, axes=axes, metrics=False)
    trained = sorted(
        p.parent.relative_to(tmp_path).as_posix()
        for p in tmp_path.glob("*/seed-*/*/checkpoint.npz")
    )
    assert trained == [
        "p-0.2/seed-0/dropout",
        "p-0.2/seed-0/standard",
        "p-0.2/seed-1/dropout",
        "p-0.2/seed-1/standard",
        "p-0.6/seed-0/dropout",
        "p-0.6/seed-1/dropout",
    ]
    standard = [row for row in table if row["method"] == "standard"]
    assert [row["p_hidden"] for row in table if row["method"] == "dropout"] == [0.2, 0.6]
    assert len(standard) == 2 and standard[0]["final_test_acc"] == standard[1]["final_test_acc"]
    summaries = [
        json.loads((tmp_path / f / "summary.json").read_text()) for f in ("p-0.2", "p-0.6")
    ]
    assert summaries[0]["methods"]["standard"] == summaries[1]["methods"]["standard"]
    again = run_sweep(plan, data, tmp_path, axes=axes, metrics=False)  # resumed: nothing new
    assert again == table
    assert len(list(tmp_path.glob("*/seed-*/*/checkpoint.npz"))) == 6
