"""Whether a checkpoint can continue a run: configuration, data, split, arrays and history.

:func:`check_checkpoint` loads a checkpoint and checks everything a resumed
run relies on, before anything is trained or written; every problem is a
:class:`~dropkit.experiment.checkpoint.CheckpointError` naming the file and
what to do.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..random import Generator
from .checkpoint import CheckpointError, load_checkpoint
from .data import Dataset
from .methods import OPTIONAL_DEFAULTS
from .result import (
    LEGACY_RECORD_KEYS,
    RECORD_KEYS,
    best_val_record,
    normalise_record,
    record_problem,
)
from .split import Split, validation_split

if TYPE_CHECKING:
    from .train import TrainConfig

__all__ = ["check_checkpoint", "param_shapes"]

#: A generator's draw counter stays below this (see :class:`dropkit.Generator`).
MAX_COUNTER = 2**63


def param_shapes(hidden: tuple[int, ...], n_features: int, n_classes: int) -> list[tuple[int, ...]]:
    """The shapes of the net's parameters: per layer its weights, then its biases.

    Examples
    --------
    >>> param_shapes((8,), 4, 2)
    [(4, 8), (8,), (8, 2), (2,)]
    """
    shapes: list[tuple[int, ...]] = []
    for fan_in, fan_out in itertools.pairwise([n_features, *hidden, n_classes]):
        shapes += [(fan_in, fan_out), (fan_out,)]
    return shapes


def _check_resumable(
    path: Path,
    meta: dict[str, Any],
    config: TrainConfig,
    data: Dataset,
    backend: str | None,
    split: Split,
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
    saved_split = meta.get("split")
    now = split.to_dict()
    if saved_split is None and now["n_val"] == 0:  # made before validation existed: none
        return
    if not isinstance(saved_split, dict) or saved_split.get("fingerprint") != now["fingerprint"]:
        raise CheckpointError(
            f"checkpoint {path} was trained with another validation split (saved "
            f"{saved_split!r}, now {now!r}): the same --val-size now holds out other examples "
            "(a different dropkit version?); resume with the dropkit that made it, or start "
            "a new run in another --out folder"
        )


def _check_state(
    path: Path,
    arrays: dict[str, np.ndarray],
    meta: dict[str, Any],
    config: TrainConfig,
    data: Dataset,
    split: Split,
) -> None:
    def bad(problem: str) -> CheckpointError:
        return CheckpointError(
            f"checkpoint {path} {problem}; it was left as is: delete the run (or move it away) "
            "and start again, or start a new run in another --out folder"
        )

    history = meta.get("history")
    if not isinstance(history, list):
        raise bad(f"is damaged: 'history' must be a list, got {history!r}")
    keys = (set(RECORD_KEYS), set(LEGACY_RECORD_KEYS))
    for i, record in enumerate(history):
        if not isinstance(record, dict) or set(record) not in keys or record["epoch"] != i + 1:
            raise bad(
                f"is damaged: history entry {i} is {record!r}, not the record of epoch {i + 1} "
                f"(a dict of {', '.join(RECORD_KEYS)})"
            )
    for record in history:
        problem = record_problem(record)
        if problem is not None:
            raise bad(f"is damaged: history entry {record['epoch'] - 1} {problem}")
    epoch = meta.get("epoch")
    if type(epoch) is not int or epoch != len(history):
        raise bad(
            f"is damaged: it says {epoch!r} epochs were trained, its history holds {len(history)}"
        )
    try:
        best = best_val_record([normalise_record(r) for r in history])
    except TypeError:
        raise bad("is damaged: a validation accuracy or loss in its history is no number") from None
    if best is not None and meta.get("best_val_epoch") != best["epoch"]:
        raise bad(
            f"is damaged: its best validation epoch is {meta.get('best_val_epoch')!r}, its "
            f"history says {best['epoch']}"
        )
    shapes = param_shapes(config.hidden, data.n_features, data.n_classes)
    kinds = ("param", "velocity", *(("best_param",) if best is not None else ()))
    wanted = [f"{kind}_{i}" for kind in kinds for i in range(len(shapes))]
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
    steps = -(-len(split.train) // config.batch_size)  # one draw per layer and step
    needed = max(config.epochs - len(history), 0) * steps
    for i, state in enumerate(generators):
        try:
            counter = Generator.from_state(state).counter
        except (TypeError, ValueError) as exc:
            raise bad(f"is damaged: generator state {i} {state!r}: {exc}") from None
        if counter + needed >= MAX_COUNTER:
            raise bad(
                f"is damaged: generator state {i} has counter {counter}, too close to its limit "
                f"2**63 for the {needed} draws of the epochs left"
            )


def check_checkpoint(
    path: str | Path, config: TrainConfig, data: Dataset, backend: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a checkpoint and check it can continue ``config`` on ``data``.

    Checks the configuration (all but ``epochs``), the backend name if given,
    the data fingerprint, the validation split, every array's presence,
    shape, dtype and finiteness (the best validation epoch's parameters
    included), the generator states and the history. The returned history's
    records have every key of :data:`~dropkit.experiment.result.RECORD_KEYS`
    (None for those a checkpoint made before them lacks).

    Raises
    ------
    CheckpointError
        Naming the file and what is wrong with it.

    Examples
    --------
    >>> import tempfile
    >>> from dropkit.experiment.data import load_dataset
    >>> from dropkit.experiment.train import TrainConfig, train
    >>> data, config = load_dataset(train_size=100), TrainConfig(epochs=1, hidden=(4,))
    >>> out = tempfile.mkdtemp()
    >>> _ = train(config, data, out_dir=out)
    >>> arrays, meta = check_checkpoint(f"{out}/checkpoint.npz", config, data)
    >>> meta["epoch"], meta["split"]["n_val"]
    (1, 10)
    """
    path = Path(path)
    arrays, meta = load_checkpoint(path)
    split = validation_split(data.y_train, config.val_size)
    _check_resumable(path, meta, config, data, backend, split)
    _check_state(path, arrays, meta, config, data, split)
    meta["history"] = [normalise_record(r) for r in meta["history"]]
    return arrays, meta
