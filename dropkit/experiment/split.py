"""The validation split: training examples held out to select an epoch without the test set.

A run with ``TrainConfig.val_size`` > 0 trains on the training set minus a
validation set carved from it, evaluates the validation set every epoch, and
reports the test accuracy at the epoch of the best validation accuracy. The
test set is never used to choose anything.

``val_size`` is a count (an integer >= 0; 0: no validation set) or a fraction
of the training examples (a float in (0, 1), rounded half up, at least 1).
The default, :data:`DEFAULT_VAL_SIZE` = 0.1, holds out 400 of MNIST-1D's 4000
training examples.

The split is stratified (each class keeps its share, to one example) and
deterministic: a fixed permutation (:data:`SPLIT_SEED`) of the examples,
grouped by label, and evenly spaced picks through it. It depends on the
labels and ``val_size`` only, NOT on the run's ``seed``: every method and
seed of a study, and every resume, hold out the same examples. The kept
training examples stay in their order (``val_size=0`` trains on exactly the
same data as before validation existed).

Examples
--------
>>> import numpy as np

if TYPE_CHECKING:
    from .data import Dataset
>>> y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
>>> split = validation_split(y, 0.2)
>>> split.val.tolist(), len(split.train)
([1, 5], 8)
>>> np.bincount(y[split.val]).tolist()  # one of each class: stratified
[1, 1]
>>> validation_split(y, 0).val.tolist()
[]
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .data import Dataset

__all__ = [
    "DEFAULT_VAL_SIZE",
    "SPLIT_SEED",
    "Split",
    "check_val_size",
    "dataset_entry",
    "val_count",
    "validation_split",
]

#: ``TrainConfig.val_size`` by default: a tenth of the training examples.
DEFAULT_VAL_SIZE = 0.1
#: The seed of the split's permutation (fixed: the split does not depend on the run's seed).
SPLIT_SEED = 20261204


def check_val_size(value: Any) -> int | float:
    """``value`` if it is a valid ``val_size`` (a count >= 0 or a fraction in (0, 1)).

    Examples
    --------
    >>> check_val_size(500), check_val_size(0.1)
    (500, 0.1)
    >>> check_val_size(1.5)
    Traceback (most recent call last):
    ...
    ValueError: val_size must be a count (an integer >= 0, 0: no validation set) or a fraction \
in (0, 1), got 1.5
    """
    problem = (
        "val_size must be a count (an integer >= 0, 0: no validation set) or a fraction in "
        f"(0, 1), got {value!r}"
    )
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise TypeError(f"{problem} ({type(value).__name__})")
    if isinstance(value, Integral):
        if value < 0:
            raise ValueError(problem)
        return int(value)
    value = float(value)
    if value == 0.0:
        return 0
    if not 0.0 < value < 1.0:
        raise ValueError(problem)
    return value


def val_count(val_size: int | float, n: int) -> int:
    """How many of ``n`` training examples ``val_size`` holds out.

    Raises
    ------
    ValueError
        Nothing would be left to train on (the message says what to change).

    Examples
    --------
    >>> val_count(0.1, 4000), val_count(0.1, 5), val_count(300, 4000), val_count(0, 10)
    (400, 1, 300, 0)
    """
    val_size = check_val_size(val_size)
    k = val_size if isinstance(val_size, int) else max(1, math.floor(val_size * n + 0.5))
    if k and k >= n:
        raise ValueError(
            f"val_size {val_size} holds out {k} of the {n} training examples, leaving none to "
            "train on; choose a smaller --val-size (0: no validation set) or more --train-size"
        )
    return k


@dataclass(frozen=True)
class Split:
    """Row indices of the training set: those trained on and those held out (both sorted)."""

    train: np.ndarray
    val: np.ndarray

    def fingerprint(self) -> str:
        """A short hash of the held-out indices (stored in checkpoints, checked on resume)."""
        h = hashlib.sha256(np.ascontiguousarray(self.val, dtype=np.int64).tobytes())
        return f"{len(self.val)}:{h.hexdigest()[:16]}"

    def to_dict(self) -> dict[str, Any]:
        """What a checkpoint and a summary record of the split."""
        n_train, n_val = len(self.train), len(self.val)
        return {"n_train": n_train, "n_val": n_val, "fingerprint": self.fingerprint()}


def validation_split(y: Any, val_size: int | float) -> Split:
    """Split the rows of the labels ``y`` into training and validation rows.

    Stratified and fixed (see the module's description); ``val_size=0``
    keeps every row for training.
    """
    y = np.asarray(y)
    n = len(y)
    k = val_count(val_size, n)
    rows = np.arange(n)
    if k == 0:
        return Split(rows, rows[:0])
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    by_class = perm[np.argsort(y[perm], kind="stable")]  # grouped by label, shuffled within
    picks = ((np.arange(k) + 0.5) * (n / k)).astype(np.int64)  # evenly spaced, k distinct
    val = np.sort(by_class[picks])
    keep = np.ones(n, dtype=bool)
    keep[val] = False
    return Split(rows[keep], val)


def dataset_entry(data: Dataset, val_size: int | float = 0) -> dict[str, Any]:
    """The ``"dataset"`` entry of ``summary.json``.

    ``n_train`` counts the training examples given (``--train-size``);
    ``n_val`` those of them held out for validation (``val_size``).
    """
    return {
        "name": data.name,
        "n_train": int(data.x_train.shape[0]),
        "n_val": len(validation_split(data.y_train, val_size).val),
        "n_test": int(data.x_test.shape[0]),
        "n_features": data.n_features,
        "n_classes": data.n_classes,
    }
