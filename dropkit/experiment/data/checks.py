"""Checks shared by the file loaders: opening a dataset file, labels, pixels.

Every error names the file and, for bad values, the first bad index, and says
what was expected.

Examples
--------
>>> check_labels([3, 1, 9], "batch").tolist()
[3, 1, 9]
>>> check_labels([3, 1.5], "batch")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
dropkit.experiment.data.checks.DataFileError: batch: label 1.5 at index 1 is not an integer ...
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = ["N_CLASSES", "DataFileError", "check_labels", "check_pixels", "open_data_file"]

#: MNIST, Fashion-MNIST and CIFAR-10 all have ten classes, labelled 0..9.
N_CLASSES = 10


class DataFileError(ValueError):
    """A dataset file exists but is truncated, corrupt or of the wrong format."""


def check_folder(data_dir: str | os.PathLike[str]) -> Path:
    """Return ``data_dir`` as a path; refuse a missing folder or a file in its place.

    Examples
    --------
    >>> check_folder("/no/such/folder")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: data folder /no/such/folder does not exist...
    """
    path = Path(data_dir)
    if not path.exists():
        raise FileNotFoundError(
            f"data folder {path} does not exist, so the dataset files are not found in {path}: "
            "pass the folder that holds them"
        )
    if not path.is_dir():
        raise NotADirectoryError(
            f"{path} is not a folder: pass the folder that holds the dataset files, not a file"
        )
    return path


def open_data_file(path: Path) -> tuple[BinaryIO, int]:
    """Open a dataset file for reading; return it and its size in bytes.

    Refuses, with a message naming the file, a directory, anything that is not a
    regular file (a device such as ``/dev/zero`` would never end, a FIFO would
    block) and a file that cannot be read.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist (a dangling symlink?)") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataFileError(f"{path} is a directory, not a file: expected the dataset file there")
    if not stat.S_ISREG(info.st_mode):
        raise DataFileError(
            f"{path} is not a regular file (a device, FIFO or socket): expected the dataset file"
        )
    try:
        f = open(path, "rb")  # noqa: SIM115 - handed to the caller
    except PermissionError:
        raise PermissionError(
            f"{path}: permission denied: make the file readable (chmod u+r) or copy it to a "
            "folder you can read"
        ) from None
    except OSError as exc:
        raise DataFileError(f"{path}: cannot open it ({exc.strerror or exc})") from exc
    return f, os.fstat(f.fileno()).st_size


def _is_integer_label(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, np.integer)


def check_labels(labels: Any, where: str | Path) -> np.ndarray:
    """Return ``labels`` as int64 after checking each is an integer in ``0..9``.

    ``labels`` may be a 1-d integer array or a list/tuple of Python or NumPy
    integers. Floats (even 3.0), booleans, strings and anything else are refused,
    naming ``where`` and the first bad index; so are values outside ``0..9``.

    Examples
    --------
    >>> check_labels(np.array([0, 9], np.uint8), "f").dtype
    dtype('int64')
    >>> check_labels([0, 12], "f")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dropkit.experiment.data.checks.DataFileError: f: label 12 at index 1 is outside 0..9 ...
    """
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1:
            raise DataFileError(
                f"{where}: labels must be a 1-d sequence, got an array of shape {labels.shape}"
            )
        if labels.dtype.kind not in "iu":
            raise DataFileError(
                f"{where}: labels must be integers 0..{N_CLASSES - 1}, got an array of dtype "
                f"{labels.dtype}"
            )
        values = labels
    elif isinstance(labels, list | tuple):
        for i, value in enumerate(labels):
            if not _is_integer_label(value):
                raise DataFileError(
                    f"{where}: label {value!r} at index {i} is not an integer "
                    f"({type(value).__name__}): labels must be integers 0..{N_CLASSES - 1}"
                )
            if not 0 <= value < N_CLASSES:
                _out_of_range(where, value, i)
        return np.array(labels, dtype=np.int64)
    else:
        raise DataFileError(
            f"{where}: labels must be a list or 1-d array of integers 0..{N_CLASSES - 1}, got "
            f"{type(labels).__name__}"
        )
    bad = np.flatnonzero((values < 0) | (values >= N_CLASSES)) if values.size else np.empty(0, int)
    if len(bad):
        _out_of_range(where, values[bad[0]].item(), int(bad[0]))
    return values.astype(np.int64)


def _out_of_range(where: str | Path, value: Any, index: int) -> None:
    raise DataFileError(
        f"{where}: label {value} at index {index} is outside 0..{N_CLASSES - 1} (the dataset has "
        f"{N_CLASSES} classes): a corrupt file, or a dataset of another kind"
    )


def check_pixels(data: np.ndarray, where: str | Path) -> np.ndarray:
    """Check that ``data`` holds real, finite numbers; return it unchanged.

    Examples
    --------
    >>> check_pixels(np.array([[0.0, np.inf]]), "f")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dropkit.experiment.data.checks.DataFileError: f: non-finite pixel inf at (0, 1)...
    """
    if data.dtype.kind not in "iuf":
        raise DataFileError(
            f"{where}: pixels must be real numbers (integers or floats), got dtype {data.dtype}"
        )
    if data.dtype.kind == "f":
        bad = ~np.isfinite(data)
        if bad.any():
            index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), data.shape))
            raise DataFileError(
                f"{where}: non-finite pixel {data[index]} at {index}: the file is corrupt "
                "(pixels must be finite numbers)"
            )
    return data
