"""The training loop: history, determinism, hooks, checkpoints and exact in-process resume."""

import csv

import numpy as np
import pytest
from dk_helpers import plugin_manager as _pm
from dk_helpers import strip_seconds as _strip

from dropkit.experiment.checkpoint import CheckpointError, load_checkpoint
from dropkit.experiment.data import load_dataset
from dropkit.experiment.hookspecs import hookimpl
from dropkit.experiment.reporters import MetricsFile
from dropkit.experiment.train import PRESETS, TrainConfig, train

SMALL = TrainConfig(epochs=6, hidden=(32, 16), lr_every=2, lr_times=2, batch_size=64)


class Recorder:
    def __init__(self):
        self.events = []

    @hookimpl
    def dropkit_train_start(self, run):
        self.events.append(("start", run.name, run.start_epoch))

    @hookimpl
    def dropkit_epoch_end(self, run, record):
        self.events.append(("epoch", record["epoch"]))

    @hookimpl
    def dropkit_train_end(self, run, result):
        self.events.append(("end", len(result.history)))


def test_history_schedule_and_events(data):
    rec = Recorder()
    result = train(SMALL, data, name="n", plugin_manager=_pm(rec))
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4, 5, 6]
    assert [r["lr"] for r in result.history] == [0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125]
    for r in result.history:
        assert list(r) == [
            "epoch",
            "loss",
            "train_acc",
            "val_acc",
            "val_loss",
            "test_acc",
            "test_loss",
            "lr",
            "seconds",
        ]
        assert 0 <= r["train_acc"] <= 1 and 0 <= r["test_acc"] <= 1 and r["seconds"] > 0
        assert 0 <= r["val_acc"] <= 1 and r["val_loss"] > 0 and r["test_loss"] > 0
    assert rec.events == [("start", "n", 0), *[("epoch", e) for e in range(1, 7)], ("end", 6)]
    s = result.summary()
    assert s["best_test_acc"] == max(r["test_acc"] for r in result.history)
    assert result.history[s["best_test_epoch"] - 1]["test_acc"] == s["best_test_acc"]
    assert result.history[-1]["train_acc"] > 0.2  # it learns: chance is 0.1 (fixed seed)


def test_same_seed_same_run_different_seed_different_run(data):
    a = train(SMALL, data, plugin_manager=_pm())
    b = train(SMALL, data, plugin_manager=_pm())
    c = train(
        TrainConfig(**{**SMALL.to_dict(), "hidden": (32, 16), "seed": 1}),
        data,
        plugin_manager=_pm(),
    )
    assert _strip(a.history) == _strip(b.history)
    for pa, pb in zip(a.params, b.params, strict=True):
        np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(a.params[0], c.params[0])


def test_resume_in_process_is_bit_identical(data, tmp_path):
    full = train(SMALL, data, plugin_manager=_pm())
    short = TrainConfig(**{**SMALL.to_dict(), "hidden": (32, 16), "epochs": 3})
    train(short, data, out_dir=tmp_path, plugin_manager=_pm())
    rec = Recorder()
    resumed = train(SMALL, data, out_dir=tmp_path, resume=True, plugin_manager=_pm(rec))
    assert rec.events[0] == ("start", "run", 3)
    assert _strip(resumed.history) == _strip(full.history)
    for pa, pb in zip(resumed.params, full.params, strict=True):
        np.testing.assert_array_equal(pa, pb)


def test_existing_checkpoint_is_never_overwritten_silently(data, tmp_path):
    train(SMALL, data, out_dir=tmp_path, plugin_manager=_pm())
    before = (tmp_path / "checkpoint.npz").read_bytes()
    with pytest.raises(FileExistsError, match="already exists: resume it"):
        train(SMALL, data, out_dir=tmp_path, plugin_manager=_pm())
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


def test_mismatched_checkpoint_is_a_clear_error(data, tmp_path):
    train(SMALL, data, out_dir=tmp_path, plugin_manager=_pm())
    other = TrainConfig(**{**SMALL.to_dict(), "hidden": (32, 16), "p_hidden": 0.2})
    with pytest.raises(CheckpointError, match=r"different configuration \(p_hidden: saved 0.5"):
        train(other, data, out_dir=tmp_path, resume=True, plugin_manager=_pm())
    with pytest.raises(CheckpointError, match="made on different data"):
        train(
            SMALL,
            load_dataset("mnist1d", train_size=299),
            out_dir=tmp_path,
            resume=True,
            plugin_manager=_pm(),
        )


def test_corrupt_checkpoint_is_reported_and_kept(data, tmp_path):
    train(SMALL, data, out_dir=tmp_path, plugin_manager=_pm())
    path = tmp_path / "checkpoint.npz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="is corrupt or truncated"):
        train(SMALL, data, out_dir=tmp_path, resume=True, plugin_manager=_pm())
    assert path.read_bytes() == raw[: len(raw) // 2]
    path.write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_checkpoint_contents_and_metrics_file(data, tmp_path):
    result = train(SMALL, data, out_dir=tmp_path, plugin_manager=_pm(MetricsFile()))
    arrays, meta = load_checkpoint(tmp_path / "checkpoint.npz")
    assert meta["epoch"] == 6 and len(meta["history"]) == 6
    assert len(meta["generators"]) == 3  # input dropout + two hidden
    assert sorted(arrays) == sorted(
        f"{kind}_{i}" for kind in ("param", "velocity", "best_param") for i in range(6)
    )
    np.testing.assert_array_equal(arrays["param_0"], result.params[0])
    assert meta["best_val_epoch"] == result.summary()["best_val_epoch"]
    for i in range(6):
        np.testing.assert_array_equal(arrays[f"best_param_{i}"], result.best_params[i])
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert float(rows[-1]["test_acc"]) == result.history[-1]["test_acc"]
    for name in ("val_acc", "val_loss", "test_loss"):  # every number of the record
        want = result.history[-1][name]
        assert (float(rows[-1][name]) if rows[-1][name] else None) == want, name
    assert result.history[-1]["val_acc"] is not None  # (this run has a validation set)


def test_article_preset():
    cfg = TrainConfig(**PRESETS["article-cifar10"])
    assert cfg.hidden == (2000, 800) and cfg.batch_size == 256 and cfg.lr == 1e-3
    assert (cfg.lr_every, cfg.lr_times, cfg.weight_decay, cfg.p_hidden, cfg.epochs) == (
        50,
        4,
        1e-3,
        0.5,
        300,
    )


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("p_hidden", 1.5, "p is the probability of DROPPING"),
        ("epochs", 0, "epochs must be"),
        ("hidden", (0,), "hidden sizes"),
        ("mode", "x", "mode must be"),
        ("lr", -1, "lr must be"),
    ],
)
def test_bad_config(field, value, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})
