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
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINT_NAME = "checkpoint.npz"

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT",
    "CheckpointError",
    "atomic_write_text",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "dropkit-checkpoint/1"
_META = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint is corrupt, of another format, or does not match the run."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, write: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, fsync, rename)."""
    _atomic_write(path, lambda f: f.write(text.encode()))


def save_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Save ``arrays`` and the JSON-serialisable ``meta`` atomically to ``path``."""
    doc = json.dumps({"format": FORMAT, **meta}).encode()
    payload = {name: np.asarray(a) for name, a in arrays.items()}
    payload[_META] = np.frombuffer(doc, dtype=np.uint8)
    _atomic_write(path, lambda f: np.savez(f, **payload))


def load_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a checkpoint; raise :class:`CheckpointError` naming the file if it is bad."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({exc}); it was left as is: move it "
            "away to start again"
        ) from exc
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
