"""The configuration of a training run: :class:`TrainConfig`, the presets, the memory it needs.

Every field is checked when a configuration is made (types first, then
ranges), so a run never starts, nor writes anything, with a bad one.

Examples
--------
>>> TrainConfig(epochs=5, hidden=(32,)).to_dict()["hidden"]
[32]
>>> TrainConfig(p_hidden=1.5)
Traceback (most recent call last):
...
ValueError: p is the probability of DROPPING a unit and must be in [0, 1], got 1.5
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from ..checks import as_integer, check_flag, check_mode, check_p, check_scale
from ..ops import train_scale
from .data import DATASETS
from .methods import check_activation, check_method_options, noise_layer
from .split import DEFAULT_VAL_SIZE, check_val_size

__all__ = ["PRESETS", "TrainConfig", "layer_widths", "memory_estimate"]


_DTYPES = ("float16", "float32", "float64")


def _integer(name: str, value: Any) -> int:
    try:
        return as_integer(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer, got {value!r} ({type(value).__name__})"
        ) from None


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _hidden(value: Any) -> tuple[int, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(f"hidden must be a sequence of positive integers, got {value!r}")
    widths = []
    for w in value:
        try:
            widths.append(as_integer(w))
        except TypeError:
            raise TypeError(f"hidden sizes must be integers, got {tuple(value)!r}") from None
    if not widths or min(widths) < 1:
        raise ValueError(f"hidden sizes must be positive, got {tuple(widths)}")
    return tuple(widths)


def check_seed(seed: Any) -> int:
    """Return ``seed`` as an ``int`` if it is an integer in ``[0, 2**64)``, else raise.

    Examples
    --------
    >>> check_seed(2**64)
    Traceback (most recent call last):
    ...
    ValueError: seed must be an integer in [0, 2**64), got 18446744073709551616
    """
    seed = _integer("seed", seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed}")
    return seed


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run (defaults: the MNIST-1D experiment).

    ``p_hidden`` and ``p_input`` are DROP probabilities. The learning rate is
    ``lr`` halved every ``lr_every`` epochs, ``lr_times`` times. ``noise``
    names the noise layer (:data:`dropkit.experiment.methods.NOISES`: ``"dropout"``,
    ``"gaussian"``, ``"alpha"``), ``activation`` the hidden activation
    (``"relu"`` with He-normal weights, ``"selu"`` with LeCun-normal ones).
    ``val_size`` holds training examples out for validation: a count, or a
    fraction in (0, 1) (default 0.1; 0: none, and the run reports test
    accuracies selected on the test set only); see :mod:`~dropkit.experiment.split`.
    """

    dataset: str = "mnist1d"
    hidden: tuple[int, ...] = (512, 256)
    p_hidden: float = 0.5
    p_input: float = 0.0
    mode: str = "inverted"
    lr: float = 0.05
    lr_every: int = 75
    lr_times: int = 3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-3
    batch_size: int = 256
    epochs: int = 300
    seed: int = 0
    backend: str | None = None
    dtype: str = "float32"
    noise: str = "dropout"
    activation: str = "relu"
    val_size: int | float = DEFAULT_VAL_SIZE

    def __post_init__(self) -> None:
        # types first (bools are not numbers, numbers are not flags), then ranges
        put = object.__setattr__
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        put(self, "hidden", _hidden(self.hidden))
        for name in ("p_hidden", "p_input", "lr", "momentum", "weight_decay"):
            put(self, name, _real(name, getattr(self, name)))
        for name in ("lr_every", "lr_times", "batch_size", "epochs", "seed"):
            put(self, name, _integer(name, getattr(self, name)))
        put(self, "nesterov", check_flag(self.nesterov, "nesterov"))
        put(self, "val_size", check_val_size(self.val_size))
        check_p(self.p_hidden)
        check_p(self.p_input)
        check_mode(self.mode)
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr_every", "lr_times"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: no halving), got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        check_seed(self.seed)
        if self.backend is not None and not isinstance(self.backend, str):
            raise TypeError(f"backend must be a string or None, got {self.backend!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be float16, float32 or float64, got {self.dtype!r}")
        check_activation(self.activation)
        noise_layer(self.noise)  # a known name whose layer this installation has
        check_method_options(
            self.noise, p_hidden=self.p_hidden, p_input=self.p_input, mode=self.mode
        )
        for name in ("p_hidden", "p_input"):
            p = getattr(self, name)
            if 0.0 < p < 1.0:
                try:  # checked here, so a run never starts (or writes) with it
                    check_scale(train_scale(p, self.mode), p, self.dtype, np.finfo(self.dtype))
                except ValueError as exc:
                    message = str(exc).replace("mode='vanilla'", "mode 'vanilla' (--mode vanilla)")
                    raise ValueError(
                        f"{name} is too close to 1 for {self.dtype}: {message}"
                    ) from None

    def with_seed(self, seed: int) -> TrainConfig:
        """A copy with another ``seed``; only the seed is checked (the rest was, at creation).

        Cheap: a study of many seeds makes one such copy per run.

        Examples
        --------
        >>> TrainConfig(seed=1).with_seed(7).seed
        7
        """
        if not (type(seed) is int and 0 <= seed < 2**64):
            seed = check_seed(seed)
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__["seed"] = seed
        return new

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (missing keys take their defaults; unknown keys fail)."""
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        return cls(**d)


#: Named hyperparameter sets. ``article-cifar10``: the source article's run.
PRESETS: dict[str, dict[str, Any]] = {
    "mnist1d": {},
    "article-cifar10": {
        "dataset": "cifar10",
        "hidden": (2000, 800),
        "batch_size": 256,
        "lr": 1e-3,
        "lr_every": 50,
        "lr_times": 4,
        "weight_decay": 1e-3,
        "p_hidden": 0.5,
        "p_input": 0.0,
        "epochs": 300,
    },
}


def layer_widths(config: TrainConfig, n_features: int, n_classes: int) -> list[int]:
    """The net's widths, input first: features, the hidden layers, classes."""
    return [int(n_features), *config.hidden, int(n_classes)]


def memory_estimate(config: TrainConfig, n_features: int, n_classes: int) -> tuple[int, int]:
    """Parameters of the net and the bytes its training needs at least.

    Counts weights, gradients and momentum (three copies of the parameters) and
    one batch of activations, forward and backward, in the run's dtype.

    Examples
    --------
    >>> memory_estimate(TrainConfig(hidden=(10,), batch_size=1, dtype="float64"), 4, 2)
    (72, 2112)
    """
    layers = layer_widths(config, n_features, n_classes)
    params = sum((a + 1) * b for a, b in itertools.pairwise(layers))
    itemsize = np.dtype(config.dtype).itemsize
    activations = 3 * config.batch_size * sum(layers)
    return params, (3 * params + activations) * itemsize
