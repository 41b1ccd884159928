"""The training loop's fast path: nothing read back inside an epoch, ReLU without a select,
checkpoints on a time cadence; each the same results, bit for bit, as the plain way."""

import math
import warnings

import numpy as np
import pytest
from dk_helpers import plugin_manager as _pm
from dk_helpers import strip_seconds as _strip

import dropkit
from dropkit.experiment.checkpoint import PeriodicCheckpoint, load_checkpoint
from dropkit.experiment.data import Dataset
from dropkit.experiment.hookspecs import hookimpl
from dropkit.experiment.nn import MLP, relu_scaled, softmax_cross_entropy
from dropkit.experiment.optim import SGD, StepSchedule
from dropkit.experiment.split import validation_split
from dropkit.experiment.train import TrainConfig, TrainingDivergedError, evaluate, train
from dropkit.ops import relu_dropout
from dropkit.testing.strategies import to_numpy

# ops on plain arrays go to the backend under test (dropkit.testing's plugin)
pytestmark = pytest.mark.usefixtures("dropkit_use_backend")

CONFIG = TrainConfig(
    epochs=3, hidden=(32, 16), batch_size=64, p_input=0.2, mode="vanilla", lr_every=2
)


def _reference_run(config, data):
    """The loop written the plain way: the loss read back after every step, accuracy by
    :func:`evaluate`; what the loop computed before it kept its numbers on the device."""
    dropkit_backend = dropkit.get_backend(config.backend)
    xp = dropkit_backend.xp
    net = MLP(
        [data.n_features, *config.hidden, data.n_classes],
        backend=dropkit_backend,
        rng=dropkit.Generator(config.seed),
        p_hidden=config.p_hidden,
        p_input=config.p_input,
        mode=config.mode,
        dtype=config.dtype,
    )
    opt = SGD(
        xp,
        net.params,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
        decay=net.decay_mask(),
    )
    schedule = StepSchedule(config.lr, config.lr_every, config.lr_times)
    split = validation_split(data.y_train, config.val_size)
    x, y = xp.asarray(data.x_train[split.train]), xp.asarray(data.y_train[split.train])
    x_val, y_val = xp.asarray(data.x_train[split.val]), xp.asarray(data.y_train[split.val])
    x_test, y_test = xp.asarray(data.x_test), xp.asarray(data.y_test)

    def eval_loss(x, y):
        return softmax_cross_entropy(xp, net.forward(x, training=False), y)[0]

    n, history = x.shape[0], []
    for epoch in range(config.epochs):
        lr = schedule.lr(epoch)
        order = np.random.default_rng([config.seed, epoch]).permutation(n)
        loss_sum = 0.0
        for b in range(0, n, config.batch_size):
            idx = xp.asarray(order[b : b + config.batch_size])
            xb, yb = xp.take(x, idx, axis=0), xp.take(y, idx, axis=0)
            loss, dlogits = softmax_cross_entropy(xp, net.forward(xb, training=True), yb)
            opt.step(net.backward(dlogits), lr)
            loss_sum += loss * xb.shape[0]
        history.append(
            {
                "epoch": epoch + 1,
                "loss": loss_sum / n,
                "train_acc": evaluate(net, x, y),
                "val_acc": evaluate(net, x_val, y_val),
                "val_loss": eval_loss(x_val, y_val),
                "test_acc": evaluate(net, x_test, y_test),
                "test_loss": eval_loss(x_test, y_test),
                "lr": lr,
            }
        )
    return history, [to_numpy(p) for p in net.params]


@pytest.mark.parametrize("p_hidden", [0.0, 0.5])
def test_loop_equals_the_step_by_step_reference(data, p_hidden):
    # the epoch loss is the same float64 sum in the same order; counts are integers
    config = TrainConfig(**{**CONFIG.to_dict(), "p_hidden": p_hidden})
    history, params = _reference_run(config, data)
    result = train(config, data, plugin_manager=_pm())
    # the evaluation losses are float32 sums divided once, the reference's float32 means
    losses = ("val_loss", "test_loss")
    for got, want in zip(_strip(result.history), history, strict=True):
        assert {k: v for k, v in got.items() if k not in losses} == {
            k: v for k, v in want.items() if k not in losses
        }
        for key in losses:
            assert got[key] == pytest.approx(want[key], rel=1e-5), key
    for got, want in zip(result.params, params, strict=True):
        assert got.tobytes() == want.tobytes()


