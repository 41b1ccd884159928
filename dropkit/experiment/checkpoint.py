"""Checkpoints: atomic, code-free, and checked on load.

A checkpoint is one ``.npz`` file: the arrays (parameters, optimiser state) and
a JSON document (config, epoch, history, generator states, dataset
fingerprint) stored as a byte array. It is loaded with ``allow_pickle=False``,
so it cannot execute code. Saving writes a temporary file in the same folder,
fsyncs it, renames it over the old one and fsyncs the folder: a crash at any
moment leaves either the old or the new checkpoint, never a torn one.

Examples
--------
>>> import tempfile, pathlib
>>> import numpy as np
>>> path = pathlib.Path(tempfile.mkdtemp()) / "checkpoint.npz"
>>> save_checkpoint(path, {"w": np.ones(2, np.float32)}, {"epoch": 3})
>>> arrays, meta = load_checkpoint(path)
>>> arrays["w"].tolist(), meta["epoch"]
([1.0, 1.0], 3)
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..checks import to_numpy
from .npzread import NpzError, read_npz
from .runfiles import RunFileError, open_run_file, write_run_atomic, write_run_bytes

CHECKPOINT_NAME = "checkpoint.npz"
#: The parameters of a run's best validation epoch (a checkpoint file of parameters only).
BEST_NAME = "best.npz"

#: Default seconds between two checkpoints of a training run (see :class:`PeriodicCheckpoint`).
CHECKPOINT_INTERVAL = 2.0

__all__ = [
    "BEST_NAME",
    "CHECKPOINT_INTERVAL",
    "CHECKPOINT_NAME",
    "FORMAT",
    "CheckpointError",
    "PeriodicCheckpoint",
    "atomic_write_text",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "dropkit-checkpoint/1"
_META = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint is corrupt, of another format, or does not match the run."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, fsync, rename)."""
    write_run_bytes(path, text.encode())


def save_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Save ``arrays`` and the JSON-serialisable ``meta`` atomically to ``path``."""
    doc = json.dumps({"format": FORMAT, **meta}).encode()
    payload = {name: np.asarray(a) for name, a in arrays.items()}
    payload[_META] = np.frombuffer(doc, dtype=np.uint8)
    write_run_atomic(path, lambda f: np.savez(f, allow_pickle=False, **payload))


def load_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a checkpoint; raise :class:`CheckpointError` naming the file if it is bad.

    The file must be a regular file (a symlink, FIFO or device is refused at
    once, see :mod:`~dropkit.experiment.runfiles`), and it is read with memory
    bounded by its size (:func:`~dropkit.experiment.npzread.read_npz`).
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with open_run_file(path) as file:
            arrays = read_npz(file, str(path))
    except RunFileError as exc:
        raise CheckpointError(f"checkpoint {exc}") from None
    except (NpzError, OSError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({exc}); it was left as is: move it "
            "away (or delete the run) to start again"
        ) from None
    raw = arrays.pop(_META, None)
    try:
        meta = json.loads(bytes(raw).decode()) if raw is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path}: its metadata is corrupt ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(
            f"{path} is not a {FORMAT} checkpoint (format {found!r}); it was left as is"
        )
    return arrays, meta


class PeriodicCheckpoint:
    """Saves a run's state at most every ``interval`` seconds, and keeps the newest in hand.

    :meth:`submit` is called after every epoch. It writes the state when it is
    the first submitted, the final one, or ``interval`` seconds have passed
    since the last write; otherwise it keeps a copy, which
    :meth:`flush_on_error` writes when the run stops on an exception. So what
    is on disk after any exception is what a save after every epoch would
    have left; only a killed process loses the epochs since the last write
    (and resumes from that checkpoint exactly, as from any other).

    Parameters
    ----------
    path : Path
        The checkpoint file.
    interval : float
        Seconds between writes (0: every submit writes).
    clock : callable, optional
        Monotonic seconds (tests pass a fake one).
    after_write : callable, optional
        Called with the arrays (NumPy) and the metadata just written, after
        each write (the training loop writes ``best.npz`` from them).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "checkpoint.npz"
    >>> saver = PeriodicCheckpoint(path, interval=3600)
    >>> state = lambda copy: {"w": np.full(2, 1.0)}
    >>> saver.submit(state, {"epoch": 1}, final=False)  # the first: written
    >>> saver.submit(state, {"epoch": 2}, final=False)  # too soon: kept
    >>> load_checkpoint(path)[1]["epoch"], saver.pending_epoch
    (1, 2)
    >>> saver.flush_on_error()
    >>> load_checkpoint(path)[1]["epoch"]
    2
    """

    def __init__(
        self,
        path: Path,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        after_write: Callable[[dict[str, np.ndarray], dict[str, Any]], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.interval = float(interval)
        self._clock = clock
        self._after_write = after_write
        self._last: float | None = None
        self._pending: tuple[dict[str, Any], dict[str, Any]] | None = None

    @property
    def pending_epoch(self) -> int | None:
        """The ``epoch`` of the state kept but not yet written (None: none)."""
        return None if self._pending is None else self._pending[1].get("epoch")

    def submit(
        self,
        state: Callable[[bool], dict[str, Any]],
        meta: dict[str, Any],
        *,
        final: bool,
    ) -> None:
        """Write now, or keep ``state(True)`` (copies of the arrays) for later.

        ``state(copy)`` returns the arrays by name, on any backend;
        ``copy=True`` asks for copies that later training does not change.
        """
        due = final or self._last is None or self._clock() - self._last >= self.interval
        if due:
            self._pending = None
            self._write(state(False), meta)
        else:
            self._pending = (state(True), meta)

    def flush_on_error(self) -> None:
        """Write the kept state, if any; a failure warns (the first error is the one to see)."""
        if self._pending is None:
            return
        arrays, meta = self._pending
        self._pending = None
        try:
            self._write(arrays, meta)
        except Exception as exc:
            warnings.warn(
                f"could not save epoch {meta.get('epoch')} to {self.path} ({exc}); the "
                "checkpoint there is the one before it",
                RuntimeWarning,
                stacklevel=2,
            )

    def _write(self, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
        host = {k: to_numpy(a) for k, a in arrays.items()}
        save_checkpoint(self.path, host, meta)
        self._last = self._clock()
        if self._after_write is not None:
            self._after_write(host, meta)
