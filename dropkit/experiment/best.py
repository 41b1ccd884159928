"""``best.npz``: the parameters of a run's best validation epoch, kept in step with its checkpoint.

The checkpoint holds the best epoch's parameters (``best_param_<i>``), so a
resumed run continues with them and ends bit-identical to an uninterrupted
one. ``best.npz`` is the file a user loads: after each checkpoint write
whose best epoch changed, it is rewritten (atomically, like the checkpoint)
with those parameters as ``param_<i>`` and the best epoch's record. A run
killed between the two writes leaves an older ``best.npz``; the resumed run
rewrites it from the checkpoint before it trains.

Load it like a checkpoint (``allow_pickle=False``):

>>> import tempfile, pathlib
>>> from dropkit.experiment.checkpoint import load_checkpoint
>>> from dropkit.experiment.data import load_dataset
>>> from dropkit.experiment.train import TrainConfig, train
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> result = train(TrainConfig(epochs=2, hidden=(8,)), load_dataset(train_size=200), out_dir=out)
>>> arrays, meta = load_checkpoint(out / "best.npz")
>>> sorted(arrays), meta["epoch"] == result.summary()["best_val_epoch"]
(['param_0', 'param_1', 'param_2', 'param_3'], True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import BEST_NAME, CheckpointError, load_checkpoint, save_checkpoint

__all__ = ["BestFile"]

_PREFIX = "best_"


class BestFile:
    """Writes ``folder/best.npz`` from checkpoint contents when their best epoch changes."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / BEST_NAME
        self.epoch: int | None = None

    def written_epoch(self) -> int | None:
        """The best epoch the file on disk holds (None: no readable file)."""
        try:
            _, meta = load_checkpoint(self.path)
        except (FileNotFoundError, CheckpointError):
            return None
        epoch = meta.get("epoch")
        return epoch if isinstance(epoch, int) else None

    def update(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Rewrite the file if the checkpoint's best epoch (``meta``) is not the one it holds."""
        epoch = meta.get("best_val_epoch")
        if epoch is None or epoch == self.epoch:
            return
        params = {k[len(_PREFIX) :]: a for k, a in arrays.items() if k.startswith(_PREFIX)}
        record = next(r for r in meta["history"] if r["epoch"] == epoch)
        doc = {
            "kind": "best validation epoch",
            "name": meta.get("name"),
            "epoch": epoch,
            "record": record,
            "config": meta.get("config"),
            "split": meta.get("split"),
            "dataset_fingerprint": meta.get("dataset_fingerprint"),
            "backend": meta.get("backend"),
        }
        save_checkpoint(self.path, params, doc)
        self.epoch = epoch

    def sync(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """On resume: make the file match the checkpoint (a kill may have left it behind)."""
        self.epoch = self.written_epoch()
        self.update(arrays, meta)