def test_nothing_is_read_back_inside_an_epoch(data, monkeypatch):
    # every conversion of an array to a host value, counted: the same for 2 and 8 steps an
    # epoch (a read per step, as float(loss) was, would add 6 per epoch)
    import array_api_strict

    array_type = type(array_api_strict.asarray(0))
    counts = {"n": 0}
    for name in ("__float__", "__int__", "__bool__", "__index__", "__dlpack__", "__array__"):
        real = getattr(array_type, name, None)
        if real is None:
            continue

        def counted(self, *args, _real=real, **kwargs):
            counts["n"] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(array_type, name, counted)
    small = Dataset("small", data.x_train[:200], data.y_train[:200], *_test_part(data), 10)
    reads = []
    for batch in (100, 25):
        counts["n"] = 0
        config = TrainConfig(epochs=2, hidden=(8,), batch_size=batch, backend="array_api_strict")
        train(config, small, plugin_manager=_pm())
        reads.append(counts["n"])
    assert reads[0] == reads[1] > 0, reads


def _test_part(data):
    return data.x_test[:50], data.y_test[:50]


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        ("too big", r"y_train must hold class indices in \[0, 10\).*got 10 at index 3"),
        ("negative", r"y_train must hold class indices.*got -1 at index 3"),
        ("float", r"y_train must be a 1-d integer array.*dtype float64"),
    ],
)
def test_labels_are_checked_once_before_anything_is_written(data, tmp_path, labels, match):
    y = data.y_train.copy()
    if labels == "float":
        y = y.astype(np.float64)
    else:
        y[3] = 10 if labels == "too big" else -1
    bad = Dataset("bad", data.x_train, y, data.x_test, data.y_test, 10)
    with pytest.raises(ValueError, match=match):
        train(CONFIG, bad, out_dir=tmp_path / "run", plugin_manager=_pm())
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_test_labels_are_checked_too(data):
    y = data.y_test.copy()
    y[0] = 12
    bad = Dataset("bad", data.x_train, data.y_train, data.x_test, y, 10)
    with pytest.raises(ValueError, match=r"y_test must hold class indices.*got 12 at index 0"):
        train(CONFIG, bad, plugin_manager=_pm())


# ---------------------------------------------------------------------------------------
# ReLU without a select, and the loss as an array


SPECIAL = [-0.0, 0.0, np.nan, -np.nan, -1.5, 2.5, np.inf, -np.inf, 1e-45, -1e-45, 3e-39]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("factor", [1.0, 0.7, 0.0])
def test_relu_scaled_equals_relu_dropout_without_dropout(dropkit_backend, dtype, factor):
    # the generic path of relu_dropout: where(not (z <= 0), z * factor, 0); bit for bit on
    # every value but NaN (whose sign and payload nothing depends on)
    xp = dropkit_backend.xp
    if not hasattr(xp, dtype) or (dtype == "float64" and dropkit_backend.name == "jax"):
        pytest.skip(f"{dropkit_backend.name} has no {dtype} here")
    rs = np.random.default_rng(0)
    values = np.concatenate(
        [np.array(SPECIAL), rs.standard_normal(200) * 10.0 ** rs.integers(-3, 3, 200)]
    )
    with np.errstate(over="ignore", under="ignore"):
        z = xp.asarray(values.astype(dtype))
    # vanilla evaluation with p = 1 - factor: that is where the factor comes from
    p = 1.0 - factor
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):  # inf * 0 is NaN here
        warnings.simplefilter("ignore", RuntimeWarning)
        want = to_numpy(relu_dropout(z, p, training=False, mode="vanilla"))
        got = to_numpy(relu_scaled(xp, z, factor))
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    bits = f"u{np.dtype(dtype).itemsize}"
    assert np.array_equal(got[~nan].view(bits), want[~nan].view(bits))
    assert np.array_equal(to_numpy(z).view(bits), values.astype(dtype).view(bits))  # untouched


def test_relu_scaled_example_values():
    import array_api_compat.numpy as xp

    h = relu_scaled(xp, np.array([-0.0, -2.0, 4.0, -np.inf, np.inf], np.float32), 0.5)
    assert h.tolist() == [0.0, 0.0, 2.0, 0.0, np.inf]
    assert not np.signbit(h).any()


