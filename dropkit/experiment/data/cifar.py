"""CIFAR-10 from the python batches (pickles) or the binary batches (records).

Python batches are read with :func:`~dropkit.experiment.data.pickles.safe_unpickle`: no
code runs and every array is rebuilt from the file's own bytes with its size
checked. Each batch's labels must be integers in ``0..9`` and its pixels real,
finite numbers; errors name the file and the first bad index.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> load_cifar10(d)
Traceback (most recent call last):
...
FileNotFoundError: no CIFAR-10 files under ...
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .checks import DataFileError, check_folder, check_labels, check_pixels, open_data_file
from .pickles import safe_unpickle

__all__ = ["CIFAR_TEST", "CIFAR_TRAIN", "load_cifar10"]

CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = ["test_batch"]
_PIXELS = 3072
_RECORD = 1 + _PIXELS


def _find(base: Path, names: list[str], suffix: str) -> list[Path] | None:
    paths = [base / (n + suffix) for n in names]
    return paths if all(p.exists() for p in paths) else None


def _cifar_python(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = safe_unpickle(path, "CIFAR-10 python batch")
    if not isinstance(batch, dict):
        raise DataFileError(f"{path}: expected a dict batch, got {type(batch).__name__}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataFileError(f"{path}: expected keys 'data' (uint8 array) and 'labels'")
    labels = check_labels(labels, path)
    if data.ndim != 2 or data.shape[1] != _PIXELS or data.shape[0] != labels.shape[0]:
        raise DataFileError(
            f"{path}: expected data of shape (n, {_PIXELS}) and n labels, got {data.shape} and "
            f"{labels.shape[0]} labels"
        )
    return check_pixels(data, path), labels


def _cifar_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    f, size = open_data_file(path)
    if size == 0 or size % _RECORD:
        f.close()
        raise DataFileError(
            f"{path}: expected a whole number of {_RECORD}-byte records (1 label byte + "
            f"{_PIXELS} pixels), got {size} bytes: truncated or not a CIFAR-10 binary batch"
        )
    with f:
        raw = np.fromfile(f, dtype=np.uint8, count=size)
    if raw.size != size:
        raise DataFileError(f"{path}: shrank while being read ({raw.size} of {size} bytes)")
    records = raw.reshape(-1, _RECORD)
    return records[:, 1:], check_labels(records[:, 0], path)


def load_cifar10(data_dir: str | Path) -> dict[str, np.ndarray]:
    """Load CIFAR-10 from ``cifar-10-batches-py`` or ``cifar-10-batches-bin``.

    Parameters
    ----------
    data_dir : path
        The batches folder itself, or a folder containing it.

    Returns
    -------
    dict
        ``x`` (n, 3072) in the files' channel-major order (uint8 for the
        original files), ``y`` int64 in ``0..9``, ``x_test``, ``y_test``.

    Raises
    ------
    FileNotFoundError
        No complete set of batches under ``data_dir``.
    DataFileError
        A batch is corrupt: the message names it (and the first bad index).
    """
    data_dir = check_folder(data_dir)
    for base in (data_dir, data_dir / "cifar-10-batches-py", data_dir / "cifar-10-batches-bin"):
        for suffix, reader in (("", _cifar_python), (".bin", _cifar_binary)):
            train = _find(base, CIFAR_TRAIN, suffix)
            test = _find(base, CIFAR_TEST, suffix)
            if train and test:
                parts = [reader(p) for p in train]
                x_test, y_test = reader(test[0])
                y = np.concatenate([y for _, y in parts])
                if y.size == 0:
                    raise DataFileError(
                        f"{base}: the five training batches hold no training images"
                    )
                if y_test.size == 0:
                    raise DataFileError(f"{test[0]}: holds no test images")
                return {
                    "x": np.concatenate([x for x, _ in parts]),
                    "y": y,
                    "x_test": x_test,
                    "y_test": y_test,
                }
    raise FileNotFoundError(
        f"no CIFAR-10 files under {data_dir}: expected cifar-10-batches-py/ "
        f"({', '.join(CIFAR_TRAIN + CIFAR_TEST)}) or cifar-10-batches-bin/ (the same names "
        "with .bin); download CIFAR-10 from https://www.cs.toronto.edu/~kriz/cifar.html"
    )
