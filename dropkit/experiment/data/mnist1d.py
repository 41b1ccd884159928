"""MNIST-1D (Greydanus, "Scaling down deep learning", 2020), generated offline.

An own NumPy implementation of the published procedural generator: ten 1-d
digit templates, each padded, dilated, scaled, translated, given correlated
and i.i.d. noise, sheared and subsampled to 40 points. It follows the reference
``mnist1d.data.make_dataset`` draw for draw with a private
``numpy.random.RandomState`` (the package reseeds NumPy's global generator
instead), and a test shows the output equal to the package's. No download,
no SciPy: the linear interpolation is ``numpy.interp`` and the Gaussian filter
(sigma 2, truncated at 4 sigma, "reflect" borders) is written out.

Examples
--------
>>> d = make_mnist1d(num_samples=100)
>>> d["x"].shape, d["x_test"].shape, d["y"].dtype
((80, 40), (20, 40), dtype('int64'))
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ...checks import as_integer

__all__ = ["DEFAULTS", "make_mnist1d", "templates"]

#: The generator's published defaults (4000 train / 1000 test, 40 features).
DEFAULTS: dict[str, Any] = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": (36, 60),
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "final_seq_length": 40,
    "seed": 42,
}

_DIGITS = (
    (5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5),
    (5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5),
    (5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5),
    (5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5),
    (5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5),
    (5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5),
    (5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5),
    (5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5),
    (5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5),
    (5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5),
)


def templates() -> np.ndarray:
    """The ten digit templates, whitened, starting and ending at 0, scaled by 1/6.

    Examples
    --------
    >>> t = templates()
    >>> t.shape, float(abs(t[:, 0]).max())
    ((10, 12), 0.0)
    """
    x = np.asarray(_DIGITS, dtype=np.float64)
    x -= x.mean(axis=1, keepdims=True)
    x /= x.std(axis=1, keepdims=True)
    x -= x[:, :1]
    return x / 6.0


def _resample(x: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation of ``x`` (on [0, 1]) at ``n`` equally spaced points."""
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(x)), x)


def _gaussian_filter(x: np.ndarray, sigma: float = 2.0, truncate: float = 4.0) -> np.ndarray:
    """1-d Gaussian smoothing with half-sample symmetric ("reflect") borders."""
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    padded = np.concatenate([x[radius - 1 :: -1], x, x[: -radius - 1 : -1]])
    return np.correlate(padded, weights, mode="valid")


def _transform(x: np.ndarray, rs: np.random.RandomState, a: dict[str, Any]) -> np.ndarray:
    low, high = a["padding"]
    pad = low + int(rs.rand() * (high - low + 1))
    out = np.concatenate([x + 1e-8, np.zeros(pad)])
    out = _resample(out, a["template_len"] + high)
    out *= 1 + a["scale_coeff"] * (rs.rand() - 0.5)
    k = rs.choice(a["max_translation"])
    out = np.concatenate([out[-k:], out[:-k]])
    signal = out != 0
    corr = _gaussian_filter(a["corr_noise_scale"] * rs.randn(len(out)))
    out = signal * out + (1 - signal) * corr
    out = out + a["iid_noise_scale"] * rs.randn(len(out))
    out = out - a["shear_scale"] * (rs.rand() - 0.5) * np.linspace(-0.5, 0.5, len(out))
    return _resample(out, a["final_seq_length"])


def _integer(a: dict[str, Any], key: str, low: int, high: int | None = None) -> int:
    value = a[key]
    try:
        n = as_integer(value)
    except TypeError:
        raise TypeError(f"{key} must be an integer, got {value!r}") from None
    if n < low or (high is not None and n > high):
        span = (
            f">= {low}" if high is None else f"in {low}..{'2**32-1' if high == 2**32 - 1 else high}"
        )
        raise ValueError(f"{key} must be an integer {span}, got {n}")
    return n


