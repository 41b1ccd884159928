"""`dropkit compare` and `dropkit train` from the command line."""

import json
import pickle

import numpy as np
import pytest

from dropkit.experiment.cli import main

TINY = ["--epochs", "3", "--train-size", "300", "--hidden", "16", "--quiet"]


def test_compare_writes_summary_history_and_figure(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "standard (no dropout)" in printed and "best test acc" in printed
    summary = json.loads((out / "summary.json").read_text())
    for net in ("standard", "dropout"):
        for key in ("best_train_acc", "best_test_acc"):
            assert 0 <= summary[net][key] <= 1
    assert summary["standard"]["config"]["p_hidden"] == 0.0
    assert summary["dropout"]["config"]["p_hidden"] == 0.5
    history = json.loads((out / "history.json").read_text())
    assert len(history["standard"]) == len(history["dropout"]) == 3
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    for net in ("standard", "dropout"):
        assert (out / net / "checkpoint.npz").exists() and (out / net / "metrics.csv").exists()


def test_compare_refuses_to_overwrite_and_resumes_to_more_epochs(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", *TINY, "--out", str(out)]) == 0
    before = (out / "summary.json").read_bytes()
    assert main(["compare", *TINY, "--out", str(out)]) == 2
    assert "already holds a run: continue it with --resume" in capsys.readouterr().err
    assert (out / "summary.json").read_bytes() == before
    assert main(["compare", "--resume", str(out), "--epochs", "5", "--quiet"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history["dropout"]] == [1, 2, 3, 4, 5]


def test_train_command_and_flags(tmp_path, capsys):
    out = tmp_path / "one"
    args = [
        "train",
        *TINY,
        "--out",
        str(out),
        "--p-hidden",
        "0.3",
        "--p-input",
        "0.1",
        "--mode",
        "vanilla",
        "--nesterov",
        "--weight-decay",
        "0",
        "--lr",
        "0.01",
        "--batch-size",
        "50",
        "--seed",
        "7",
        "--backend",
        "numpy",
    ]
    assert main(args) == 0
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["p_hidden"] == 0.3 and cfg["p_input"] == 0.1 and cfg["mode"] == "vanilla"
    assert cfg["nesterov"] is True and cfg["batch_size"] == 50 and cfg["seed"] == 7
    assert "best test" in capsys.readouterr().out
    assert (out / "curves.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "article-cifar10"], "pass --data-dir"),
        (["--dataset", "mnist", "--data-dir", "/nonexistent"], "not found in /nonexistent"),
        (["--p-hidden", "1.5"], "probability of DROPPING"),
        (["--backend", "nope"], "unknown backend 'nope'"),
    ],
)
def test_user_errors_are_one_clear_line(tmp_path, capsys, args, message):
    assert main(["train", *TINY, "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dropkit: error:") and message in err


def test_article_preset_on_cifar10_files(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rs = np.random.default_rng(0)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rs.integers(0, 256, (20, 3072), dtype=np.uint8),
            b"labels": rs.integers(0, 10, 20).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--preset",
                "article-cifar10",
                "--data-dir",
                str(tmp_path),
                "--epochs",
                "1",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["hidden"] == [2000, 800] and cfg["dataset"] == "cifar10" and cfg["epochs"] == 1
