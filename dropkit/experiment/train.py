"""The training loop of the dropout experiment, on any backend, with exact resume.

The loop trains :class:`~dropkit.experiment.nn.MLP` with SGD on minibatches reshuffled
every epoch (the last partial batch included), evaluates the training
examples, the validation examples held out of them
(:mod:`~dropkit.experiment.split`) and the test set every epoch
(:mod:`~dropkit.experiment.result` describes the record), keeps the
parameters of the best validation epoch, checkpoints atomically, and
announces its events through the pluggy hooks of :mod:`~dropkit.experiment.hookspecs`:
progress, metric files and plots are plugins, not code in here. The BLAS
libraries run with the thread count :mod:`~dropkit.experiment.threads` chooses
for the net's matrix sizes.

The run's hyperparameters are a :class:`~dropkit.experiment.config.TrainConfig`
(:mod:`~dropkit.experiment.config`; re-exported here with the presets).

Determinism: the initial weights and the dropout streams come from the seed
(:class:`~dropkit.Generator`), the epoch's batch order from ``(seed, epoch)``,
the validation split from the labels and ``val_size`` alone. A checkpoint
holds parameters, velocities, the best validation epoch's parameters,
generator states, epoch and history, so a run resumed from it ends
bit-identical to an uninterrupted one.

Examples
--------
>>> from dropkit.experiment.data import load_dataset
>>> data = load_dataset("mnist1d", train_size=256)
>>> result = train(TrainConfig(epochs=2, hidden=(32,)), data)
>>> len(result.history), 0 <= result.test_acc_at_best_val <= 1
(2, True)
>>> result.split["n_train"], result.split["n_val"]  # val_size 0.1: 26 of 256 held out
(230, 26)
"""

from __future__ import annotations

import math
import time
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import pluggy

from ..checks import to_numpy
from ..random import Generator
from ..selection import get_backend
from .best import BestFile
from .checkpoint import CHECKPOINT_INTERVAL, PeriodicCheckpoint
from .checkpoint import CHECKPOINT_NAME as CHECKPOINT
from .config import PRESETS, TrainConfig, layer_widths, memory_estimate
from .data import Dataset
from .evaluation import correct_count as _correct
from .evaluation import evaluate, scores
from .hookspecs import SGDKernel
from .methods import noise_layer
from .nn import MLP, softmax_cross_entropy
from .optim import SGD, StepSchedule
from .plugins import new_plugin_manager, sgd_kernel
from .result import Run, TrainResult, is_better
from .resume import check_checkpoint
from .rundir import RunLock, is_held_here, remove_stale_temporaries
from .split import Split, validation_split
from .threads import BlasLimit, ThreadChoice, blas_threads, choose_threads, step_flops

__all__ = [
    "PRESETS",
    "Run",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "check_checkpoint",
    "evaluate",
    "memory_estimate",
    "train",
]


def _check_labels(data: Dataset) -> None:
    """Labels are checked once here, not in every step (that would read back every step)."""
    for part in ("train", "test"):
        x, y = getattr(data, f"x_{part}"), np.asarray(getattr(data, f"y_{part}"))
        if y.shape != (x.shape[0],) or y.dtype.kind not in "iu":
            raise ValueError(
                f"y_{part} must be a 1-d integer array, one label per row of x_{part} "
                f"({x.shape[0]}), got shape {y.shape} and dtype {y.dtype}"
            )
        bad = (y < 0) | (y >= data.n_classes)
        if bad.any():
            first = int(np.argmax(bad))
            raise ValueError(
                f"y_{part} must hold class indices in [0, {data.n_classes}) (n_classes is "
                f"{data.n_classes}), got {int(y[first])} at index {first}"
            )


def _state(net: MLP, opt: SGD, copy: bool) -> dict[str, Any]:
    """Parameters and velocities by checkpoint name (copies, if they are kept for later)."""
    xp = net.xp
    keep = (lambda a: xp.asarray(a, copy=True)) if copy else (lambda a: a)
    arrays = {f"param_{i}": keep(p) for i, p in enumerate(net.params)}
    arrays.update({f"velocity_{i}": keep(v) for i, v in enumerate(opt.velocity)})
    return arrays


