"""The training loop of the dropout experiment, on any backend, with exact resume.

The loop trains :class:`~dropkit.experiment.nn.MLP` with SGD on minibatches reshuffled
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
>>> from dropkit.experiment.data import load_dataset
>>> data = load_dataset("mnist1d", train_size=256)
>>> result = train(TrainConfig(epochs=2, hidden=(32,)), data)
>>> len(result.history), 0 <= result.best_test_acc <= 1
(2, True)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import pluggy

from .._arrays import as_integer, check_flag, check_mode, check_p, check_scale, to_numpy
from ..ops import train_scale
from ..random import Generator
from ..registry import get_backend, get_plugin_manager
from .checkpoint import CHECKPOINT_INTERVAL, CheckpointError, PeriodicCheckpoint, load_checkpoint
from .checkpoint import CHECKPOINT_NAME as CHECKPOINT
from .data import DATASETS, Dataset
from .methods import OPTIONAL_DEFAULTS, check_activation, noise_layer
from .nn import MLP, softmax_cross_entropy
from .optim import SGD, StepSchedule
from .rundir import RunLock, is_held_here, remove_stale_temporaries

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

_DTYPES = ("float16", "float32", "float64")


def _integer(name: str, value: Any) -> int:
    try:
        return as_integer(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer, got {value!r} ({type(value).__name__})"
        ) from None


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _hidden(value: Any) -> tuple[int, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(f"hidden must be a sequence of positive integers, got {value!r}")
    widths = []
    for w in value:
        try:
            widths.append(as_integer(w))
        except TypeError:
            raise TypeError(f"hidden sizes must be integers, got {tuple(value)!r}") from None
    if not widths or min(widths) < 1:
        raise ValueError(f"hidden sizes must be positive, got {tuple(widths)}")
    return tuple(widths)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run (defaults: the MNIST-1D experiment).

    ``p_hidden`` and ``p_input`` are DROP probabilities. The learning rate is
    ``lr`` halved every ``lr_every`` epochs, ``lr_times`` times. ``noise``
    names the noise layer (:data:`dropkit.experiment.methods.NOISES`: ``"dropout"``,
    ``"gaussian"``, ``"alpha"``), ``activation`` the hidden activation
    (``"relu"`` with He-normal weights, ``"selu"`` with LeCun-normal ones).
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
    noise: str = "dropout"
    activation: str = "relu"

    def __post_init__(self) -> None:
        # types first (bools are not numbers, numbers are not flags), then ranges
        put = object.__setattr__
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        put(self, "hidden", _hidden(self.hidden))
        for name in ("p_hidden", "p_input", "lr", "momentum", "weight_decay"):
            put(self, name, _real(name, getattr(self, name)))
        for name in ("lr_every", "lr_times", "batch_size", "epochs", "seed"):
            put(self, name, _integer(name, getattr(self, name)))
        put(self, "nesterov", check_flag(self.nesterov, "nesterov"))
        check_p(self.p_hidden)
        check_p(self.p_input)
        check_mode(self.mode)
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr_every", "lr_times"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: no halving), got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.seed < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {self.seed}")
        if self.backend is not None and not isinstance(self.backend, str):
            raise TypeError(f"backend must be a string or None, got {self.backend!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be float16, float32 or float64, got {self.dtype!r}")
        check_activation(self.activation)
        noise_layer(self.noise)  # a known name whose layer this installation has
        for name in ("p_hidden", "p_input"):
            p = getattr(self, name)
            if 0.0 < p < 1.0:
                try:  # checked here, so a run never starts (or writes) with it
                    check_scale(train_scale(p, self.mode), p, self.dtype, np.finfo(self.dtype))
                except ValueError as exc:
                    message = str(exc).replace("mode='vanilla'", "mode 'vanilla' (--mode vanilla)")
                    raise ValueError(
                        f"{name} is too close to 1 for {self.dtype}: {message}"
                    ) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (missing keys take their defaults; unknown keys fail)."""
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        return cls(**d)


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
    return int(to_numpy(_correct(net, x, y, batch))) / x.shape[0]


def _correct(net: MLP, x: Any, y: Any, batch: int = 4096) -> Any:
    """How many rows of ``x`` ``net`` classifies right: a 0-d integer array, not read back."""
    xp = net.xp
    correct = None
    n = x.shape[0]
    for start in range(0, n, batch):
        stop = min(start + batch, n)  # (a strict namespace refuses slices past the end)
        logits = net.forward(x[start:stop, ...], training=False)
        hits = xp.sum(xp.astype(xp.argmax(logits, axis=1) == y[start:stop], xp.int32))
        correct = hits if correct is None else correct + hits
    if correct is None:  # no rows
        return xp.zeros((), dtype=xp.int32)
    return correct


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


