"""Evaluating the experiment's net: accuracy and mean cross-entropy, kept on the device.

The training loop reads every number of an epoch back at once, at its end
(a GPU runs ahead of Python instead of waiting at every batch): so these
functions return 0-d arrays, not Python numbers, except :func:`evaluate`.

Examples
--------
>>> import numpy as np
>>> import dropkit
>>> from dropkit.experiment.nn import MLP
>>> net = MLP([4, 8, 3], backend=dropkit.get_backend("numpy"), rng=dropkit.Generator(0))
>>> x, y = np.ones((5, 4), np.float32), np.array([0, 1, 2, 0, 1])
>>> correct, loss_sum = scores(net, x, y)
>>> 0 <= int(correct) <= 5, float(loss_sum) > 0
(True, True)
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from ..checks import to_numpy
from .nn import MLP

__all__ = ["EVAL_BATCH", "correct_count", "evaluate", "scores"]

#: Rows per forward pass when evaluating.
EVAL_BATCH = 4096


def _batch_scores(net: MLP, x: Any, y: Any, with_loss: bool) -> tuple[Any, Any]:
    """Correct predictions and (if asked) the summed cross-entropy of one batch."""
    xp = net.xp
    logits = net.forward(x, training=False)
    hits = xp.sum(xp.astype(xp.argmax(logits, axis=1) == y, xp.int32))
    if not with_loss:
        return hits, None
    if xp.finfo(logits.dtype).bits < 32:  # a sum of float16 losses would round away digits
        logits = xp.astype(logits, xp.float32)
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    classes = xp.arange(logits.shape[1], device=array_api_compat.device(y))
    onehot = xp.astype(y[:, None] == classes[None, :], logits.dtype)
    picked = xp.sum(shifted * onehot, axis=1)
    return hits, xp.sum(xp.log(xp.sum(xp.exp(shifted), axis=1)) - picked)


def scores(net: MLP, x: Any, y: Any, batch: int = EVAL_BATCH) -> tuple[Any, Any]:
    """How many rows ``net`` (evaluation mode) classifies right, and the summed cross-entropy.

    Both are 0-d arrays of ``net``'s namespace, not read back; the loss sum is
    in the logits' dtype (float32 for float16 nets). Divide by ``x.shape[0]``
    for the accuracy and the mean loss. No rows: ``(0, 0.0)``.
    """
    return _scores(net, x, y, batch, with_loss=True)


def correct_count(net: MLP, x: Any, y: Any, batch: int = EVAL_BATCH) -> Any:
    """How many rows of ``x`` ``net`` classifies right: a 0-d integer array, not read back."""
    return _scores(net, x, y, batch, with_loss=False)[0]


def _scores(net: MLP, x: Any, y: Any, batch: int, with_loss: bool) -> tuple[Any, Any]:
    xp = net.xp
    correct = loss = None
    n = x.shape[0]
    for start in range(0, n, batch):
        stop = min(start + batch, n)  # (a strict namespace refuses slices past the end)
        hits, part = _batch_scores(net, x[start:stop, ...], y[start:stop], with_loss)
        correct = hits if correct is None else correct + hits
        loss = part if loss is None else loss + part
    if correct is None:  # no rows
        correct = xp.zeros((), dtype=xp.int32)
        loss = xp.zeros((), dtype=xp.float32) if with_loss else None
    return correct, loss


def evaluate(net: MLP, x: Any, y: Any, batch: int = EVAL_BATCH) -> float:
    """Accuracy of ``net`` (evaluation mode) on ``x``, ``y``, in batches."""
    return int(to_numpy(correct_count(net, x, y, batch))) / x.shape[0]
