"""The validation split, the validation-selected report and the best-validation checkpoint."""

import json
import re

import numpy as np
import pytest
from dk_helpers import no_plots
from dk_helpers import plugin_manager as _pm

import dropkit
from dropkit.experiment.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dropkit.experiment.cli import main
from dropkit.experiment.data import load_dataset
from dropkit.experiment.evaluation import evaluate
from dropkit.experiment.hookspecs import hookimpl
from dropkit.experiment.nn import MLP, softmax_cross_entropy
from dropkit.experiment.result import RECORD_KEYS, best_val_record
from dropkit.experiment.split import check_val_size, val_count, validation_split
from dropkit.experiment.study import StudyPlan, run_study
from dropkit.experiment.train import TrainConfig, train

SMALL = TrainConfig(epochs=5, hidden=(16,), batch_size=64, lr_every=2)
TINY = ["--epochs", "2", "--train-size", "300", "--hidden", "12", "--quiet"]


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist1d", train_size=300)


@pytest.fixture(autouse=True)
def _no_plots():
    """In-process command lines without the plots plugin (a second a figure)."""
    with no_plots():
        yield


def _net(config, data, params):
    net = MLP(
        [data.n_features, *config.hidden, data.n_classes],
        backend=dropkit.get_backend("numpy"),
        rng=dropkit.Generator(0),
    )
    net.params[:] = [np.asarray(p) for p in params]
    return net


# ---- the split ---------------------------------------------------------------------------------


def test_split_is_stratified_fixed_and_a_partition():
    y = np.repeat(np.arange(10), [50, 30, 40, 60, 20, 70, 10, 45, 35, 40])
    split = validation_split(y, 0.1)
    assert len(split.val) == 40 and len(split.train) == 360
    assert np.array_equal(np.sort(np.concatenate([split.train, split.val])), np.arange(400))
    assert np.all(np.diff(split.train) > 0)  # the kept examples stay in their order
    share = np.bincount(y[split.val], minlength=10)
    assert np.all(np.abs(share - np.bincount(y) * 0.1) <= 1), share
    again = validation_split(y.copy(), 0.1)
    assert np.array_equal(again.val, split.val) and again.fingerprint() == split.fingerprint()
    assert validation_split(y, 40).fingerprint() == split.fingerprint()  # 10% of 400 is 40


def test_val_size_zero_trains_on_every_example_and_sizes_are_checked():
    y = np.arange(20) % 3
    split = validation_split(y, 0)
    assert np.array_equal(split.train, np.arange(20)) and len(split.val) == 0
    assert val_count(0.1, 4000) == 400 and val_count(0.001, 10) == 1 and val_count(7, 10) == 7
    with pytest.raises(ValueError, match=r"holds out 10 of the 10 training examples.*--val-size"):
        val_count(10, 10)
    for bad in (-1, 1.0, 1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="val_size must be a count"):
            check_val_size(bad)
    for bad in (True, "0.1", None):
        with pytest.raises(TypeError, match="val_size must be a count"):
            check_val_size(bad)
    with pytest.raises(ValueError, match="val_size must be a count"):
        TrainConfig(val_size=-3)


def test_the_split_does_not_depend_on_the_seed_or_method(tmp_path, data):
    plan = StudyPlan(TrainConfig(epochs=1, hidden=(8,)), ("standard", "dropout"), (0, 1))
    runs = run_study(plan, data, tmp_path / "s", jobs=1, metrics=False)
    splits = {json.dumps(r.split) for per in runs.values() for r in per.values()}
    assert len(splits) == 1
    (split,) = splits
    assert json.loads(split)["n_val"] == 30
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["headline"]["key"] == "test_acc_at_best_val"
    stats = summary["methods"]["dropout"]["stats"]["test_acc_at_best_val"]
    assert stats["values"] == [runs["dropout"][s].test_acc_at_best_val for s in (0, 1)]


# ---- the record and the summary ----------------------------------------------------------------


