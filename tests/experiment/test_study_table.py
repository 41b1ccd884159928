"""runs.csv: a study's tidy table, one row per run, equal to what summary.json says."""

from __future__ import annotations

import csv
import json

import pytest
from dk_helpers import no_plots

from dropkit import __version__
from dropkit.experiment.cli import main

TINY = ["--epochs", "2", "--train-size", "300", "--hidden", "12", "--quiet"]


@pytest.fixture(autouse=True)
def _no_plots():
    with no_plots():
        yield


def test_a_study_writes_one_row_per_run_with_its_options_results_and_versions(tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["compare", *TINY, "--seeds", "2", "--seed", "4", "--jobs", "1", "--lr", "0.02"]
    assert main([*argv, "--out", str(out)]) == 0
    assert f"wrote {out / 'runs.csv'}" in capsys.readouterr().out
    with open(out / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["seed"]) for r in rows] == [
        ("standard", "4"),
        ("standard", "5"),
        ("dropout", "4"),
        ("dropout", "5"),
    ]
    summary = json.loads((out / "summary.json").read_text())["methods"]
    for row in rows:
        per_seed = summary[row["method"]]["per_seed"][row["seed"]]
        for key in ("test_acc_at_best_val", "best_test_acc", "final_gap", "seconds"):
            assert float(row[key]) == per_seed[key]  # repr round trip: exact
        assert int(row["best_val_epoch"]) == per_seed["best_val_epoch"]
        assert row["p_hidden"] == ("0.0" if row["method"] == "standard" else "0.5")
        assert (row["lr"], row["hidden"], row["epochs"]) == ("0.02", "12", "2")
        assert (row["n_train"], row["n_val"], row["dataset"]) == ("300", "30", "mnist1d")
        assert row["dropkit_version"] == __version__ and row["backend_used"] == "numpy"
