"""Multi-method, multi-seed studies and sweeps: statistics, nets, runs, resume, bad input."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from dk_helpers import no_plots
from dk_helpers import snapshot as _snapshot

import dropkit
import dropkit.layers
from dropkit import Generator
from dropkit.experiment.cli import main
from dropkit.experiment.hookspecs import hookimpl
from dropkit.experiment.methods import METHODS, MethodUnavailableError, noise_layer, parse_methods
from dropkit.experiment.nn import MLP, SELU_ALPHA, SELU_SCALE, selu, softmax_cross_entropy
from dropkit.experiment.rundir import RunConfigError, read_run_config
from dropkit.experiment.stats import T975, describe, t_quantile_975
from dropkit.experiment.study import STATS_KEYS, StudyPlan, run_folder, run_study
from dropkit.experiment.train import TrainConfig, TrainResult, train
from dropkit.layers import Dropout

TINY = ["--epochs", "2", "--train-size", "300", "--hidden", "12", "--quiet"]
SUMMARY_KEYS = {
    "best_val_acc",
    "best_val_epoch",
    "test_acc_at_best_val",
    "best_train_acc",
    "best_train_epoch",
    "best_test_acc",
    "best_test_epoch",
    "final_train_acc",
    "final_val_acc",
    "final_test_acc",
    "final_test_loss",
    "final_gap",
    "selection",
    "epochs",
    "seconds",
    "split",
    "threads",
    "config",
}


@pytest.fixture(autouse=True)
def _no_plots(request):
    """In-process runs without the plots plugin (a second a figure), unless a test wants it."""
    if "with_plots" in request.fixturenames:
        yield
        return
    with no_plots():
        yield


@pytest.fixture
def with_plots():
    """Keep the plots plugin for this test."""


def _params(folder: Path) -> list[np.ndarray]:
    with np.load(folder / "checkpoint.npz") as z:
        return [z[k] for k in sorted(z.files) if k.startswith("param_")]


def _needs(method: str) -> None:
    """Skip (with the reason) when this installation lacks the method's layer."""
    try:
        noise_layer(METHODS[method].noise, method=method)
    except MethodUnavailableError as exc:
        pytest.skip(str(exc))


# ---- statistics ----------------------------------------------------------------------------------


def test_describe_on_known_values():
    d = describe([0.61, 0.63, 0.60, 0.64])
    assert d["n"] == 4
    assert d["mean"] == pytest.approx(0.62, abs=1e-15)
    std = math.sqrt(((0.01) ** 2 + (0.01) ** 2 + (0.02) ** 2 + (0.02) ** 2) / 3)
    assert d["std"] == pytest.approx(std, rel=1e-12)
    half = 3.18244631 * std / 2
    assert d["ci95"] == pytest.approx([0.62 - half, 0.62 + half], rel=1e-12)
    one = describe([0.5])
    assert one["std"] is None and one["ci95"] is None and one["mean"] == 0.5
    same = describe([0.3, 0.3, 0.3])
    assert same["std"] == 0 and same["ci95"] == [0.3, 0.3]
    for bad in ([], [float("nan"), 1.0]):
        with pytest.raises(ValueError, match="describe needs"):
            describe(bad)


def test_t_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in range(1, 31):
        assert T975[df - 1] == pytest.approx(stats.t.ppf(0.975, df), abs=1e-8)
    for df in (31, 40, 60, 120, 1000, 10**6):
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-5)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="df must be an integer >= 1"):
            t_quantile_975(bad)