def _net_and_optimizer(
    config: TrainConfig, data: Dataset, backend: Any, kernel: SGDKernel | None
) -> tuple[MLP, SGD]:
    """The run's network (initial weights from the seed) and its optimiser (with ``kernel``)."""
    net = MLP(
        layer_widths(config, data.n_features, data.n_classes),
        backend=backend,
        rng=Generator(config.seed),
        p_hidden=config.p_hidden,
        p_input=config.p_input,
        mode=config.mode,
        dtype=config.dtype,
        activation=config.activation,
        noise=noise_layer(config.noise),
    )
    opt = SGD(
        backend.xp,
        net.params,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
        decay=net.decay_mask(),
        kernel=kernel,
    )
    return net, opt


def _steps(
    net: MLP, opt: SGD, config: TrainConfig, epoch: int, lr: float, x: Any, y: Any
) -> tuple[list[Any], list[int]]:
    """The epoch's training steps: the step losses (0-d arrays, not read back), batch sizes."""
    xp = net.xp
    n = x.shape[0]
    # the batch order comes from (seed, epoch): one upload per epoch, sliced on the device
    order = xp.asarray(np.random.default_rng([config.seed, epoch]).permutation(n))
    sizes, losses = [], []
    for b in range(0, n, config.batch_size):
        idx = order[b : min(b + config.batch_size, n)]
        xb, yb = xp.take(x, idx, axis=0), xp.take(y, idx, axis=0)
        logits = net.forward(xb, training=True)
        loss, dlogits = softmax_cross_entropy(xp, logits, yb, check_labels=False, as_array=True)
        opt.step(net.backward(dlogits), lr)
        losses.append(loss)
        sizes.append(xb.shape[0])
    return losses, sizes


def _epoch(
    net: MLP, opt: SGD, config: TrainConfig, epoch: int, lr: float, arrays: tuple[Any, ...]
) -> dict[str, Any] | str:
    """Train one epoch and evaluate; the record, or what diverged.

    ``arrays``: ``(x_train, y_train, x_test, y_test)``, then ``x_val, y_val``
    if the run has a validation set. Nothing is read back to the host inside
    the epoch: the step losses stay on the device until the end, where they,
    the evaluation's counts and losses and the parameters' finiteness are
    read at once (a GPU runs ahead of Python instead of waiting at every step).
    """
    xp = net.xp
    x_train, y_train, x_test, y_test = arrays[:4]
    n = x_train.shape[0]
    losses, sizes = _steps(net, opt, config, epoch, lr, x_train, y_train)
    parts = [_correct(net, x_train, y_train), *scores(net, x_test, y_test)]
    if len(arrays) > 4:
        parts += scores(net, arrays[4], arrays[5])
    finite = [xp.all(xp.isfinite(a)) for a in (*net.params, *opt.velocity)]
    # the epoch's one wait for the device: every number of the record is read here
    loss_sum = 0.0
    for loss, size in zip(to_numpy(xp.stack(losses)).tolist(), sizes, strict=True):
        if not math.isfinite(loss):
            return f"the training loss became {loss}"
        loss_sum += loss * size  # the same float64 sum, in the same order, as step by step
    if not bool(np.all(to_numpy(xp.stack(finite)))):
        return "a parameter became NaN or inf"
    values = [to_numpy(a).item() for a in parts]
    n_test = x_test.shape[0]
    n_val = arrays[4].shape[0] if len(arrays) > 4 else 0
    return {
        "epoch": epoch + 1,
        "loss": loss_sum / n,
        "train_acc": int(values[0]) / n,
        "val_acc": int(values[3]) / n_val if n_val else None,
        "val_loss": float(values[4]) / n_val if n_val else None,
        "test_acc": int(values[1]) / n_test,
        "test_loss": float(values[2]) / n_test if n_test else None,
        "lr": lr,
    }