def test_record_keys_losses_and_selected_numbers(data):
    result = train(SMALL, data, plugin_manager=_pm())
    assert [list(r) for r in result.history] == [list(RECORD_KEYS)] * 5
    split = validation_split(data.y_train, SMALL.val_size)
    net = _net(SMALL, data, result.params)
    x_val, y_val = data.x_train[split.val], data.y_train[split.val]
    last = result.history[-1]
    assert last["val_acc"] == evaluate(net, x_val, y_val)
    assert last["train_acc"] == evaluate(net, data.x_train[split.train], data.y_train[split.train])
    xp = net.xp
    for x, y, key in ((x_val, y_val, "val_loss"), (data.x_test, data.y_test, "test_loss")):
        want, _ = softmax_cross_entropy(xp, net.forward(x, training=False), y)
        assert last[key] == pytest.approx(want, rel=1e-5)
    s = result.summary()
    best = max(result.history, key=lambda r: (r["val_acc"], -r["val_loss"]))
    assert (s["best_val_epoch"], s["best_val_acc"]) == (best["epoch"], best["val_acc"])
    assert s["test_acc_at_best_val"] == best["test_acc"] == result.test_acc_at_best_val
    assert s["best_test_acc"] == max(r["test_acc"] for r in result.history)
    assert s["final_test_acc"] == last["test_acc"] and s["final_train_acc"] == last["train_acc"]
    assert s["final_gap"] == last["train_acc"] - last["test_acc"]
    assert s["selection"] == "validation" and s["split"] == split.to_dict()
    # the kept parameters are the best epoch's: they score its validation accuracy
    assert evaluate(_net(SMALL, data, result.best_params), x_val, y_val) == s["best_val_acc"]


def test_ties_in_validation_accuracy_go_to_the_lower_loss_then_the_earlier_epoch():
    history = [
        {"epoch": 1, "val_acc": 0.5, "val_loss": 0.7},
        {"epoch": 2, "val_acc": 0.5, "val_loss": 0.6},
        {"epoch": 3, "val_acc": 0.5, "val_loss": 0.6},
    ]
    assert best_val_record(history)["epoch"] == 2


def test_without_a_validation_set_the_report_says_test_selected(data, tmp_path):
    config = TrainConfig(**{**SMALL.to_dict(), "val_size": 0, "epochs": 2})
    result = train(config, data, out_dir=tmp_path, plugin_manager=_pm())
    assert all(r["val_acc"] is None and r["val_loss"] is None for r in result.history)
    assert all(r["test_loss"] > 0 for r in result.history)
    s = result.summary()
    assert s["test_acc_at_best_val"] is None and s["best_val_epoch"] is None
    assert s["selection"] == "test" and result.best_params is None
    assert not (tmp_path / "best.npz").exists()
    assert "best_param_0" not in load_checkpoint(tmp_path / "checkpoint.npz")[0]


# ---- best.npz and resume -----------------------------------------------------------------------


class _StopAt:
    def __init__(self, epoch):
        self.epoch = epoch

    @hookimpl
    def dropkit_epoch_end(self, run, record):
        if record["epoch"] == self.epoch:
            raise KeyboardInterrupt