# ---- the method table ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("standard,nope", "unknown method 'nope'; the methods are standard, dropout, gaussian"),
        ("", "--methods needs a comma-separated list of methods among standard, dropout"),
        ("standard,,dropout", "unknown method '' (an empty entry)"),
        ("dropout,dropout", "'dropout' is listed twice"),
    ],
)
def test_parse_methods_errors(text, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        parse_methods(text)


@pytest.mark.parametrize("method", ["gaussian", "alpha"])
def test_a_method_without_its_layer_is_refused(monkeypatch, tmp_path, capsys, method):
    layer = METHODS[method].layer
    monkeypatch.delattr(dropkit.layers, layer, raising=False)
    with pytest.raises(
        MethodUnavailableError, match=re.escape(f"needs dropkit.layers.{layer}, which")
    ):
        parse_methods(f"standard,{method}")
    with pytest.raises(MethodUnavailableError, match=re.escape(f"dropkit.layers.{layer}")):
        TrainConfig(noise=method)
    out = tmp_path / "s"
    assert main(["compare", *TINY, "--methods", f"dropout,{method}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"method '{method}' needs dropkit.layers.{layer}, which this installation lacks" in err
    assert not out.exists()


def test_methods_name_their_activation():
    assert METHODS["alpha"].activation_for("relu") == "selu"
    assert METHODS["dropout"].activation_for("selu") == "selu"
    assert not METHODS["standard"].drop and METHODS["dropout"].drop


# ---- the net: activations and noise layers -------------------------------------------------------


class _Plain(Dropout):
    """Dropout under another class: the MLP takes its generic path."""


def test_generic_path_equals_the_fused_path():
    b = dropkit.get_backend("numpy")
    kw = {"backend": b, "p_hidden": 0.4, "p_input": 0.2, "dtype": "float64"}
    fused = MLP([5, 7, 6, 3], rng=Generator(2), **kw)
    generic = MLP([5, 7, 6, 3], rng=Generator(2), noise=_Plain, **kw)
    assert fused._fused and not generic._fused
    x = np.random.default_rng(0).normal(size=(9, 5))
    y = np.arange(9) % 3
    for net in (fused, generic):
        net.loss, dl = softmax_cross_entropy(net.xp, net.forward(x, training=True), y)
        net.grads = net.backward(dl)
    assert fused.loss == pytest.approx(generic.loss, rel=1e-14)
    for g1, g2 in zip(fused.grads, generic.grads, strict=True):
        np.testing.assert_allclose(g1, g2, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(
        fused.forward(x, training=False), generic.forward(x, training=False)
    )


@pytest.mark.parametrize(("activation", "noise", "p"), [("selu", None, 0.3), ("selu", _Plain, 0.0)])
def test_selu_net_gradients_match_finite_differences(activation, noise, p):
    b = dropkit.get_backend("numpy")
    net = MLP(
        [3, 5, 4, 3], backend=b, rng=Generator(5), p_hidden=p, p_input=p / 2, noise=noise,
        activation=activation, dtype="float64",
    )  # fmt: skip
    assert not net._fused
    for i in range(1, len(net.params), 2):
        net.params[i] = net.params[i] - 0.3  # negative pre-activations exercise SELU's exp side
    rs = np.random.default_rng(1)
    x, y = rs.normal(size=(6, 3)), rs.integers(0, 3, 6)
    states = [layer.generator.state for layer in net.dropouts]

    def loss_and_grads(params):
        net.params = list(params)
        for layer, state in zip(net.dropouts, states, strict=True):
            layer.generator = Generator.from_state(state)  # the same noise every time
        loss, dlogits = softmax_cross_entropy(net.xp, net.forward(x, training=True), y)
        return loss, net.backward(dlogits)

    params = [p.copy() for p in net.params]
    _, grads = loss_and_grads(params)
    eps = 1e-6
    for k, base in enumerate(params):
        numeric = np.zeros_like(base)
        for idx in np.ndindex(*base.shape):
            for sign in (1, -1):
                trial = list(params)
                trial[k] = base.copy()
                trial[k][idx] += sign * eps
                numeric[idx] += sign * loss_and_grads(trial)[0] / (2 * eps)
        np.testing.assert_allclose(grads[k], numeric, rtol=1e-5, atol=1e-8, err_msg=f"param {k}")


def test_selu_and_lecun_weights():
    z = np.array([-30.0, -1.0, 0.0, 0.5, 40.0])
    expected = SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(z))
    np.testing.assert_allclose(selu(dropkit.get_backend("numpy").xp, z), expected, rtol=1e-15)
    b = dropkit.get_backend("numpy")
    he = MLP([300, 200, 2], backend=b, rng=Generator(7), dtype="float64")
    lecun = MLP([300, 200, 2], backend=b, rng=Generator(7), dtype="float64", activation="selu")
    np.testing.assert_allclose(lecun.params[0] * math.sqrt(2), he.params[0], rtol=1e-14)
    # the sample std of 60000 normals times sqrt(1/300): within 6 of its standard errors
    assert abs(lecun.params[0].std() * math.sqrt(300) - 1) < 6 * math.sqrt(1 / 2 / 60_000)


def test_net_and_config_refuse_bad_activation_and_noise():
    b = dropkit.get_backend("numpy")
    with pytest.raises(ValueError, match="activation must be one of relu, selu, got 'tanh'"):
        MLP([2, 2], backend=b, rng=0, activation="tanh")
    with pytest.raises(TypeError, match=r"noise must be dropkit\.layers\.Dropout or a subclass"):
        MLP([2, 2], backend=b, rng=0, noise=int)
    with pytest.raises(ValueError, match="activation must be one of relu, selu, got 'tanh'"):
        TrainConfig(activation="tanh")
    with pytest.raises(ValueError, match="noise must be one of dropout, gaussian, alpha, got 'x'"):
        TrainConfig(noise="x")


# ---- old run folders ----------------------------------------------------------------------------


def test_old_folders_without_noise_and_activation_resume(tmp_path, capsys):
    out = tmp_path / "old"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    doc = json.loads((out / "config.json").read_text())
    for key in ("noise", "activation"):  # as written before these keys existed
        del doc["config"][key]
    (out / "config.json").write_text(json.dumps(doc))
    from dropkit.experiment.checkpoint import load_checkpoint, save_checkpoint

    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    for key in ("noise", "activation"):
        del meta["config"][key]
    save_checkpoint(out / "checkpoint.npz", arrays, meta)
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 0
    _, meta = load_checkpoint(out / "checkpoint.npz")
    assert [r["epoch"] for r in meta["history"]] == [1, 2, 3]
    assert "noise" in read_run_config(out, list(TrainConfig().to_dict())).config


def test_config_json_noise_and_activation_types(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"config": {"lr": 0.1, "noise": 5}, "data": {"data_dir": None, "train_size": 1}})
    )
    with pytest.raises(RunConfigError, match=r"'config\.noise' must be a string, got 5"):
        read_run_config(tmp_path, ["lr", "noise", "activation"])


# ---- studies -------------------------------------------------------------------------------------


def test_methods_of_a_seed_share_their_start_and_seeds_differ(data):
    plan = StudyPlan(TrainConfig(epochs=2, hidden=(12,)), ("standard", "dropout"), (0, 1))
    b = dropkit.get_backend("numpy")

    def start(cfg):
        return MLP([40, 12, 10], backend=b, rng=Generator(cfg.seed), p_hidden=cfg.p_hidden).params

    configs = plan.configs()
    for a, c in zip(start(configs[0, "standard"]), start(configs[0, "dropout"]), strict=True):
        np.testing.assert_array_equal(a, c)
    assert not np.array_equal(start(configs[0, "standard"])[0], start(configs[1, "standard"])[0])
    r0 = train(configs[0, "dropout"], data)
    r1 = train(configs[1, "dropout"], data)
    assert r0.history != r1.history
    assert not np.array_equal(r0.params[0], r1.params[0])


@pytest.mark.slow
def test_serial_and_parallel_studies_are_bit_identical(tmp_path, data):
    plan = StudyPlan(TrainConfig(epochs=2, hidden=(12,)), ("standard", "dropout"), (3, 4))
    serial = run_study(plan, data, tmp_path / "serial", jobs=1)
    parallel = run_study(plan, data, tmp_path / "parallel", jobs=2)
    for seed, method in plan.configs():
        a, b = serial[method][seed], parallel[method][seed]
        assert isinstance(b, TrainResult)
        assert [(r["loss"], r["test_acc"]) for r in a.history] == [
            (r["loss"], r["test_acc"]) for r in b.history
        ]
        for pa, pb in zip(a.params, b.params, strict=True):
            np.testing.assert_array_equal(pa, pb)
        for folder in ("serial", "parallel"):
            run = run_folder(tmp_path / folder, seed, method)
            assert (run / "checkpoint.npz").is_file() and (run / "metrics.csv").is_file()
    s1 = json.loads((tmp_path / "serial" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "parallel" / "summary.json").read_text())
    for method in plan.methods:
        assert s1["methods"][method]["stats"] == s2["methods"][method]["stats"]


def test_summary_keeps_todays_entries_and_adds_every_seed(tmp_path, capsys):
    out = tmp_path / "s"
    assert (
        main(["compare", *TINY, "--seeds", "3", "--seed", "5", "--jobs", "1", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "test acc at best val % (mean ± std)" in printed and "95% interval" in printed
    assert "best test acc % (selected on test, as the article)" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"standard", "dropout", "methods", "seeds", "dataset", "headline"}
    assert summary["headline"]["key"] == "test_acc_at_best_val"
    assert summary["seeds"] == [5, 6, 7]
    assert summary["dataset"]["n_train"] == 300 and summary["dataset"]["n_val"] == 30
    for method in ("standard", "dropout"):
        assert set(summary[method]) == SUMMARY_KEYS
        entry = summary["methods"][method]
        assert sorted(entry["per_seed"]) == ["5", "6", "7"]
        for key in STATS_KEYS:
            values = [entry["per_seed"][s][key] for s in ("5", "6", "7")]
            assert entry["stats"][key]["values"] == values
            assert summary[method][key] == pytest.approx(sum(values) / 3, rel=1e-12)
            assert entry["stats"][key] == describe(values)
    assert summary["standard"]["config"]["p_hidden"] == 0.0
    assert summary["dropout"]["config"]["p_hidden"] == 0.5
    history = json.loads((out / "history.json").read_text())
    assert [len(history["dropout"][s]) for s in ("5", "6", "7")] == [2, 2, 2]
    plan = json.loads((out / "study.json").read_text())
    assert plan["methods"] == ["standard", "dropout"] and plan["seeds"] == [5, 6, 7]


@pytest.mark.parametrize("method", ["gaussian", "alpha"])
def test_new_methods_run_in_a_study(tmp_path, data, method):
    _needs(method)
    plan = StudyPlan(TrainConfig(epochs=2, hidden=(12,)), ("standard", method), (0,))
    runs = run_study(plan, data, tmp_path / "s", jobs=1)
    cfg = runs[method][0].config
    assert cfg.noise == METHODS[method].noise
    assert cfg.activation == METHODS[method].activation_for("relu")


class _StopAtRun:
    """Interrupts the study (like Ctrl-C) after the first epoch of its third run."""

    def __init__(self) -> None:
        self.starts = 0

    @hookimpl
    def dropkit_train_start(self, run):
        self.starts += 1

    @hookimpl
    def dropkit_epoch_end(self, run, record):
        if self.starts == 3 and record["epoch"] == 1:
            raise KeyboardInterrupt


def test_an_interrupted_study_resumes_to_the_uninterrupted_result(tmp_path, capsys):
    args = [*TINY, "--epochs", "3", "--seeds", "2", "--jobs", "1"]
    whole = tmp_path / "whole"
    assert main(["compare", *args, "--out", str(whole)]) == 0
    cut = tmp_path / "cut"
    assert main(["compare", *args, "--out", str(cut)], plugins=[_StopAtRun()]) == 130
    assert f"continue with --resume {cut}" in capsys.readouterr().err
    assert not (cut / "summary.json").exists()
    assert main(["compare", "--resume", str(cut), "--quiet", "--jobs", "1"]) == 0
    for seed in (0, 1):
        for method in ("standard", "dropout"):
            for a, b in zip(
                _params(run_folder(whole, seed, method)),
                _params(run_folder(cut, seed, method)),
                strict=True,
            ):
                np.testing.assert_array_equal(a, b)
    s1 = json.loads((whole / "summary.json").read_text())["methods"]
    s2 = json.loads((cut / "summary.json").read_text())["methods"]
    for method in ("standard", "dropout"):
        assert s1[method]["stats"]["best_test_acc"] == s2[method]["stats"]["best_test_acc"]
    # to more epochs, from the command line
    assert main(["compare", "--resume", str(cut), "--epochs", "4", "--quiet", "--jobs", "1"]) == 0
    history = json.loads((cut / "history.json").read_text())
    assert [r["epoch"] for r in history["dropout"]["1"]] == [1, 2, 3, 4]


@pytest.mark.slow
def test_sweep_writes_its_table_and_figures(tmp_path, capsys, with_plots):
    out = tmp_path / "sw"
    args = ["sweep", *TINY, "--train-size", "150,300", "--seeds", "2", "--jobs", "1"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| train size | method |" in printed
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["train_sizes"] == [150, 300]
    rows = [(r["train_size"], r["method"]) for r in doc["table"]]
    assert rows == [(150, "standard"), (150, "dropout"), (300, "standard"), (300, "dropout")]
    assert all(r["best_test_acc"]["n"] == 2 for r in doc["table"])
    md = (out / "sweep.md").read_text()
    assert md.count("\n| 150 |") == 2 and md.count("\n| 300 |") == 2
    for n in (150, 300):
        summary = json.loads((out / f"size-{n}" / "summary.json").read_text())
        assert summary["dataset"]["n_train"] == n
        assert (out / f"size-{n}" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    table = (out / "runs.csv").read_text().splitlines()
    assert table[0].startswith("train_size,method,seed,") and len(table) == 1 + 8
    assert [line.split(",")[:2] for line in table[1:]].count(["300", "dropout"]) == 2
    # resumed as a whole: nothing left to train, the files are rewritten from the checkpoints
    assert main(["sweep", "--resume", str(out), "--quiet", "--jobs", "1"]) == 0
    assert json.loads((out / "sweep.json").read_text())["table"] == doc["table"]


def test_default_compare_is_todays_two_net_job(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["compare", *TINY, "--out", str(out)]) == 0
    assert "standard (no dropout)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "config.json",
        "dropout",
        "history.json",
        "standard",
        "summary.json",
    ]
    assert set(json.loads((out / "summary.json").read_text())) == {
        "standard",
        "dropout",
        "dataset",
        "headline",
    }


# ---- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["compare", "--methods", "standard,bogus"], "unknown method 'bogus'; the methods are"),
        (["compare", "--methods", "dropout,dropout"], "'dropout' is listed twice"),
        (["compare", "--methods", ""], "--methods needs a comma-separated list of methods"),
        (["compare", "--seeds", "0"], "--seeds must be at least 1"),
        (["compare", "--seeds", "-2"], "--seeds must be at least 1"),
        (["compare", "--jobs", "0"], "--jobs must be at least 1"),
        (["sweep", "--jobs", "-1"], "--jobs must be at least 1"),
        (["sweep", "--seeds", "0"], "--seeds must be at least 1"),
        (["sweep", "--train-size", "500,abc"], "sizes must be positive integers like 500,1000"),
        (["sweep", "--train-size", "0,100"], "sizes must be positive integers"),
        (["sweep", "--train-size", ""], "sizes must be positive integers"),
        (["sweep", "--train-size", "200,200"], "200 is listed twice"),
        (["sweep", "--train-size", "200,99999"], "--train-size 99999: train_size must be between"),
        (["sweep", "--methods", "nope"], "unknown method 'nope'"),
        (["compare", "--seeds", "2", "--seed", str(2**64 - 1)], "is not below 2**64"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(tmp_path, capsys, args, match):
    out = tmp_path / "out"
    tiny = [a for a in TINY if a not in ("--train-size", "300")] if args[0] == "sweep" else TINY
    status = main([*args, *tiny, "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("dropkit: error:") and "Traceback" not in err
    assert match in err, err
    assert not out.exists()


def test_bad_activation_lists_the_choices(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--activation", "tanh"])
    assert "invalid choice: 'tanh' (choose from relu, selu)" in capsys.readouterr().err.replace(
        "'relu', 'selu'", "relu, selu"
    )


def test_study_folders_refuse_what_does_not_continue_them(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["compare", *TINY, "--seeds", "2", "--jobs", "1", "--out", str(out)]) == 0
    before = _snapshot(out)
    cases = [
        (["compare", *TINY, "--seeds", "2", "--out", str(out)], "already holds a study"),
        (["compare", "--resume", str(out), "--methods", "dropout"], "--methods: saved"),
        (["compare", "--resume", str(out), "--seeds", "3"], "--seeds: saved 2, now 3"),
        (["compare", "--resume", str(out), "--activation", "selu"], "--activation: saved relu"),
        (["compare", "--resume", str(out), "--lr", "0.2"], "--lr: saved 0.05, now 0.2"),
        (["compare", "--resume", str(out), "--epochs", "1"], "is fewer than the 2 epochs"),
        (["train", "--resume", str(out)], f"continue it with `dropkit compare --resume {out}`"),
        (["sweep", "--resume", str(out)], f"continue it with `dropkit compare --resume {out}`"),
        (["train", *TINY, "--out", str(out)], "already holds a run"),
    ]
    for args, match in cases:
        status = main(args)
        err = capsys.readouterr().err
        assert status == 2 and match in err, (args, err)
        assert _snapshot(out) == before, args
    classic = tmp_path / "c"
    assert main(["compare", *TINY, "--out", str(classic)]) == 0
    assert main(["compare", "--resume", str(classic), "--seeds", "2"]) == 2
    assert "holds a two-net comparison, not a study" in capsys.readouterr().err
