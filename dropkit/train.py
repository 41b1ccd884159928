"""The training loop of the dropout experiment, on any backend, with exact resume.

The loop trains :class:`~dropkit.nn.MLP` with SGD on minibatches reshuffled
every epoch (the last partial batch included), evaluates on the full train and
test sets every epoch, checkpoints atomically, and announces its events through
the pluggy hooks of :mod:`dropkit.hookspecs`: progress, metric files and plots
are plugins, not code in here.

Determinism: the initial weights and the dropout streams come from the seed
(:class:`~dropkit.Generator`), the epoch's batch order from ``(seed, epoch)``.
A checkpoint holds parameters, velocities, generator states, epoch and history,
so a run resumed from it ends bit-identical to an uninterrupted one.

Examples
--------
>>> from dropkit.data import load_dataset
>>> data = load_dataset("mnist1d", train_size=256)
>>> result = train(TrainConfig(epochs=2, hidden=(32,)), data)
>>> len(result.history), 0 <= result.best_test_acc <= 1
(2, True)
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pluggy

from ._arrays import check_mode, check_p, to_numpy
from .checkpoint import CHECKPOINT_NAME as CHECKPOINT
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import Dataset
from .nn import MLP, accuracy, softmax_cross_entropy
from .optim import SGD, StepSchedule
from .random import Generator
from .registry import get_backend, get_plugin_manager

__all__ = ["PRESETS", "Run", "TrainConfig", "TrainResult", "evaluate", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run (defaults: the MNIST-1D experiment).

    ``p_hidden`` and ``p_input`` are DROP probabilities. The learning rate is
    ``lr`` halved every ``lr_every`` epochs, ``lr_times`` times.
    """

    dataset: str = "mnist1d"
    hidden: tuple[int, ...] = (512, 256)
    p_hidden: float = 0.5
    p_input: float = 0.0
    mode: str = "inverted"
    lr: float = 0.05
    lr_every: int = 75
    lr_times: int = 3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-3
    batch_size: int = 256
    epochs: int = 300
    seed: int = 0
    backend: str | None = None
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check_p(self.p_hidden)
        check_p(self.p_input)
        check_mode(self.mode)
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden sizes must be positive, got {self.hidden}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.dtype not in ("float16", "float32", "float64"):
            raise ValueError(f"dtype must be float16, float32 or float64, got {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**d, "hidden": tuple(d["hidden"])})


#: Named hyperparameter sets. ``article-cifar10``: the source article's run.
PRESETS: dict[str, dict[str, Any]] = {
    "mnist1d": {},
    "article-cifar10": {
        "dataset": "cifar10",
        "hidden": (2000, 800),
        "batch_size": 256,
        "lr": 1e-3,
        "lr_every": 50,
        "lr_times": 4,
        "weight_decay": 1e-3,
        "p_hidden": 0.5,
        "p_input": 0.0,
        "epochs": 300,
    },
}


@dataclass
class Run:
    """What the hooks see of a run in progress."""

    name: str
    config: TrainConfig
    out_dir: Path | None
    backend: str
    n_train: int
    n_test: int
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 0


@dataclass
class TrainResult:
    """The outcome of a run: history, best accuracies and when they were reached."""

    name: str
    config: TrainConfig
    history: list[dict[str, Any]]
    params: list[np.ndarray]

    def _best(self, key: str) -> tuple[float, int]:
        best = max(self.history, key=lambda r: r[key])  # first epoch reaching the maximum
        return best[key], best["epoch"]

    @property
    def best_train_acc(self) -> float:
        """Best full-training-set accuracy over the epochs."""
        return self._best("train_acc")[0]

    @property
    def best_test_acc(self) -> float:
        """Best test accuracy over the epochs."""
        return self._best("test_acc")[0]

    @property
    def seconds(self) -> float:
        """Training time summed over the epochs (evaluation included)."""
        return float(sum(r["seconds"] for r in self.history))

    def summary(self) -> dict[str, Any]:
        """Best accuracies (in [0, 1]) with their epochs, the final gap, and time."""
        train_acc, train_epoch = self._best("train_acc")
        test_acc, test_epoch = self._best("test_acc")
        last = self.history[-1]
        return {
            "best_train_acc": train_acc,
            "best_train_epoch": train_epoch,
            "best_test_acc": test_acc,
            "best_test_epoch": test_epoch,
            "final_train_acc": last["train_acc"],
            "final_test_acc": last["test_acc"],
            "final_gap": last["train_acc"] - last["test_acc"],
            "epochs": len(self.history),
            "seconds": self.seconds,
            "config": self.config.to_dict(),
        }


def evaluate(net: MLP, x: Any, y: Any, batch: int = 4096) -> float:
    """Accuracy of ``net`` (evaluation mode) on ``x``, ``y``, in batches."""
    correct = 0
    n = x.shape[0]
    for start in range(0, n, batch):
        logits = net.forward(x[start : start + batch, ...], training=False)
        correct += accuracy(net.xp, logits, y[start : start + batch])
    return correct / n


def _state_arrays(net: MLP, opt: SGD) -> dict[str, np.ndarray]:
    arrays = {f"param_{i}": to_numpy(p) for i, p in enumerate(net.params)}
    arrays.update({f"velocity_{i}": to_numpy(v) for i, v in enumerate(opt.velocity)})
    return arrays


def _check_resumable(path: Path, meta: dict[str, Any], config: TrainConfig, data: Dataset) -> None:
    saved = meta.get("config", {})
    mine = config.to_dict()
    different = sorted(k for k in mine if k != "epochs" and saved.get(k) != mine[k])
    if different:
        detail = ", ".join(f"{k}: saved {saved.get(k)!r}, now {mine[k]!r}" for k in different)
        raise CheckpointError(
            f"checkpoint {path} belongs to a different configuration ({detail}); resume with "
            "the same settings or use another --out folder"
        )
    if meta.get("dataset_fingerprint") != data.fingerprint():
        raise CheckpointError(
            f"checkpoint {path} was made on different data (fingerprint "
            f"{meta.get('dataset_fingerprint')} != {data.fingerprint()}); resume with the same "
            "dataset, data dir and train size"
        )


def train(
    config: TrainConfig,
    data: Dataset,
    *,
    name: str = "run",
    out_dir: str | Path | None = None,
    resume: bool = False,
    plugin_manager: pluggy.PluginManager | None = None,
) -> TrainResult:
    """Train one network; checkpoint into ``out_dir`` after every epoch.

    Parameters
    ----------
    config : TrainConfig
        Hyperparameters.
    data : Dataset
        Standardised float32 data.
    name : str
        The run's name (hooks, file names).
    out_dir : path, optional
        Folder for ``checkpoint.npz`` (and the plugins' files). Without it,
        nothing is written.
    resume : bool
        Continue from ``out_dir/checkpoint.npz``. Without it an existing
        checkpoint is an error, never silently overwritten.
    plugin_manager : pluggy.PluginManager, optional
        Whose hooks announce the events (default: the entry-point plugins).
    """
    pm = plugin_manager if plugin_manager is not None else get_plugin_manager()
    out = Path(out_dir) if out_dir is not None else None
    ckpt = out / CHECKPOINT if out is not None else None
    if resume and ckpt is None:
        raise ValueError("resume needs out_dir (the folder holding checkpoint.npz)")
    if ckpt is not None and ckpt.exists() and not resume:
        raise FileExistsError(
            f"{ckpt} already exists: resume it (--resume {out}) or choose another --out"
        )
    if resume and ckpt is not None and not ckpt.exists():
        raise FileNotFoundError(f"nothing to resume: no {CHECKPOINT} in {out}")

    backend = get_backend(config.backend)
    xp = backend.xp
    net = MLP(
        [data.n_features, *config.hidden, data.n_classes],
        backend=backend,
        rng=Generator(config.seed),
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
        backend=backend,
    )
    schedule = StepSchedule(config.lr, config.lr_every, config.lr_times)
    history: list[dict[str, Any]] = []
    if resume and ckpt is not None:
        arrays, meta = load_checkpoint(ckpt)
        _check_resumable(ckpt, meta, config, data)
        dtype = getattr(xp, config.dtype)
        for i in range(len(net.params)):
            net.params[i] = xp.asarray(arrays[f"param_{i}"], dtype=dtype)
            opt.velocity[i] = xp.asarray(arrays[f"velocity_{i}"], dtype=dtype)
        for layer, state in zip(net.dropouts, meta["generators"], strict=True):
            layer.generator = Generator.from_state(state)
        history = meta["history"]

    x_train = xp.asarray(data.x_train, dtype=getattr(xp, config.dtype))
    y_train = xp.asarray(data.y_train)
    x_test = xp.asarray(data.x_test, dtype=getattr(xp, config.dtype))
    y_test = xp.asarray(data.y_test)
    n = data.x_train.shape[0]
    fingerprint = data.fingerprint()
    run = Run(name, config, out, backend.name, n, data.x_test.shape[0], history, len(history))
    pm.hook.dropkit_train_start(run=run)

    for epoch in range(len(history), config.epochs):
        start = time.perf_counter()
        lr = schedule.lr(epoch)
        order = np.random.default_rng([config.seed, epoch]).permutation(n)
        loss_sum = 0.0
        for b in range(0, n, config.batch_size):
            idx = xp.asarray(order[b : b + config.batch_size])
            xb, yb = xp.take(x_train, idx, axis=0), xp.take(y_train, idx, axis=0)
            loss, dlogits = softmax_cross_entropy(xp, net.forward(xb, training=True), yb)
            opt.step(net.backward(dlogits), lr)
            loss_sum += loss * xb.shape[0]
        record = {
            "epoch": epoch + 1,
            "loss": loss_sum / n,
            "train_acc": evaluate(net, x_train, y_train),
            "test_acc": evaluate(net, x_test, y_test),
            "lr": lr,
            "seconds": time.perf_counter() - start,
        }
        history.append(record)
        if ckpt is not None:
            save_checkpoint(
                ckpt,
                _state_arrays(net, opt),
                {
                    "name": name,
                    "epoch": epoch + 1,
                    "config": config.to_dict(),
                    "history": history,
                    "generators": [layer.generator.state for layer in net.dropouts],
                    "dataset_fingerprint": fingerprint,
                    "backend": backend.name,
                },
            )
        pm.hook.dropkit_epoch_end(run=run, record=record)

    result = TrainResult(name, config, history, [to_numpy(p) for p in net.params])
    pm.hook.dropkit_train_end(run=run, result=result)
    return result
