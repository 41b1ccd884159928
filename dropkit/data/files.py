"""Loaders for dataset files users already have: CIFAR-10 (python and binary) and MNIST IDX.

Nothing in a file is executed. CIFAR-10's python batches are pickles: they are
read with an unpickler that resolves only the NumPy names an array needs
(``_reconstruct``, ``ndarray``, ``dtype``, plus ``_codecs.encode`` for bytes)
and refuses every other global, so a
crafted file cannot run code. Missing, truncated or corrupt files raise errors
that name the file and say what was expected.

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

import codecs
import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DataFileError", "load_cifar10", "load_mnist_idx", "safe_unpickle"]

CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = ["test_batch"]
_CIFAR_RECORD = 1 + 3072
_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class DataFileError(ValueError):
    """A dataset file exists but is truncated, corrupt or of the wrong format."""


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.empty(0))[0],
    ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.empty(0))[0],
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, "latin1").
    ("_codecs", "encode"): codecs.encode,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only NumPy arrays are allowed"
            )
        return found


def safe_unpickle(path: Path) -> Any:
    """Unpickle ``path`` allowing nothing but plain containers and NumPy arrays.

    Examples
    --------
    >>> import io, pickle, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "ok.pkl"
    >>> _ = p.write_bytes(pickle.dumps({b"data": np.arange(3)}, protocol=2))
    >>> safe_unpickle(p)[b"data"].tolist()
    [0, 1, 2]
    """
    try:
        with open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataFileError(f"{path}: not a readable CIFAR-10 python batch ({exc})") from exc


def _find(base: Path, names: list[str], suffix: str) -> list[Path] | None:
    paths = [base / (n + suffix) for n in names]
    return paths if all(p.exists() for p in paths) else None


def _cifar_python(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = safe_unpickle(path)
    if not isinstance(batch, dict):
        raise DataFileError(f"{path}: expected a dict batch, got {type(batch).__name__}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataFileError(f"{path}: expected keys 'data' (uint8 array) and 'labels'")
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise DataFileError(
            f"{path}: expected data of shape (n, 3072) and n labels, got {data.shape} and "
            f"{labels.shape[0]} labels"
        )
    return data, labels


def _cifar_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR_RECORD:
        raise DataFileError(
            f"{path}: expected a whole number of {_CIFAR_RECORD}-byte records (1 label byte + "
            f"3072 pixels), got {raw.size} bytes: truncated or not a CIFAR-10 binary batch"
        )
    records = raw.reshape(-1, _CIFAR_RECORD)
    return records[:, 1:], records[:, 0].astype(np.int64)


def load_cifar10(data_dir: str | Path) -> dict[str, np.ndarray]:
    """Load CIFAR-10 from ``cifar-10-batches-py`` or ``cifar-10-batches-bin``.

    Parameters
    ----------
    data_dir : path
        The batches folder itself, or a folder containing it.

    Returns
    -------
    dict
        ``x`` (n, 3072) uint8 in the files' channel-major order, ``y`` int64,
        ``x_test``, ``y_test``.
    """
    data_dir = Path(data_dir)
    for base in (data_dir, data_dir / "cifar-10-batches-py", data_dir / "cifar-10-batches-bin"):
        for suffix, reader in (("", _cifar_python), (".bin", _cifar_binary)):
            train = _find(base, CIFAR_TRAIN, suffix)
            test = _find(base, CIFAR_TEST, suffix)
            if train and test:
                parts = [reader(p) for p in train]
                x_test, y_test = reader(test[0])
                labels = np.concatenate([y for _, y in parts] + [y_test])
                if labels.size and (labels.min() < 0 or labels.max() > 9):
                    raise DataFileError(f"{base}: labels outside 0..9: corrupt batch files")
                return {
                    "x": np.concatenate([x for x, _ in parts]),
                    "y": np.concatenate([y for _, y in parts]),
                    "x_test": x_test,
                    "y_test": y_test,
                }
    raise FileNotFoundError(
        f"no CIFAR-10 files under {data_dir}: expected cifar-10-batches-py/ "
        f"({', '.join(CIFAR_TRAIN + CIFAR_TEST)}) or cifar-10-batches-bin/ (the same names "
        "with .bin); download CIFAR-10 from https://www.cs.toronto.edu/~kriz/cifar.html"
    )


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataFileError(f"{path}: cannot read ({exc}); truncated or corrupt gzip?") from exc
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
        raise DataFileError(
            f"{path}: not an IDX file of {ndim}-d uint8 data: expected magic {magic:#010x}, "
            f"found {found if found is None else hex(found)}"
        )
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataFileError(
            f"{path}: header says {dims} -> {expected} bytes, file has {len(raw)}: truncated or "
            "corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_mnist_idx(data_dir: str | Path) -> dict[str, np.ndarray]:
    """Load MNIST (or Fashion-MNIST) from the four IDX files, optionally gzipped.

    Returns ``x`` (n, 784) uint8, ``y`` int64, ``x_test``, ``y_test``.
    """
    data_dir = Path(data_dir)
    paths = {}
    for key, name in _MNIST_FILES.items():
        found = [p for p in (data_dir / name, data_dir / (name + ".gz")) if p.exists()]
        if not found:
            raise FileNotFoundError(
                f"MNIST file {name}[.gz] not found in {data_dir}; expected the four IDX files "
                f"{', '.join(_MNIST_FILES.values())}"
            )
        paths[key] = found[0]
    x = _read_idx(paths["train_images"], 0x00000803, 3)
    y = _read_idx(paths["train_labels"], 0x00000801, 1)
    x_test = _read_idx(paths["test_images"], 0x00000803, 3)
    y_test = _read_idx(paths["test_labels"], 0x00000801, 1)
    for images, labels, which in ((x, y, "train"), (x_test, y_test, "t10k")):
        if images.shape[0] != labels.shape[0]:
            raise DataFileError(
                f"{data_dir}: {which} images ({images.shape[0]}) and labels "
                f"({labels.shape[0]}) differ in number"
            )
    return {
        "x": x.reshape(len(x), -1),
        "y": y.astype(np.int64),
        "x_test": x_test.reshape(len(x_test), -1),
        "y_test": y_test.astype(np.int64),
    }