def _real(a: dict[str, Any], key: str, *, nonnegative: bool = True) -> float:
    value = a[key]
    what = "a finite number >= 0" if nonnegative else "a finite number"
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{key} must be {what}, got {value!r}")
    x = float(value)
    if not math.isfinite(x) or (nonnegative and x < 0):
        raise ValueError(f"{key} must be {what}, got {value!r}")
    return x


def check_options(a: dict[str, Any]) -> dict[str, Any]:
    """Check every MNIST-1D generator option; return them normalised (Python ints, floats).

    Raises
    ------
    TypeError, ValueError
        An option of the wrong type or out of range, named with its value.

    Examples
    --------
    >>> check_options({**DEFAULTS, "num_samples": 5})
    Traceback (most recent call last):
    ...
    ValueError: num_samples must be an integer >= 10 (one per digit), got 5
    """
    out = dict(a)
    try:
        out["num_samples"] = _integer(a, "num_samples", 10)
    except ValueError as exc:
        raise ValueError(str(exc).replace(", got", " (one per digit), got")) from None
    split = a["train_split"]
    if isinstance(split, bool | np.bool_) or not isinstance(split, numbers.Real):
        raise TypeError(f"train_split must be a number in (0, 1), got {split!r}")
    if not 0 < float(split) < 1:
        raise ValueError(f"train_split must be a number in (0, 1), got {split!r}")
    out["train_split"] = float(split)
    n = out["num_samples"] // 10 * 10
    n_train = int(n * out["train_split"])
    if not 1 <= n_train < n:
        raise ValueError(
            f"num_samples={out['num_samples']} with train_split={split!r} leaves {n_train} "
            f"training and {n - n_train} test examples: both need at least one"
        )
    out["template_len"] = _integer(a, "template_len", 1)
    pad = a["padding"]
    message = f"padding must be two integers 0 <= low <= high, got {pad!r}"
    if not isinstance(pad, tuple | list) or len(pad) != 2:
        raise TypeError(message)
    try:
        low, high = (_integer({"padding": p}, "padding", 0) for p in pad)
    except (TypeError, ValueError) as exc:
        raise type(exc)(message) from None
    if low > high:
        raise ValueError(message)
    out["padding"] = (low, high)
    for key in ("scale_coeff", "corr_noise_scale", "iid_noise_scale"):
        out[key] = _real(a, key)
    out["shear_scale"] = _real(a, "shear_scale", nonnegative=False)
    out["max_translation"] = _integer(a, "max_translation", 1)
    out["final_seq_length"] = _integer(a, "final_seq_length", 1)
    out["seed"] = _integer(a, "seed", 0, 2**32 - 1)
    return out


def make_mnist1d(**overrides: Any) -> dict[str, np.ndarray]:
    """Generate MNIST-1D: ``{"x", "y", "x_test", "y_test"}`` (float64 x, int64 y).

    Parameters
    ----------
    **overrides
        Any of :data:`DEFAULTS` (``num_samples``, ``seed``, ...), checked by
        :func:`check_options`.

    Examples
    --------
    >>> d = make_mnist1d(num_samples=50, seed=1)
    >>> sorted(set(d["y"].tolist()) | set(d["y_test"].tolist())) == list(range(10))
    True
    """
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown MNIST-1D parameters {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    a = check_options({**DEFAULTS, **overrides})
    rs = np.random.RandomState(a["seed"])
    tpl = templates()
    per_class = a["num_samples"] // len(tpl)
    xs = np.stack([_transform(tpl[c], rs, a) for c in range(len(tpl)) for _ in range(per_class)])
    ys = np.repeat(np.arange(len(tpl), dtype=np.int64), per_class)
    order = rs.permutation(len(ys))
    xs, ys = xs[order], ys[order]
    xs = (xs - xs.mean()) / xs.std()
    split = int(len(ys) * a["train_split"])
    return {"x": xs[:split], "y": ys[:split], "x_test": xs[split:], "y_test": ys[split:]}