def _net_and_optimizer(config: TrainConfig, data: Dataset, backend: Any) -> tuple[MLP, SGD]:
    """The run's network (initial weights from the seed) and its optimiser."""
    net = MLP(
        _layers(config, data.n_features, data.n_classes),
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
        backend=backend,
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

    Nothing is read back to the host inside the epoch: the step losses stay on
    the device until the end, where they, the correct counts and the
    parameters' finiteness are read at once (a GPU runs ahead of Python
    instead of waiting at every step).
    """
    xp = net.xp
    x_train, y_train, x_test, y_test = arrays
    n = x_train.shape[0]
    losses, sizes = _steps(net, opt, config, epoch, lr, x_train, y_train)
    correct_train = _correct(net, x_train, y_train)
    correct_test = _correct(net, x_test, y_test)
    finite = [xp.all(xp.isfinite(a)) for a in (*net.params, *opt.velocity)]
    # the epoch's one wait for the device: every number of the record is read here
    loss_sum = 0.0
    for loss, size in zip(to_numpy(xp.stack(losses)).tolist(), sizes, strict=True):
        if not math.isfinite(loss):
            return f"the training loss became {loss}"
        loss_sum += loss * size  # the same float64 sum, in the same order, as step by step
    if not bool(np.all(to_numpy(xp.stack(finite)))):
        return "a parameter became NaN or inf"
    return {
        "epoch": epoch + 1,
        "loss": loss_sum / n,
        "train_acc": int(to_numpy(correct_train)) / n,
        "test_acc": int(to_numpy(correct_test)) / x_test.shape[0],
        "lr": lr,
    }


class TrainingDivergedError(RuntimeError):
    """The training loss (or a parameter) became NaN or infinite; nothing of it was saved."""

    def __init__(self, message: str, *, epoch: int, kept_epoch: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.kept_epoch = kept_epoch


def _layers(config: TrainConfig, n_features: int, n_classes: int) -> list[int]:
    return [int(n_features), *config.hidden, int(n_classes)]


def memory_estimate(config: TrainConfig, n_features: int, n_classes: int) -> tuple[int, int]:
    """Parameters of the net and the bytes its training needs at least.

    Counts weights, gradients and momentum (three copies of the parameters) and
    one batch of activations, forward and backward, in the run's dtype.

    Examples
    --------
    >>> memory_estimate(TrainConfig(hidden=(10,), batch_size=1, dtype="float64"), 4, 2)
    (72, 2112)
    """
    layers = _layers(config, n_features, n_classes)
    params = sum((a + 1) * b for a, b in itertools.pairwise(layers))
    itemsize = np.dtype(config.dtype).itemsize
    activations = 3 * config.batch_size * sum(layers)
    return params, (3 * params + activations) * itemsize


def _param_shapes(config: TrainConfig, n_features: int, n_classes: int) -> list[tuple[int, ...]]:
    layers = _layers(config, n_features, n_classes)
    shapes: list[tuple[int, ...]] = []
    for fan_in, fan_out in itertools.pairwise(layers):
        shapes += [(fan_in, fan_out), (fan_out,)]
    return shapes


def _check_resumable(
    path: Path, meta: dict[str, Any], config: TrainConfig, data: Dataset, backend: str | None
) -> None:
    saved = meta.get("config", {})
    if not isinstance(saved, dict):
        saved = {}
    saved = {**OPTIONAL_DEFAULTS, **saved}  # checkpoints older than these keys
    mine = config.to_dict()
    different = sorted(
        k for k in mine if k not in ("epochs", "backend") and saved.get(k) != mine[k]
    )
    if backend is not None and meta.get("backend", backend) != backend:
        different.append("backend")
        saved = {**saved, "backend": meta.get("backend")}
        mine["backend"] = backend
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


_RECORD = {"epoch", "loss", "train_acc", "test_acc", "lr", "seconds"}


def _check_state(
    path: Path,
    arrays: dict[str, np.ndarray],
    meta: dict[str, Any],
    config: TrainConfig,
    data: Dataset,
) -> None:
    def bad(problem: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path} {problem}; it was left as is")

    shapes = _param_shapes(config, data.n_features, data.n_classes)
    wanted = [f"{kind}_{i}" for kind in ("param", "velocity") for i in range(len(shapes))]
    for name in wanted:
        if name not in arrays:
            raise bad(f"has no array {name!r}")
        a, shape = arrays[name], shapes[int(name.rsplit("_", 1)[1])]
        if a.shape != shape:
            raise bad(f"is damaged: {name!r} has shape {a.shape}, the net needs {shape}")
        if a.dtype.kind != "f":
            raise bad(f"is damaged: {name!r} has dtype {a.dtype}, not a float dtype")
        if not np.isfinite(a).all():
            raise bad(f"is damaged: {name!r} holds NaN or inf")
    extra = sorted(set(arrays) - set(wanted))
    if extra:
        raise bad(f"is damaged: unexpected array {extra[0]!r}")
    generators = meta.get("generators")
    if generators is None:
        raise bad("has no 'generators' (the dropout streams)")
    n = len(config.hidden) + 1
    if not isinstance(generators, list) or len(generators) != n:
        raise bad(f"is damaged: the net needs {n} generator states, got {generators!r}")
    for i, state in enumerate(generators):
        try:
            Generator.from_state(state)
        except (TypeError, ValueError) as exc:
            raise bad(f"is damaged: generator state {i} {state!r}: {exc}") from None
    history = meta.get("history")
    if not isinstance(history, list):
        raise bad(f"is damaged: 'history' must be a list, got {history!r}")
    for i, record in enumerate(history):
        if not isinstance(record, dict) or set(record) != _RECORD or record["epoch"] != i + 1:
            raise bad(f"is damaged: history entry {i} is {record!r}")


def check_checkpoint(
    path: str | Path, config: TrainConfig, data: Dataset, backend: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a checkpoint and check it can continue ``config`` on ``data``.

    Checks the configuration (all but ``epochs``), the backend name if given,
    the data fingerprint, every array's presence, shape, dtype and finiteness,
    the generator states and the history.

    Raises
    ------
    CheckpointError
        Naming the file and what is wrong with it.

    Examples
    --------
    >>> import tempfile
    >>> from dropkit.experiment.data import load_dataset
    >>> data, config = load_dataset(train_size=100), TrainConfig(epochs=1, hidden=(4,))
    >>> out = tempfile.mkdtemp()
    >>> _ = train(config, data, out_dir=out)
    >>> arrays, meta = check_checkpoint(f"{out}/checkpoint.npz", config, data)
    >>> meta["epoch"]
    1
    """
    path = Path(path)
    arrays, meta = load_checkpoint(path)
    _check_resumable(path, meta, config, data, backend)
    _check_state(path, arrays, meta, config, data)
    return arrays, meta


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
) -> TrainResult:
    """Train one network; checkpoint into ``out_dir`` as it goes.

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
        nothing is written. The run holds the folder's :class:`~dropkit.experiment.rundir.RunLock`
        (unless this thread already does): another run there is refused.
    resume : bool
        Continue from ``out_dir/checkpoint.npz``. Without it an existing
        checkpoint is an error, never silently overwritten.
    plugin_manager : pluggy.PluginManager, optional
        Whose hooks announce the events (default: the entry-point plugins).
    checkpoint_interval : float
        Seconds between two checkpoints (0: after every epoch). The first and
        the last epoch are always saved, and so is the last finished epoch
        when the run stops on an exception (divergence, Ctrl-C, a failing
        plugin): only a killed process (SIGKILL, power loss) can lose work,
        at most this long plus one epoch, and it resumes bit-identically from
        the checkpoint it left. Writing fsyncs twice: after every short epoch
        that costs more than the epoch itself on slow disks.

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
    lock = None if out is None or is_held_here(out) else RunLock(out).acquire()
    try:
        if out is not None:
            remove_stale_temporaries(out)
        return _train(config, data, name, out, resume, plugin_manager, float(checkpoint_interval))
    finally:
        if lock is not None:
            lock.release()


def _train(
    config: TrainConfig,
    data: Dataset,
    name: str,
    out: Path | None,
    resume: bool,
    plugin_manager: pluggy.PluginManager | None,
    checkpoint_interval: float,
) -> TrainResult:
    pm = plugin_manager if plugin_manager is not None else get_plugin_manager()
    ckpt = out / CHECKPOINT if out is not None else None
    if ckpt is not None and ckpt.exists() and not resume:
        raise FileExistsError(
            f"{ckpt} already exists: resume it (--resume {out}) or choose another --out"
        )
    if resume and ckpt is not None and not ckpt.exists():
        raise FileNotFoundError(f"nothing to resume: no {CHECKPOINT} in {out}")
    _check_labels(data)

    backend = get_backend(config.backend)
    xp = backend.xp
    history: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    if resume and ckpt is not None:
        arrays, meta = check_checkpoint(ckpt, config, data, backend.name)
    net, opt = _net_and_optimizer(config, data, backend)
    schedule = StepSchedule(config.lr, config.lr_every, config.lr_times)
    if meta:
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
    saver = PeriodicCheckpoint(ckpt, checkpoint_interval) if ckpt is not None else None

    # overflow is checked below (loss and parameters), not warned about
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            for epoch in range(len(history), config.epochs):
                start = time.perf_counter()
                lr = schedule.lr(epoch)
                record = _epoch(net, opt, config, epoch, lr, (x_train, y_train, x_test, y_test))
                if isinstance(record, str):
                    raise _diverged(name, record, epoch + 1, lr, ckpt)
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
                        "backend": backend.name,
                    }
                    saver.submit(
                        lambda copy: _state(net, opt, copy), meta, final=epoch + 1 == config.epochs
                    )
                pm.hook.dropkit_epoch_end(run=run, record=record)
        except BaseException:
            if saver is not None:  # the last finished epoch, as if saved after every epoch
                saver.flush_on_error()
            raise

    result = TrainResult(name, config, history, [to_numpy(p) for p in net.params])
    pm.hook.dropkit_train_end(run=run, result=result)
    return result
