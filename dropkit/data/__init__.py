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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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

    Examples
    --------
    >>> a = np.array([[1.0, 5.0], [3.0, 5.0]])
    >>> standardize(a, a)[0].tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
    """
    mean = x_train.mean(axis=0, dtype=np.float64)
    std = x_train.std(axis=0, dtype=np.float64)
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
        dropout's effect grows as the training set shrinks).
    """
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
