"""Datasets for the dropout experiment.

``mnist1d`` (the embedded default, generated offline), ``digits``
(scikit-learn's bundled 8x8 digits, if scikit-learn is installed), and files
users already have: ``cifar10`` (python or binary batches) and ``mnist`` (IDX).
Features are flattened to float32 and standardised with the training set's
statistics; zero-variance features are centred and left unscaled.

Examples
--------
>>> d = load_dataset("mnist1d", train_size=500)
>>> d.x_train.shape, d.x_test.shape, d.n_classes
((500, 40), (1000, 40), 10)
>>> abs(float(d.x_train.mean())) < 1e-5
True
"""

from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...checks import as_integer
from .files import DataFileError, load_cifar10, load_mnist_idx
from .mnist1d import make_mnist1d

__all__ = ["DATASETS", "DataFileError", "Dataset", "load_dataset", "standardize"]

DATASETS = ("mnist1d", "digits", "cifar10", "mnist")


@dataclass(frozen=True)
class Dataset:
    """A classification dataset as NumPy arrays (float32 features, int64 labels)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def n_features(self) -> int:
        """Number of input features."""
        return int(self.x_train.shape[1])

    def fingerprint(self) -> str:
        """A short hash of the data, stored in checkpoints to detect a changed dataset."""
        h = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


def standardize(
    x_train: np.ndarray, x_test: np.ndarray, eps: float = 1e-8
) -> tuple[np.ndarray, np.ndarray]:
    """Standardise features with the training statistics; guard zero variance.

    Parameters
    ----------
    x_train, x_test : array_like
        2-d arrays (examples x features) of finite real numbers, with the same
        number of features; ``x_train`` must have at least one row.
    eps : float
        Features whose training standard deviation is at most ``eps`` are only
        centred (a finite number >= 0).

    Raises
    ------
    ValueError
        Shapes that do not fit, a non-finite value (its array and first index
        are named), ``eps`` out of range, or values so large that their variance
        overflows float64.

    Examples
    --------
    >>> a = np.array([[1.0, 5.0], [3.0, 5.0]])
    >>> standardize(a, a)[0].tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
    """
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 <= eps < math.inf:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    x_train, x_test = np.asarray(x_train), np.asarray(x_test)
    for name, a in (("x_train", x_train), ("x_test", x_test)):
        if a.ndim != 2:
            raise ValueError(
                f"standardize takes 2-d arrays (examples x features); {name} is {a.ndim}-d"
            )
        if a.dtype.kind not in "iuf":
            raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if x_train.shape[1] != x_test.shape[1]:
        raise ValueError(
            f"x_train has {x_train.shape[1]} features and x_test {x_test.shape[1]}: they must match"
        )
    if x_train.shape[0] == 0:
        raise ValueError("x_train has no rows: nothing to take statistics from")
    for name, a in (("x_train", x_train), ("x_test", x_test)):
        bad = ~np.isfinite(a)
        if bad.any():
            index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), a.shape))
            raise ValueError(f"{name} holds a non-finite value {a[index]} at {index}")
    with np.errstate(over="ignore", invalid="ignore"):
        mean = x_train.mean(axis=0, dtype=np.float64)
        std = x_train.std(axis=0, dtype=np.float64)
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        raise ValueError(
            "features too large to standardise: their mean or variance overflows float64 "
            "(rescale the data first)"
        )
    std = np.where(std > eps, std, 1.0)
    return (
        ((x_train - mean) / std).astype(np.float32),
        ((x_test - mean) / std).astype(np.float32),
    )


def _digits() -> dict[str, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(
            "the 'digits' dataset is scikit-learn's bundled copy: install scikit-learn "
            "(uv pip install scikit-learn)"
        ) from exc
    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.target))
    x, y = bunch.data[order], bunch.target[order].astype(np.int64)
    split = int(0.8 * len(y))
    return {"x": x[:split], "y": y[:split], "x_test": x[split:], "y_test": y[split:]}


def load_dataset(
    name: str = "mnist1d",
    *,
    data_dir: str | Path | None = None,
    train_size: int | None = None,
) -> Dataset:
    """Load a dataset by name, standardised, as float32.

    Parameters
    ----------
    name : {"mnist1d", "digits", "cifar10", "mnist"}
        Which dataset.
    data_dir : path, optional
        Where the files of ``cifar10`` or ``mnist`` are.
    train_size : int, optional
        Keep only the first ``train_size`` training examples (to show how
        dropout's effect grows as the training set shrinks); an integer
        (Python or NumPy) between 1 and the number of training examples.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        ``data_dir`` missing, not a folder, or without the dataset's files.
    DataFileError
        A file is truncated, corrupt or holds bad labels or pixels (a
        ``ValueError``; the message names the file and the first bad index).
    ValueError, TypeError
        An unknown ``name``, ``data_dir`` for a generated dataset, a bad
        ``train_size``.
    """
    if name in ("mnist1d", "digits") and data_dir is not None:
        raise ValueError(
            f"dataset {name!r} is generated or bundled, not read from files: drop data_dir "
            f"(--data-dir {data_dir}), or choose the dataset the files hold (cifar10, mnist)"
        )
    if train_size is not None:
        try:
            train_size = as_integer(train_size)
        except TypeError:
            raise TypeError(
                f"train_size must be an integer, got {train_size!r} ({type(train_size).__name__})"
            ) from None
    if name == "mnist1d":
        raw = make_mnist1d()
    elif name == "digits":
        raw = _digits()
    elif name in ("cifar10", "mnist"):
        if data_dir is None:
            raise ValueError(
                f"dataset {name!r} is read from files: pass --data-dir (the folder holding them)"
            )
        raw = load_cifar10(data_dir) if name == "cifar10" else load_mnist_idx(data_dir)
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    x, y = raw["x"].reshape(len(raw["x"]), -1), raw["y"]
    if train_size is not None:
        if not 1 <= train_size <= len(y):
            raise ValueError(
                f"train_size must be between 1 and {len(y)} for {name!r}, got {train_size}"
            )
        x, y = x[:train_size], y[:train_size]
    x_train, x_test = standardize(
        x.astype(np.float64), raw["x_test"].reshape(len(raw["x_test"]), -1).astype(np.float64)
    )
    n_classes = int(max(y.max(), raw["y_test"].max())) + 1
    return Dataset(
        name, x_train, y.astype(np.int64), x_test, raw["y_test"].astype(np.int64), n_classes
    )
