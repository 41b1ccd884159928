"""Opening the files of a run or study folder safely: regular files only, never through a symlink.

Every file dropkit reads or writes in a run folder (the lock ``.dropkit.lock``,
``checkpoint.npz``, ``best.npz``, ``config.json``, ``study.json``, the history,
summary and metrics files) goes through this module. A file is opened with
``O_NOFOLLOW`` (a symlink where the file belongs is refused, so nothing is
read from, truncated or written through a link someone planted) and
``O_NONBLOCK`` (a FIFO does not hang the open), then checked with ``fstat`` on
the open descriptor: anything but a regular file (a FIFO, a device, a socket,
a directory) is a :class:`RunFileError` that names the path, says what it is
and what to do. Writes replace the file atomically (temporary file, fsync,
rename) and refuse the same intruders at the file's place first.

:func:`prepare_folder` makes a run folder; a dangling or looping symlink
given as the folder (or on its way) is refused with a message saying so.

Examples
--------
>>> import os, tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_run_bytes(folder / "a.json", b"{}")
>>> read_run_bytes(folder / "a.json")
b'{}'
>>> os.symlink(folder / "a.json", folder / "b.json")
>>> read_run_bytes(folder / "b.json")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
dropkit.experiment.runfiles.RunFileError: .../b.json is a symlink, not a file: ...
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "RunFileError",
    "check_folder_path",
    "check_place",
    "open_run_fd",
    "open_run_file",
    "prepare_folder",
    "read_run_bytes",
    "write_run_atomic",
    "write_run_bytes",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_FIX = (
    "remove or rename it (a run folder holds only the regular files dropkit writes), or use "
    "another folder"
)


class RunFileError(ValueError):
    """Not a regular file (a symlink, FIFO, device, directory) where a run file belongs."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "not a regular file"


def _refuse(path: Path, kind: str) -> RunFileError:
    return RunFileError(f"{path} is {kind}, not a file: dropkit will not use it; {_FIX}")


def check_place(path: str | os.PathLike[str]) -> None:
    """Refuse anything but a regular file (or nothing) at ``path``; never follows a symlink.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> check_place(pathlib.Path(tempfile.mkdtemp()) / "nothing-yet.json")
    >>> check_place(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dropkit.experiment.runfiles.RunFileError: ... is a directory, not a file: ...
    """
    path = Path(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise RunFileError(f"{path} is a symlink, not a file: dropkit will not follow it; {_FIX}")
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(path, _kind(info.st_mode))


def open_run_fd(path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
    """Open ``path`` with ``flags`` (``os.O_*``), not following a symlink; regular files only.

    The descriptor is blocking once checked. Raises :class:`RunFileError` for a
    symlink, FIFO, device, socket or directory; ``FileNotFoundError`` if there
    is nothing (and ``flags`` lacks ``O_CREAT``).
    """
    path = Path(path)
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK | _CLOEXEC, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise RunFileError(
                f"{path} is a symlink, not a file: dropkit will not follow it; {_FIX}"
            ) from None
        if exc.errno == errno.EISDIR:
            raise _refuse(path, "a directory") from None
        if exc.errno in (errno.ENXIO, errno.ENODEV):  # a FIFO with no reader, a socket
            raise _refuse(path, _kind(os.lstat(path).st_mode)) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(path, _kind(info.st_mode))
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_run_file(path: str | os.PathLike[str], mode: str = "rb") -> IO[bytes]:
    r"""Open a run file in binary ``mode`` ("rb" or "ab"), regular files only, no symlinks.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.csv"
    >>> with open_run_file(path, "ab") as f:
    ...     _ = f.write(b"epoch\\n")
    >>> with open_run_file(path) as f:
    ...     f.read()
    b'epoch\\n'
    """
    flags = {"rb": os.O_RDONLY, "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT}.get(mode)
    if flags is None:
        raise ValueError(f"mode must be 'rb' or 'ab', got {mode!r}")
    return os.fdopen(open_run_fd(path, flags), mode)


def read_run_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the run file ``path`` (see :func:`open_run_file`)."""
    with open_run_file(path) as f:
        return f.read()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_run_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> None:
    """Replace the run file ``path`` atomically with what ``write(f)`` writes.

    A temporary file in the same folder is created afresh (``O_EXCL``, no
    symlink followed), fsynced and renamed over ``path``; the folder is
    fsynced. Anything but a regular file at ``path`` is refused first.
    """
    path = Path(path)
    prepare_folder(path.parent)
    check_place(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # a killed write's leftover (or a planted link: unlink removes the link)
    try:
        fd = open_run_fd(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(path.parent)


def write_run_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace the run file ``path`` atomically with ``data`` (see :func:`write_run_atomic`)."""
    write_run_atomic(path, lambda f: f.write(data))


def _folder_error(folder: Path, flag: str) -> OSError | None:
    """Why ``folder`` cannot be (made) a folder, or None."""
    try:
        info = os.stat(folder)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return OSError(
                f"{flag} {folder}: a symlink loop (a link that leads back to itself): remove "
                f"the link or choose another {flag}"
            )
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            return None  # the caller's own operation reports it
        for place in [folder, *folder.parents]:
            if os.path.islink(place) and not os.path.exists(place):
                return FileNotFoundError(
                    f"{flag} {folder}: {place} is a symlink to {os.readlink(place)}, which "
                    f"does not exist: create that folder, remove the link, or choose another "
                    f"{flag}"
                )
            if os.path.lexists(place) and not os.path.isdir(place):
                return NotADirectoryError(
                    f"{flag} {folder} cannot be made: {place} is a file, not a folder; choose "
                    f"another {flag}"
                )
        return None
    if not stat.S_ISDIR(info.st_mode):
        return NotADirectoryError(f"{flag} {folder} is not a folder: choose another {flag}")
    return None


def check_folder_path(folder: str | os.PathLike[str], flag: str = "--out") -> None:
    """Refuse a ``folder`` that is a file, a dangling or looping symlink (or lies under one).

    A symlink to an existing folder is fine: the run goes where it points.

    Examples
    --------
    >>> import os, tempfile, pathlib
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> os.symlink(base / "nowhere", base / "dangling")
    >>> check_folder_path(base / "dangling")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: --out .../dangling: ... is a symlink to ..., which does not exist: ...
    """
    error = _folder_error(Path(folder), flag)
    if error is not None:
        raise error


def prepare_folder(folder: str | os.PathLike[str], flag: str = "--out") -> Path:
    """Make ``folder`` and its parents, refusing what :func:`check_folder_path` refuses."""
    folder = Path(folder)
    check_folder_path(folder, flag)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # raced into a link or a file meanwhile
        check_folder_path(folder, flag)
        raise
    return folder
