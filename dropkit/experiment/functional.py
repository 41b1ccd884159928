"""The functions of the experiment's network: initialisers, activations, the loss, accuracy.

Array-API code on any namespace: He-normal and LeCun-normal weights drawn from
the portable generator (Box-Muller on Philox words), ReLU and SELU with their
gradients, a numerically stable softmax cross-entropy, and the ReLU the net
uses where no unit is dropped. :class:`~dropkit.experiment.nn.MLP` is built
from them (and re-exports the public ones).
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from ..backend import Backend
from ..checks import check_flag
from ..normals import standard_normal
from ..random import Generator

__all__ = [
    "INITS",
    "SELU_ALPHA",
    "SELU_SCALE",
    "accuracy",
    "activate",
    "activation_grad",
    "he_normal",
    "lecun_normal",
    "relu_scaled",
    "selu",
    "softmax_cross_entropy",
]


#: SELU's constants (Klambauer et al. 2017, eq. 14), to the digits of their paper's code.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def he_normal(
    backend: Backend, rng: Generator, fan_in: int, fan_out: int, dtype: Any, device: Any = None
) -> Any:
    """He (Kaiming) normal weights of shape ``(fan_in, fan_out)``: std sqrt(2 / fan_in)."""
    return standard_normal(backend, rng, (fan_in, fan_out), dtype, device) * math.sqrt(2.0 / fan_in)


def lecun_normal(
    backend: Backend, rng: Generator, fan_in: int, fan_out: int, dtype: Any, device: Any = None
) -> Any:
    """LeCun normal weights of shape ``(fan_in, fan_out)``: std sqrt(1 / fan_in), for SELU nets.

    The same standard normals as :func:`he_normal` for the same ``rng``, scaled
    by 1/sqrt(2) relative to it.

    Examples
    --------
    >>> import numpy as np
    >>> from dropkit import get_backend
    >>> w = lecun_normal(get_backend("numpy"), Generator(0), 400, 300, np.float64)
    >>> round(float(w.std() * 20), 1)
    1.0
    """
    return standard_normal(backend, rng, (fan_in, fan_out), dtype, device) * math.sqrt(1.0 / fan_in)


INITS = {"relu": he_normal, "selu": lecun_normal}


def selu(xp: Any, z: Any) -> Any:
    """SELU: ``scale * z`` for z > 0, ``scale * alpha * (exp(z) - 1)`` otherwise.

    Examples
    --------
    >>> import array_api_compat.numpy as xp
    >>> [round(float(v), 4) for v in selu(xp, xp.asarray([-50.0, 0.0, 1.0]))]
    [-1.7581, 0.0, 1.0507]
    """
    negative = xp.where(z > 0, xp.zeros_like(z), z)  # no overflow of exp for large z
    return SELU_SCALE * xp.where(z > 0, z, SELU_ALPHA * xp.expm1(negative))


def activate(xp: Any, activation: str, z: Any) -> Any:
    """The hidden activation ``activation`` ("relu" or "selu") of ``z``."""
    if activation == "selu":
        return selu(xp, z)
    return xp.where(z > 0, z, xp.zeros_like(z))


def activation_grad(xp: Any, activation: str, a: Any, grad: Any) -> Any:
    """``grad * act'(z)`` from the activation's output ``a = act(z)``."""
    if activation == "selu":  # for z <= 0: scale * alpha * exp(z) = a + scale * alpha
        return grad * xp.where(a > 0, xp.full_like(a, SELU_SCALE), a + SELU_SCALE * SELU_ALPHA)
    return xp.where(a > 0, grad, xp.zeros_like(grad))


def softmax_cross_entropy(
    xp: Any, logits: Any, labels: Any, *, check_labels: bool = True, as_array: bool = False
) -> tuple[Any, Any]:
    """Mean softmax cross-entropy and its gradient with respect to the logits.

    Stable for any logits: the row maximum is subtracted before ``exp``.
    ``logits`` is ``(N, C)``; ``labels`` ``N`` integers in ``[0, C)``, checked
    (a label out of range would silently match no class) unless
    ``check_labels=False`` (for labels checked once beforehand: the check reads
    a result back to the host, which waits for a GPU). The loss is a Python
    float, or with ``as_array=True`` the 0-d array it is read from (same value,
    nothing read back: a training loop sums these on the device).

    Examples
    --------
    >>> import numpy as np
    >>> import array_api_compat.numpy as xp
    >>> loss, g = softmax_cross_entropy(xp, np.array([[1000.0, 0.0]]), np.array([0]))
    >>> loss, g.tolist()
    (0.0, [[0.0, 0.0]])
    >>> softmax_cross_entropy(xp, np.zeros((2, 3)), np.array([0, 3]))
    Traceback (most recent call last):
    ...
    ValueError: labels must be class indices in [0, 3) (logits have 3 columns), got 3 at index 1
    >>> loss, g = softmax_cross_entropy(xp, np.zeros((2, 4)), np.array([0, 3]), as_array=True)
    >>> loss.shape, round(float(loss), 6)
    ((), 1.386294)
    """
    check_labels = check_flag(check_labels, "check_labels")
    as_array = check_flag(as_array, "as_array")
    if len(logits.shape) != 2:
        raise ValueError(f"logits must be 2-d (N, classes), got shape {tuple(logits.shape)}")
    n, c = logits.shape
    if tuple(labels.shape) != (n,) or not xp.isdtype(labels.dtype, "integral"):
        raise ValueError(
            f"labels must be a 1-d integer array of the {n} rows of logits, got shape "
            f"{tuple(labels.shape)} and dtype {labels.dtype}"
        )
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    exp = xp.exp(shifted)
    total = xp.sum(exp, axis=1, keepdims=True)
    classes = xp.arange(c, device=array_api_compat.device(labels))
    hits = labels[:, None] == classes[None, :]
    if check_labels:
        _check_labels(xp, labels, hits, c)
    onehot = xp.astype(hits, logits.dtype)
    picked = xp.sum(shifted * onehot, axis=1)
    loss = xp.mean(xp.log(total[:, 0]) - picked)
    grad = (exp / total - onehot) / logits.shape[0]
    return (loss if as_array else float(loss)), grad


def _check_labels(xp: Any, labels: Any, hits: Any, classes: int) -> None:
    """Raise naming the first label that matches no class (one reduction on the labels)."""
    matched = xp.any(hits, axis=1)
    if labels.shape[0] and not bool(xp.all(matched)):
        first = int(xp.argmax(xp.astype(xp.logical_not(matched), xp.int32)))
        raise ValueError(
            f"labels must be class indices in [0, {classes}) (logits have {classes} columns), "
            f"got {int(labels[first])} at index {first}"
        )


def relu_scaled(xp: Any, z: Any, factor: float = 1.0) -> Any:
    """``relu(z) * factor`` as :func:`~dropkit.ops.relu_dropout` computes it without dropout.

    Equal to ``where(not (z <= 0), z * factor, 0)`` (the factor rounded to
    ``z``'s dtype; NaN passes, as in ``torch.relu``; ``-0.0`` becomes ``+0.0``)
    but with ``maximum`` instead of a select: on NumPy the select with an
    unpredictable condition costs about 8x more. ``maximum`` propagates NaN
    (the array API standard requires it); the sign of a zero it returns is
    unspecified, so ``+0.0`` is added last (``-0.0 + 0.0 == +0.0``, and
    ``v + 0.0 == v`` for every other ``v``). Used for the hidden layers of
    :class:`MLP` when no unit is dropped (evaluation, or ``p = 0``).

    Examples
    --------
    >>> import numpy as np
    >>> import array_api_compat.numpy as xp
    >>> relu_scaled(xp, np.array([-2.0, -0.0, 3.0, np.nan, -np.inf]), 0.5).tolist()
    [0.0, 0.0, 1.5, nan, 0.0]
    """
    dev = array_api_compat.device(z)
    zero = xp.zeros((), dtype=z.dtype, device=dev)
    h = xp.maximum(z, zero)  # a new array: the input is left as it is
    writable = array_api_compat.is_writeable_array(h)
    if factor != 1.0:  # after the ReLU, so -inf * 0 (p = 1, vanilla) is 0, not NaN
        f = xp.asarray(factor, dtype=z.dtype, device=dev)
        if writable:
            h *= f
        else:
            h = h * f
    if writable:
        h += zero
    else:
        h = h + zero
    return h


def accuracy(xp: Any, logits: Any, labels: Any) -> int:
    """Number of rows whose arg-max equals the label."""
    return int(xp.sum(xp.astype(xp.argmax(logits, axis=1) == labels, xp.int32)))
