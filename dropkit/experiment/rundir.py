"""Run folders: one run per folder, and what a folder holds.

A run owns its output folder while it writes there: :class:`RunLock` takes an
exclusive OS-level lock (``fcntl.flock``) on the folder's ``.dropkit.lock`` and
writes who holds it (PID, host, start time, command) into that file. The
kernel releases the lock when the holder exits, however it exits (SIGKILL
included), so a stale lock file never blocks a later run; a second run is
refused with :class:`RunFolderBusyError`, whose message names the holder.

The other helpers answer questions about a folder without changing it:
whether it holds a run (:func:`holds_run`), which command made it
(:func:`run_command`), and its ``config.json`` checked key by key
(:func:`read_run_config`). :func:`remove_stale_temporaries` removes the
temporary files of atomic writes that a killed run left behind; call it only
while holding the lock.

Examples
--------
>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> with RunLock(folder, command="example"):
...     try:
...         RunLock(folder).acquire()
...     except RunFolderBusyError as exc:
...         print("busy")
busy
>>> holds_run(folder)
False
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not locked
    fcntl = None  # type: ignore[assignment]

from .checkpoint import CHECKPOINT_NAME
from .runfiles import RunFileError, open_run_fd, prepare_folder, read_run_bytes

__all__ = [
    "CONFIG_NAME",
    "LOCK_NAME",
    "NET_FOLDERS",
    "RunConfig",
    "RunConfigError",
    "RunFolderBusyError",
    "RunLock",
    "holds_run",
    "is_held_here",
    "read_run_config",
    "remove_stale_temporaries",
    "run_command",
]

LOCK_NAME = ".dropkit.lock"
CONFIG_NAME = "config.json"
#: The subfolders of a ``dropkit compare`` folder, one per net.
NET_FOLDERS = ("standard", "dropout")
COMMANDS = ("train", "compare")

# folders this process holds: resolved path -> the thread that took the lock
_HELD: dict[str, int] = {}
_TEMPORARY = re.compile(r"^\..+\.tmp-\d+$")


class RunFolderBusyError(RuntimeError):
    """Another run holds the folder."""


def _key(folder: Path) -> str:
    return os.path.realpath(folder)


def _holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw.decode())
        return f"pid {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet said who it is"


def _busy(folder: Path, fd: int) -> RunFolderBusyError:
    return RunFolderBusyError(
        f"{folder} is in use by another dropkit run ({_holder(fd)}); wait for it to finish "
        "or stop it, or choose another --out"
    )


def is_held_here(folder: str | Path) -> bool:
    """Whether this thread of this process holds the lock of ``folder``."""
    return _HELD.get(_key(Path(folder))) == threading.get_ident()


class RunLock:
    """An exclusive lock on a run folder, naming its holder.

    Parameters
    ----------
    folder : path
        The run folder; :meth:`acquire` creates it (and its parents).
    command : str, optional
        What the holder is doing, for the message a refused run prints
        (default: this process's command line).

    Examples
    --------
    >>> import tempfile
    >>> lock = RunLock(tempfile.mkdtemp(), command="dropkit train").acquire()
    >>> lock.release()
    """

    def __init__(self, folder: str | Path, *, command: str | None = None) -> None:
        self.folder = Path(folder)
        self.command = command if command is not None else " ".join(sys.argv)
        self._fd: int | None = None

    @staticmethod
    def probe(folder: str | Path) -> None:
        """Raise :class:`RunFolderBusyError` if a run holds ``folder``; never writes anything."""
        path = Path(folder) / LOCK_NAME
        if fcntl is None or not os.path.lexists(path):
            return
        try:
            fd = open_run_fd(path, os.O_RDONLY)
        except RunFileError as exc:
            raise RunFileError(f"cannot lock the run folder {folder}: {exc}") from None
        except OSError:
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _busy(Path(folder), fd) from None
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def acquire(self) -> RunLock:
        """Create the folder if needed and lock it, or raise :class:`RunFolderBusyError`."""
        prepare_folder(self.folder)
        if fcntl is None:  # pragma: no cover
            _HELD[_key(self.folder)] = threading.get_ident()
            return self
        try:
            # never through a symlink, never a FIFO or device: the lock file is truncated below
            fd = open_run_fd(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except RunFileError as exc:
            raise RunFileError(f"cannot lock the run folder {self.folder}: {exc}") from None
        except OSError as exc:
            raise OSError(
                f"cannot lock the run folder {self.folder}: {self.folder / LOCK_NAME}: "
                f"{exc.strerror}; make it a writable file (or remove it) or choose another --out"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            error = _busy(self.folder, fd)
            os.close(fd)
            raise error from None
        except BaseException:
            os.close(fd)
            raise
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": self.command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        _HELD[_key(self.folder)] = threading.get_ident()
        return self

    def release(self) -> None:
        """Unlock (and forget the holder); a no-op if not held."""
        _HELD.pop(_key(self.folder), None)
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:  # pragma: no cover - the folder became read-only, say
            pass
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _net_folders(folder: Path) -> list[Path]:
    return [folder, *(folder / name for name in NET_FOLDERS)]


def holds_run(folder: str | Path) -> bool:
    """Whether ``folder`` holds a trained epoch: a checkpoint of ``train``, ``compare`` or a study.

    Examples
    --------
    >>> import tempfile
    >>> holds_run(tempfile.mkdtemp())
    False
    """
    folder = Path(folder)
    study = [
        *folder.glob("seed-*/*"),
        *folder.glob("size-*/seed-*/*"),
    ]  # study runs
    return any((f / CHECKPOINT_NAME).is_file() for f in [*_net_folders(folder), *study])


def run_command(folder: str | Path, saved: str | None = None) -> str | None:
    """Which command made ``folder``: ``saved`` if given, else told by its files (or None)."""
    if saved is not None:
        return saved
    folder = Path(folder)
    if (folder / CHECKPOINT_NAME).is_file():
        return "train"
    if any((folder / name).is_dir() for name in NET_FOLDERS) or (folder / "summary.json").exists():
        return "compare"
    return None


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the ``.NAME.tmp-PID`` files of interrupted atomic writes; return them.

    Only call this while holding the folder's :class:`RunLock`: then no other
    run can be writing them.
    """
    removed = []
    for sub in _net_folders(Path(folder)):
        if not sub.is_dir():
            continue
        for path in sub.iterdir():
            if _TEMPORARY.match(path.name) and path.is_file():
                path.unlink()
                removed.append(path)
    return removed


# ---- config.json -----------------------------------------------------------------------------

_NUMBERS = ("p_hidden", "p_input", "lr", "momentum", "weight_decay")
_INTEGERS = ("lr_every", "lr_times", "batch_size", "epochs", "seed")
_STRINGS = ("dataset", "mode", "dtype", "noise", "activation")
#: Config keys a folder may lack (made before they existed); absent, they take their defaults.
OPTIONAL_KEYS = ("noise", "activation", "val_size")
# Top-level keys a config.json may lack: "command" and "environment" came later.
_OPTIONAL_TOP = ("command", "environment")


@dataclass(frozen=True)
class RunConfig:
    """The checked contents of a run folder's ``config.json``."""

    path: Path
    command: str | None
    config: dict[str, Any]
    data: dict[str, Any]
    #: How the run was started (backend used, versions, git commit, command line, threads);
    #: None in folders made before dropkit recorded it.
    environment: dict[str, Any] | None = None


class RunConfigError(ValueError):
    """``config.json`` is not what dropkit wrote."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_keys(
    path: Path, where: str, got: dict[str, Any], want: list[str], optional: tuple[str, ...] = ()
) -> None:
    prefix = f"{where}." if where else ""
    for key in want:
        if key not in got and key not in optional:
            raise RunConfigError(f"{path}: missing key '{prefix}{key}'; {_FIX}")
    for key in got:
        if key not in want:
            raise RunConfigError(f"{path}: unknown key '{prefix}{key}'; {_FIX}")


_FIX = "it was left as is: fix it, or start a new run in another --out folder"


def _check_value(path: Path, key: str, value: Any) -> None:
    name = f"'config.{key}'"
    problem = None
    if key in _NUMBERS:
        if not _is_number(value):
            problem = f"must be a number, got {value!r}"
        elif not math.isfinite(value):
            problem = f"must be finite, got {value!r}"
    elif key in _INTEGERS and not _is_int(value):
        problem = f"must be an integer, got {value!r}"
    elif key in _STRINGS and not isinstance(value, str):
        problem = f"must be a string, got {value!r}"
    elif key == "hidden" and not (
        isinstance(value, list) and value and all(_is_int(v) for v in value)
    ):
        problem = f"must be a list of positive integers, got {value!r}"
    elif key == "nesterov" and not isinstance(value, bool):
        problem = f"must be true or false, got {value!r}"
    elif key == "backend" and not (value is None or isinstance(value, str)):
        problem = f"must be a string or null, got {value!r}"
    if problem:
        raise RunConfigError(f"{path}: {name} {problem}; {_FIX}")


def read_run_config(folder: str | Path, fields: list[str]) -> RunConfig:
    """Read and check ``folder/config.json`` (``fields``: the config keys it must hold).

    The keys of :data:`OPTIONAL_KEYS` may be missing (folders made before them);
    :attr:`RunConfig.config` then lacks them, and they take their defaults.

    Raises
    ------
    FileNotFoundError
        No such folder, or no ``config.json`` in it.
    RunConfigError
        The file is not valid JSON or not what dropkit writes; the message
        names the file and the key.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text('{"config": {"lr": "fast"}, "data": {}}')
    >>> read_run_config(folder, ["lr"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dropkit.experiment.rundir.RunConfigError: .../config.json: 'config.lr' must be a number, ...
    """
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not folder.exists():
        raise FileNotFoundError(f"nothing to resume: there is no folder {folder}")
    if not folder.is_dir():
        raise NotADirectoryError(f"nothing to resume: {folder} is not a folder")
    if not os.path.lexists(path):  # a symlink or FIFO there is refused by the read below
        if holds_run(folder):  # trained through the library's train(), or the file was lost
            raise FileNotFoundError(
                f"{folder} holds a checkpoint but no {CONFIG_NAME} (a run of the library's "
                f"train(..., out_dir=...), or the file was deleted): the command line cannot "
                f"tell its options; continue it from Python with train(config, data, "
                f"out_dir={str(folder)!r}, resume=True), or start in another --out folder"
            )
        raise FileNotFoundError(f"nothing to resume in {folder}: no {CONFIG_NAME} there")
    try:
        doc = json.loads(read_run_bytes(path).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunConfigError(f"{path} is not valid JSON ({exc}); {_FIX}") from None
    if not isinstance(doc, dict):
        raise RunConfigError(f"{path} must hold a JSON object, got {type(doc).__name__}; {_FIX}")
    _check_keys(path, "", doc, ["config", "data", "command", "environment"], _OPTIONAL_TOP)
    command = doc.get("command")
    if command is not None and command not in COMMANDS:
        raise RunConfigError(f"{path}: 'command' must be 'train' or 'compare', got {command!r}")
    environment = doc.get("environment")
    if environment is not None and not isinstance(environment, dict):
        raise RunConfigError(
            f"{path}: 'environment' must be an object, got {environment!r}; {_FIX}"
        )
    for key in ("config", "data"):
        if not isinstance(doc[key], dict):
            raise RunConfigError(f"{path}: '{key}' must be an object, got {doc[key]!r}; {_FIX}")
    _check_keys(path, "config", doc["config"], fields, OPTIONAL_KEYS)
    for key, value in doc["config"].items():
        _check_value(path, key, value)
    data = doc["data"]
    _check_keys(path, "data", data, ["data_dir", "train_size"])
    if not (data["data_dir"] is None or isinstance(data["data_dir"], str)):
        raise RunConfigError(
            f"{path}: 'data.data_dir' must be a string or null, got {data['data_dir']!r}; {_FIX}"
        )
    if not (data["train_size"] is None or _is_int(data["train_size"])):
        raise RunConfigError(
            f"{path}: 'data.train_size' must be an integer or null, got "
            f"{data['train_size']!r}; {_FIX}"
        )
    return RunConfig(path, command, doc["config"], data, environment)