def _strip(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def test_best_npz_is_the_best_epoch_and_survives_an_interrupted_resume(data, tmp_path):
    whole = train(SMALL, data, out_dir=tmp_path / "whole", plugin_manager=_pm())
    arrays, meta = load_checkpoint(tmp_path / "whole" / "best.npz")  # allow_pickle=False
    assert meta["epoch"] == whole.summary()["best_val_epoch"]
    assert meta["record"]["test_acc"] == whole.summary()["test_acc_at_best_val"]
    for i, p in enumerate(whole.best_params):
        np.testing.assert_array_equal(arrays[f"param_{i}"], p)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(SMALL, data, out_dir=cut, plugin_manager=_pm(_StopAt(3)), checkpoint_interval=0)
    resumed = train(SMALL, data, out_dir=cut, resume=True, plugin_manager=_pm())
    assert _strip(resumed.history) == _strip(whole.history)
    for a, b in zip(resumed.best_params, whole.best_params, strict=True):
        np.testing.assert_array_equal(a, b)
    got, want = load_checkpoint(cut / "best.npz"), load_checkpoint(tmp_path / "whole" / "best.npz")
    assert sorted(got[0]) == sorted(want[0])
    for name, a in want[0].items():
        np.testing.assert_array_equal(got[0][name], a)
    assert got[1]["epoch"] == want[1]["epoch"]


def test_a_stale_best_npz_is_rewritten_on_resume(data, tmp_path):
    # a kill between the checkpoint's write and best.npz's leaves an older best.npz
    config = TrainConfig(**{**SMALL.to_dict(), "epochs": 3})
    result = train(config, data, out_dir=tmp_path, plugin_manager=_pm())
    arrays, meta = load_checkpoint(tmp_path / "best.npz")
    stale = {k: np.zeros_like(a) for k, a in arrays.items()}
    save_checkpoint(tmp_path / "best.npz", stale, {**meta, "epoch": 0})
    train(config, data, out_dir=tmp_path, resume=True, plugin_manager=_pm())  # nothing to train
    arrays, meta = load_checkpoint(tmp_path / "best.npz")
    assert meta["epoch"] == result.summary()["best_val_epoch"]
    np.testing.assert_array_equal(arrays["param_0"], result.best_params[0])


def test_a_changed_split_is_refused_on_resume(data, tmp_path):
    config = TrainConfig(**{**SMALL.to_dict(), "epochs": 2})
    train(config, data, out_dir=tmp_path, plugin_manager=_pm())
    other = TrainConfig(**{**config.to_dict(), "val_size": 0.2, "epochs": 3})
    with pytest.raises(CheckpointError, match=r"val_size: saved 0\.1, now 0\.2"):
        train(other, data, out_dir=tmp_path, resume=True, plugin_manager=_pm())
    arrays, meta = load_checkpoint(tmp_path / "checkpoint.npz")
    meta["split"]["fingerprint"] = "30:0000000000000000"  # as if the split's code had changed
    save_checkpoint(tmp_path / "checkpoint.npz", arrays, meta)
    more = TrainConfig(**{**config.to_dict(), "epochs": 3})
    with pytest.raises(CheckpointError, match="trained with another validation split"):
        train(more, data, out_dir=tmp_path, resume=True, plugin_manager=_pm())


def test_a_checkpoint_from_before_validation_resumes_without_one(data, tmp_path):
    config = TrainConfig(**{**SMALL.to_dict(), "val_size": 0, "epochs": 2})
    train(config, data, out_dir=tmp_path, plugin_manager=_pm())
    arrays, meta = load_checkpoint(tmp_path / "checkpoint.npz")
    del meta["config"]["val_size"], meta["split"], meta["best_val_epoch"]
    meta["history"] = [
        {k: v for k, v in r.items() if k not in ("val_acc", "val_loss", "test_loss")}
        for r in meta["history"]
    ]
    save_checkpoint(tmp_path / "checkpoint.npz", arrays, meta)
    with pytest.raises(CheckpointError, match=r"val_size: saved 0, now 0\.1"):
        train(SMALL, data, out_dir=tmp_path, resume=True, plugin_manager=_pm())
    more = TrainConfig(**{**config.to_dict(), "epochs": 3})
    result = train(more, data, out_dir=tmp_path, resume=True, plugin_manager=_pm())
    assert [r["test_loss"] is None for r in result.history] == [True, True, False]
    assert result.summary()["selection"] == "test"


# ---- the command line --------------------------------------------------------------------------


def _status(argv):
    """``main``'s exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_compare_table_leads_with_the_validation_selected_accuracy(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["compare", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("net "))
    assert re.split(r"\s{2,}", header)[1] == "test acc at best val (epoch)"
    assert "best test acc (selected on test, as the article)" in header
    assert "300 train (30 of them held out for validation, --val-size 0.1)" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["headline"]["key"] == "test_acc_at_best_val"
    assert summary["dataset"]["n_val"] == 30
    assert (out / "dropout" / "best.npz").is_file() and (out / "standard" / "best.npz").is_file()
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["val_size"] == 0.1


def test_val_size_zero_says_every_number_is_test_selected(tmp_path, capsys):
    assert main(["compare", *TINY, "--val-size", "0", "--out", str(tmp_path / "c")]) == 0
    printed = capsys.readouterr().out
    assert "test acc at best val" not in printed
    assert "no validation set (--val-size 0): every accuracy above was selected on the test" in (
        printed
    )


def test_resume_with_another_val_size_is_refused(tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["train", *TINY, "--val-size", "50", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--val-size", "0.1", "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert "--val-size: saved 50, now 0.1" in err and "nothing was changed" in err


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.5", "must be a count >= 0 like 500"),
        ("-2", "must be a count >= 0 like 500"),
        ("lots", "must be a count >= 0 like 500"),
        ("300", "holds out 300 of the 300 training examples, leaving none to train on"),
    ],
)
def test_bad_val_sizes_are_refused_before_anything_is_written(tmp_path, capsys, value, message):
    out = tmp_path / "t"
    assert _status(["train", *TINY, "--val-size", value, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_sweep_rows_lead_with_the_validation_selected_accuracy(tmp_path, capsys):
    out = tmp_path / "sw"
    args = ["sweep", *TINY, "--train-size", "100,200", "--seeds", "2", "--jobs", "1"]
    assert main([*args, "--out", str(out)]) == 0
    assert "| train size | method | test acc at best val (%) |" in capsys.readouterr().out
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["headline"] == "test_acc_at_best_val"
    for row in doc["table"]:
        assert {"test_acc_at_best_val", "best_test_acc", "final_test_acc", "final_gap"} <= set(row)
        assert row["test_acc_at_best_val"]["n"] == 2
    summary = json.loads((out / "size-100" / "summary.json").read_text())
    assert summary["dataset"]["n_val"] == 10