def test_loss_as_array_is_the_float_loss(dropkit_backend):
    xp = dropkit_backend.xp
    rs = np.random.default_rng(1)
    logits = xp.asarray(rs.standard_normal((7, 4)).astype(np.float32))
    labels = xp.asarray(rs.integers(0, 4, 7))
    loss, grad = softmax_cross_entropy(xp, logits, labels)
    array, grad2 = softmax_cross_entropy(xp, logits, labels, check_labels=False, as_array=True)
    assert tuple(array.shape) == () and isinstance(loss, float)
    assert float(array) == loss
    assert np.array_equal(to_numpy(grad), to_numpy(grad2))


def test_loss_options_are_flags_and_label_check_can_be_skipped():
    import array_api_compat.numpy as xp

    logits, labels = np.zeros((2, 3)), np.array([0, 3])
    with pytest.raises(ValueError, match="class indices"):
        softmax_cross_entropy(xp, logits, labels)
    loss, _ = softmax_cross_entropy(xp, logits, labels, check_labels=False)
    assert math.isfinite(loss)  # unchecked: label 3 matches no class (caller's promise)
    with pytest.raises(TypeError, match="as_array"):
        softmax_cross_entropy(xp, logits, np.array([0, 1]), as_array="yes")


# ---------------------------------------------------------------------------------------
# Checkpoint cadence


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _saver(tmp_path, interval):
    clock = FakeClock()
    return PeriodicCheckpoint(tmp_path / "checkpoint.npz", interval, clock=clock), clock


def _epoch_on_disk(tmp_path):
    path = tmp_path / "checkpoint.npz"
    return load_checkpoint(path)[1]["epoch"] if path.exists() else None


def test_periodic_checkpoint_writes_first_then_every_interval_then_final(tmp_path):
    saver, clock = _saver(tmp_path, 10.0)
    w = np.zeros(3)
    copies = []

    def state(copy):
        copies.append(copy)
        return {"w": w.copy() if copy else w}

    seen = []
    for epoch, now, final in [(1, 0, False), (2, 4, False), (3, 9.9, False), (4, 10, False)]:
        clock.now = now
        w[:] = epoch
        saver.submit(state, {"epoch": epoch}, final=final)
        seen.append((_epoch_on_disk(tmp_path), saver.pending_epoch))
    clock.now = 11
    w[:] = 5
    saver.submit(state, {"epoch": 5}, final=True)
    seen.append((_epoch_on_disk(tmp_path), saver.pending_epoch))
    assert seen == [(1, None), (1, 2), (1, 3), (4, None), (5, None)]
    assert copies == [False, True, True, False, False]  # copies only of what is kept
    assert load_checkpoint(tmp_path / "checkpoint.npz")[0]["w"].tolist() == [5.0] * 3


def test_periodic_checkpoint_flushes_the_kept_state_as_it_was(tmp_path):
    saver, _ = _saver(tmp_path, 10.0)
    w = np.zeros(2)
    state = lambda copy: {"w": w.copy() if copy else w}  # noqa: E731
    saver.submit(state, {"epoch": 1}, final=False)
    w[:] = 2
    saver.submit(state, {"epoch": 2}, final=False)
    w[:] = np.nan  # what a diverging next epoch does to the live arrays
    saver.flush_on_error()
    arrays, meta = load_checkpoint(tmp_path / "checkpoint.npz")
    assert meta["epoch"] == 2 and arrays["w"].tolist() == [2.0, 2.0]
    assert saver.pending_epoch is None
    saver.flush_on_error()  # nothing kept: nothing written
    assert _epoch_on_disk(tmp_path) == 2


def test_periodic_checkpoint_interval_zero_writes_every_time(tmp_path):
    saver, _ = _saver(tmp_path, 0.0)
    for epoch in (1, 2, 3):
        saver.submit(lambda copy: {"w": np.ones(1)}, {"epoch": epoch}, final=False)
        assert _epoch_on_disk(tmp_path) == epoch and saver.pending_epoch is None


def test_a_failing_flush_warns_and_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    saver, _ = _saver(tmp_path, 10.0)
    saver.submit(lambda copy: {"w": np.ones(1)}, {"epoch": 1}, final=False)
    saver.submit(lambda copy: {"w": np.ones(1)}, {"epoch": 2}, final=False)

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("dropkit.experiment.checkpoint.save_checkpoint", full_disk)
    with pytest.warns(RuntimeWarning, match="could not save epoch 2.*No space left"):
        saver.flush_on_error()
    assert _epoch_on_disk(tmp_path) == 1