class TrainingDivergedError(RuntimeError):
    """The training loss (or a parameter) became NaN or infinite; nothing of it was saved."""

    def __init__(self, message: str, *, epoch: int, kept_epoch: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.kept_epoch = kept_epoch


def _diverged(
    name: str, what: str, epoch: int, lr: float, ckpt: Path | None
) -> TrainingDivergedError:
    if ckpt is not None and epoch > 1:
        kept = f"the last finite checkpoint (epoch {epoch - 1}) is kept in {ckpt.parent}"
    else:
        kept = "no checkpoint was written"
    return TrainingDivergedError(
        f"[{name}] diverged: {what} in epoch {epoch} (learning rate {lr:g}); {kept}. Start "
        "a new run in another --out folder with gentler settings (a lower --lr or "
        "--weight-decay, less --momentum)",
        epoch=epoch,
        kept_epoch=epoch - 1,
    )


def train(
    config: TrainConfig,
    data: Dataset,
    *,
    name: str = "run",
    out_dir: str | Path | None = None,
    resume: bool = False,
    plugin_manager: pluggy.PluginManager | None = None,
    checkpoint_interval: float = CHECKPOINT_INTERVAL,
    threads: int | ThreadChoice | None = None,
) -> TrainResult:
    """Train one network; checkpoint into ``out_dir`` as it goes.

    Parameters
    ----------
    config : TrainConfig
        Hyperparameters (``config.val_size``: the validation examples held
        out of ``data``'s training set).
    data : Dataset
        Standardised float32 data.
    name : str
        The run's name (hooks, file names).
    out_dir : path, optional
        Folder for ``checkpoint.npz``, ``best.npz`` (the best validation
        epoch's parameters; see :mod:`~dropkit.experiment.best`) and the
        plugins' files. Without it, nothing is written. The run holds the
        folder's :class:`~dropkit.experiment.rundir.RunLock` (unless this
        thread already does): another run there is refused.
    resume : bool
        Continue from ``out_dir/checkpoint.npz``. Without it an existing
        checkpoint is an error, never silently overwritten.
    plugin_manager : pluggy.PluginManager, optional
        Whose hooks announce the events (default: a new one with the installed
        plugins, :func:`~dropkit.experiment.plugins.new_plugin_manager`).
    checkpoint_interval : float
        Seconds between two checkpoints (0: after every epoch). The first and
        the last epoch are always saved, and so is the last finished epoch
        when the run stops on an exception (divergence, Ctrl-C, a failing
        plugin): only a killed process (SIGKILL, power loss) can lose work,
        at most this long plus one epoch, and it resumes bit-identically from
        the checkpoint it left. Writing fsyncs twice: after every short epoch
        that costs more than the epoch itself on slow disks.
    threads : int, optional
        BLAS threads while the run trains (restored after). Default: chosen
        for the net's matrix sizes, unless a thread variable such as
        ``OPENBLAS_NUM_THREADS`` is set (see :mod:`~dropkit.experiment.threads`).
        The choice is in ``summary()["threads"]``; it does not change the bits.
        A :class:`~dropkit.experiment.threads.ThreadChoice` is used as given
        (a study's workers get the choice their parent made).

    Raises
    ------
    TrainingDivergedError
        The loss or a parameter became NaN or infinite; the last checkpoint
        (of the last finite epoch) is kept, nothing of the diverged epoch is saved.
    """
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is None:
        raise ValueError("resume needs out_dir (the folder holding checkpoint.npz)")
    if isinstance(checkpoint_interval, bool) or not isinstance(checkpoint_interval, Real):
        raise TypeError(
            f"checkpoint_interval must be a number of seconds, got {checkpoint_interval!r}"
        )
    if not checkpoint_interval >= 0:
        raise ValueError(
            f"checkpoint_interval must be >= 0 seconds (0: every epoch), got {checkpoint_interval}"
        )
    _check_labels(data)
    split = validation_split(np.asarray(data.y_train), config.val_size)
    batch = min(config.batch_size, len(split.train))
    layers = layer_widths(config, data.n_features, data.n_classes)
    if isinstance(threads, ThreadChoice):
        choice = threads
    else:
        choice = choose_threads(step_flops(layers, batch), requested=threads)
    lock = None if out is None or is_held_here(out) else RunLock(out).acquire()
    try:
        if out is not None:
            remove_stale_temporaries(out)
        with blas_threads(choice) as limit:
            return _train(
                config,
                data,
                name,
                out,
                resume,
                plugin_manager,
                float(checkpoint_interval),
                (split, limit),
            )
    finally:
        if lock is not None:
            lock.release()


def _arrays(xp: Any, config: TrainConfig, data: Dataset, split: Split) -> tuple[Any, ...]:
    """The run's arrays on its device: train, test, and (if any) validation rows."""
    dtype = getattr(xp, config.dtype)
    x, y = np.asarray(data.x_train), np.asarray(data.y_train)
    arrays = [
        xp.asarray(x[split.train] if len(split.val) else x, dtype=dtype),
        xp.asarray(y[split.train] if len(split.val) else y),
        xp.asarray(data.x_test, dtype=dtype),
        xp.asarray(data.y_test),
    ]
    if len(split.val):
        arrays += [xp.asarray(x[split.val], dtype=dtype), xp.asarray(y[split.val])]
    return tuple(arrays)


def _train(
    config: TrainConfig,
    data: Dataset,
    name: str,
    out: Path | None,
    resume: bool,
    plugin_manager: pluggy.PluginManager | None,
    checkpoint_interval: float,
    setup: tuple[Split, BlasLimit],
) -> TrainResult:
    split, limit = setup
    choice = limit.choice
    pm = plugin_manager if plugin_manager is not None else new_plugin_manager()
    ckpt = out / CHECKPOINT if out is not None else None
    if ckpt is not None and ckpt.exists() and not resume:
        raise FileExistsError(
            f"{ckpt} already exists: resume it (--resume {out}) or choose another --out"
        )
    if resume and ckpt is not None and not ckpt.exists():
        raise FileNotFoundError(f"nothing to resume: no {CHECKPOINT} in {out}")

    backend = get_backend(config.backend)
    xp = backend.xp
    dtype = getattr(xp, config.dtype)
    history: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    best_file = BestFile(out) if out is not None else None
    if resume and ckpt is not None:
        arrays, meta = check_checkpoint(ckpt, config, data, backend.name)
        if best_file is not None:
            best_file.sync(arrays, meta)
    net, opt = _net_and_optimizer(config, data, backend, sgd_kernel(pm, xp))
    schedule = StepSchedule(config.lr, config.lr_every, config.lr_times)
    best: dict[str, Any] | None = None  # the best validation epoch's record
    best_params: list[Any] = []  # and its parameters (copies, never changed in place)
    if meta:
        for i in range(len(net.params)):
            net.params[i] = xp.asarray(arrays[f"param_{i}"], dtype=dtype)
            opt.velocity[i] = xp.asarray(arrays[f"velocity_{i}"], dtype=dtype)
        for layer, state in zip(net.dropouts, meta["generators"], strict=True):
            layer.generator = Generator.from_state(state)
        history = meta["history"]
        if meta.get("best_val_epoch") is not None:
            best = history[meta["best_val_epoch"] - 1]
            best_params = [
                xp.asarray(arrays[f"best_param_{i}"], dtype=dtype) for i in range(len(net.params))
            ]

    device = _arrays(xp, config, data, split)
    fingerprint, split_doc = data.fingerprint(), split.to_dict()
    run = Run(
        name,
        config,
        out,
        backend.name,
        len(split.train),
        data.x_test.shape[0],
        history,
        len(history),
        n_val=len(split.val),
        threads=choice.to_dict(),
    )
    pm.hook.dropkit_train_start(run=run)
    after_write = best_file.update if best_file is not None else None
    saver = None
    if ckpt is not None:
        saver = PeriodicCheckpoint(ckpt, checkpoint_interval, after_write=after_write)

    def saved(copy: bool) -> dict[str, Any]:
        arrays = _state(net, opt, copy)
        arrays.update({f"best_param_{i}": p for i, p in enumerate(best_params)})
        return arrays

    # overflow is checked below (loss and parameters), not warned about
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            for epoch in range(len(history), config.epochs):
                limit.refresh()  # libraries loaded since (a backend's kernels, a plugin's)
                start = time.perf_counter()
                lr = schedule.lr(epoch)
                record = _epoch(net, opt, config, epoch, lr, device)
                if isinstance(record, str):
                    raise _diverged(name, record, epoch + 1, lr, ckpt)
                if is_better(record, best):
                    best = record
                    best_params = [xp.asarray(p, copy=True) for p in net.params]
                record["seconds"] = time.perf_counter() - start
                history.append(record)
                if saver is not None:
                    meta = {
                        "name": name,
                        "epoch": epoch + 1,
                        "config": config.to_dict(),
                        "history": list(history),
                        "generators": [layer.generator.state for layer in net.dropouts],
                        "dataset_fingerprint": fingerprint,
                        "split": split_doc,
                        "best_val_epoch": None if best is None else best["epoch"],
                        "backend": backend.name,
                    }
                    saver.submit(saved, meta, final=epoch + 1 == config.epochs)
                pm.hook.dropkit_epoch_end(run=run, record=record)
        except BaseException:
            if saver is not None:  # the last finished epoch, as if saved after every epoch
                saver.flush_on_error()
            raise

    result = TrainResult(
        name,
        config,
        history,
        [to_numpy(p) for p in net.params],
        best_params=[to_numpy(p) for p in best_params] if best is not None else None,
        split=split_doc,
        threads=choice.to_dict(),
    )
    pm.hook.dropkit_train_end(run=run, result=result)
    return result
