"""What a training run records: its epochs, and the numbers selected from them.

Every epoch's record has the keys of :data:`RECORD_KEYS`: ``epoch``,
``loss`` (the mean training loss of the epoch's steps), ``train_acc`` (the
training examples trained on, evaluation mode), ``val_acc`` and ``val_loss``
(the held-out validation examples; None without a validation set),
``test_acc`` and ``test_loss`` (the test set; losses are the mean
cross-entropy), ``lr`` and ``seconds``.

Two selections of an epoch are reported, and labelled apart:

- the best validation epoch: the highest ``val_acc``, ties going to the lower
  ``val_loss``, then to the earlier epoch. The test accuracy there
  (``test_acc_at_best_val``) is the run's headline number: nothing about it
  was chosen on the test set. Its parameters are kept (``best.npz``).
- the best test epoch (``best_test_acc``): the highest test accuracy over all
  epochs, as the source article reports. It is chosen on the test set, so it
  overstates what a user can expect; it is kept to compare with the article.

Examples
--------
>>> history = [
...     {"epoch": 1, "val_acc": 0.5, "val_loss": 1.0, "test_acc": 0.40},
...     {"epoch": 2, "val_acc": 0.6, "val_loss": 0.9, "test_acc": 0.55},
...     {"epoch": 3, "val_acc": 0.6, "val_loss": 0.8, "test_acc": 0.52},
...     {"epoch": 4, "val_acc": 0.5, "val_loss": 0.9, "test_acc": 0.58},
... ]
>>> best_val_record(history)["epoch"]  # val 0.6 twice: the lower val loss wins
3
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np

if TYPE_CHECKING:
    from .train import TrainConfig

__all__ = [
    "LEGACY_RECORD_KEYS",
    "RECORD_KEYS",
    "Run",
    "TrainResult",
    "best_val_record",
    "headline",
    "is_better",
    "normalise_record",
    "record_problem",
]

#: The keys of an epoch's record, in order.
RECORD_KEYS = (
    "epoch",
    "loss",
    "train_acc",
    "val_acc",
    "val_loss",
    "test_acc",
    "test_loss",
    "lr",
    "seconds",
)
#: The keys of the records of checkpoints made before validation and test loss existed.
LEGACY_RECORD_KEYS = ("epoch", "loss", "train_acc", "test_acc", "lr", "seconds")


_ACCURACIES = ("train_acc", "val_acc", "test_acc")
_LOSSES = ("loss", "val_loss", "test_loss")


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def record_problem(record: dict[str, Any]) -> str | None:
    """What is wrong with the values of an epoch's ``record`` (None: nothing).

    Accuracies must be numbers in [0, 1], losses, ``lr`` and ``seconds`` finite non-negative
    numbers; ``val_acc`` and ``val_loss`` may be None (no validation set), and
    keys a record of an older checkpoint lacks are not checked.

    Examples
    --------
    >>> record_problem({"epoch": 1, "loss": 0.5, "test_acc": 5.0})
    'has test_acc 5.0, not an accuracy in [0, 1]'
    >>> record_problem({"epoch": 1, "loss": float("nan")})
    'has loss nan, not a finite non-negative number'
    """
    for key in _ACCURACIES:
        value = record.get(key)
        if value is None and key == "val_acc":
            continue
        if key in record and not (_number(value) and 0 <= value <= 1):
            return f"has {key} {value!r}, not an accuracy in [0, 1]"
    for key in (*_LOSSES, "lr", "seconds"):
        value = record.get(key)
        if value is None and key == "val_loss":
            continue
        if key in record and not (_number(value) and math.isfinite(value) and value >= 0):
            return f"has {key} {value!r}, not a finite non-negative number"
    return None


def normalise_record(record: dict[str, Any]) -> dict[str, Any]:
    """A record with every key of :data:`RECORD_KEYS` (None for those an old record lacks).

    Examples
    --------
    >>> old = {"epoch": 1, "loss": 2.0, "train_acc": 0.2, "test_acc": 0.1, "lr": 0.05,
    ...        "seconds": 1.0}
    >>> normalise_record(old)["val_acc"] is None, list(normalise_record(old)) == list(RECORD_KEYS)
    (True, True)
    """
    return {key: record.get(key) for key in RECORD_KEYS}


def is_better(record: dict[str, Any], best: dict[str, Any] | None) -> bool:
    """Whether ``record`` beats ``best`` on validation (see the module's description)."""
    if record.get("val_acc") is None:
        return False
    if best is None:
        return True
    return (record["val_acc"], -record["val_loss"]) > (best["val_acc"], -best["val_loss"])


def best_val_record(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The record of the best validation epoch (None: no validation set)."""
    best = None
    for record in history:
        if is_better(record, best):
            best = record
    return best


def headline(summary: dict[str, Any]) -> tuple[str, str]:
    """The key of a run summary's headline test accuracy, and how it was selected.

    ``test_acc_at_best_val`` when the run had a validation set; otherwise
    ``best_test_acc``, chosen on the test set (and said so).

    Examples
    --------
    >>> headline({"test_acc_at_best_val": 0.7, "best_test_acc": 0.72})
    ('test_acc_at_best_val', 'test acc at best val')
    >>> headline({"test_acc_at_best_val": None, "best_test_acc": 0.72})[1]
    'best test acc (selected on test)'
    """
    if summary.get("test_acc_at_best_val") is not None:
        return "test_acc_at_best_val", "test acc at best val"
    return "best_test_acc", "best test acc (selected on test)"


@dataclass
class Run:
    """What the hooks see of a run in progress.

    ``n_train`` counts the examples trained on; ``n_val`` those held out for
    validation (0: none); ``threads`` is the BLAS thread choice
    (:meth:`~dropkit.experiment.threads.ThreadChoice.to_dict`).
    """

    name: str
    config: TrainConfig
    out_dir: Path | None
    backend: str
    n_train: int
    n_test: int
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 0
    n_val: int = 0
    threads: dict[str, Any] | None = None


@dataclass
class TrainResult:
    """The outcome of a run: history, selected accuracies and when they were reached.

    ``params`` are the final parameters, ``best_params`` those of the best
    validation epoch (None without a validation set).
    """

    name: str
    config: TrainConfig
    history: list[dict[str, Any]]
    params: list[np.ndarray]
    best_params: list[np.ndarray] | None = None
    split: dict[str, Any] | None = None
    threads: dict[str, Any] | None = None

    def _best(self, key: str) -> tuple[float, int]:
        best = max(self.history, key=lambda r: r[key])  # first epoch reaching the maximum
        return best[key], best["epoch"]

    @property
    def best_train_acc(self) -> float:
        """Best full-training-set accuracy over the epochs."""
        return self._best("train_acc")[0]

    @property
    def best_test_acc(self) -> float:
        """Best test accuracy over the epochs (selected on the test set, as the article)."""
        return self._best("test_acc")[0]

    @property
    def test_acc_at_best_val(self) -> float | None:
        """Test accuracy at the best validation epoch (None without a validation set)."""
        best = best_val_record(self.history)
        return None if best is None else best["test_acc"]

    @property
    def seconds(self) -> float:
        """Training time summed over the epochs (evaluation included)."""
        return float(sum(r["seconds"] for r in self.history))

    def summary(self) -> dict[str, Any]:
        """The selected accuracies (in [0, 1]) with their epochs, the final ones, and time.

        Keys: ``best_val_acc``, ``best_val_epoch``, ``test_acc_at_best_val``
        (None without a validation set); ``best_test_acc``,
        ``best_test_epoch`` (selected on test, as the article);
        ``best_train_acc``, ``best_train_epoch``; ``final_train_acc``,
        ``final_val_acc``, ``final_test_acc``, ``final_test_loss``,
        ``final_gap`` (train minus test, final epoch); ``selection``
        (``"validation"`` or ``"test"``: what the headline number of
        :func:`headline` was selected on); ``epochs``, ``seconds``,
        ``split``, ``threads``, ``config``.
        """
        train_acc, train_epoch = self._best("train_acc")
        test_acc, test_epoch = self._best("test_acc")
        best = best_val_record(self.history)
        last = self.history[-1]
        return {
            "best_val_acc": None if best is None else best["val_acc"],
            "best_val_epoch": None if best is None else best["epoch"],
            "test_acc_at_best_val": None if best is None else best["test_acc"],
            "best_test_acc": test_acc,
            "best_test_epoch": test_epoch,
            "best_train_acc": train_acc,
            "best_train_epoch": train_epoch,
            "final_train_acc": last["train_acc"],
            "final_val_acc": last.get("val_acc"),
            "final_test_acc": last["test_acc"],
            "final_test_loss": last.get("test_loss"),
            "final_gap": last["train_acc"] - last["test_acc"],
            "selection": "test" if best is None else "validation",
            "epochs": len(self.history),
            "seconds": self.seconds,
            "split": self.split,
            "threads": self.threads,
            "config": self.config.to_dict(),
        }