class CheckpointWatcher:
    """Reads the checkpoint at the end of every epoch (after the loop saved, if it did)."""

    def __init__(self, folder, fail_at=None):
        self.folder, self.fail_at, self.seen = folder, fail_at, []

    @hookimpl
    def dropkit_epoch_end(self, run, record):
        self.seen.append(_epoch_on_disk(self.folder))
        if record["epoch"] == self.fail_at:
            raise RuntimeError("stop here")


def test_train_with_interval_zero_saves_after_every_epoch(data, tmp_path):
    watcher = CheckpointWatcher(tmp_path)
    train(CONFIG, data, out_dir=tmp_path, plugin_manager=_pm(watcher), checkpoint_interval=0)
    assert watcher.seen == [1, 2, 3]


def test_train_saves_first_and_last_epoch_and_the_last_one_on_an_error(data, tmp_path):
    config = TrainConfig(**{**CONFIG.to_dict(), "epochs": 5})
    watcher = CheckpointWatcher(tmp_path / "a")
    train(
        config, data, out_dir=tmp_path / "a", plugin_manager=_pm(watcher), checkpoint_interval=1e9
    )
    assert watcher.seen == [1, 1, 1, 1, 5]

    # an exception in epoch 4 (here from a hook, as Ctrl-C would be): epoch 4 is on disk, and
    # the run resumed from it ends bit-identical to the uninterrupted one
    folder = tmp_path / "b"
    watcher = CheckpointWatcher(folder, fail_at=4)
    with pytest.raises(RuntimeError, match="stop here"):
        train(config, data, out_dir=folder, plugin_manager=_pm(watcher), checkpoint_interval=1e9)
    assert watcher.seen == [1, 1, 1, 1] and _epoch_on_disk(folder) == 4
    resumed = train(config, data, out_dir=folder, resume=True, plugin_manager=_pm())
    full = load_checkpoint(tmp_path / "a" / "checkpoint.npz")
    got = load_checkpoint(folder / "checkpoint.npz")
    assert _strip(got[1]["history"]) == _strip(full[1]["history"])
    for name, want in full[0].items():
        assert got[0][name].tobytes() == want.tobytes(), name
    assert len(resumed.history) == 5


def test_divergence_keeps_the_last_finite_epoch_whatever_the_interval(data, tmp_path, monkeypatch):
    import dropkit.experiment.train as train_module

    real = train_module.softmax_cross_entropy
    calls = {"n": 0}

    def poisoned(xp, logits, labels, **options):  # NaN from the 3rd epoch's first step on
        calls["n"] += 1
        loss, grad = real(xp, logits, labels, **options)
        return (loss * np.nan, grad * np.nan) if calls["n"] > 2 * 5 else (loss, grad)

    monkeypatch.setattr(train_module, "softmax_cross_entropy", poisoned)
    with pytest.raises(TrainingDivergedError, match="loss became nan in epoch 3") as info:
        train(CONFIG, data, out_dir=tmp_path, plugin_manager=_pm(), checkpoint_interval=1e9)
    assert "the last finite checkpoint (epoch 2)" in str(info.value)
    arrays, meta = load_checkpoint(tmp_path / "checkpoint.npz")
    assert meta["epoch"] == 2 and all(np.isfinite(a).all() for a in arrays.values())


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (-1.0, ValueError, "checkpoint_interval must be >= 0"),
        (float("nan"), ValueError, "checkpoint_interval must be >= 0"),
        ("2", TypeError, "checkpoint_interval must be a number of seconds"),
        (True, TypeError, "checkpoint_interval must be a number of seconds"),
    ],
)
def test_bad_checkpoint_interval(data, tmp_path, value, error, match):
    with pytest.raises(error, match=match):
        train(CONFIG, data, out_dir=tmp_path, plugin_manager=_pm(), checkpoint_interval=value)
    assert not any(tmp_path.iterdir())


def test_no_warning_storm_from_a_run(data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(TrainConfig(epochs=1, hidden=(8,)), data, plugin_manager=_pm())


@pytest.mark.slow  # several processes or a training: seconds
def test_bench_compare_runs(tmp_path):
    # the benchmark uses the loop's private parts: a smoke run keeps it in step with them
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[2] / "benchmarks" / "bench_compare.py"
    args = ["--rounds", "1", "--epochs", "2", "--train-size", "300"]
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "CPU " in done.stdout and "| dropout |" in done.stdout and "overhead" in done.stdout
