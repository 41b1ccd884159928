"""Monte Carlo dropout at inference: T stochastic passes of any model in one vectorised call.

The model is any callable ``model(xs, rng) -> logits`` that runs one
stochastic (dropout on) forward pass over ``xs`` and draws its noise from
``rng`` (a :class:`~dropkit.Generator`). ``xs`` is the input repeated T times
along a new leading axis, ``(T, *x.shape)``, so every dropout layer of the
model draws the masks of all T passes at once (pass ``t`` uses slice ``t``);
the model must accept that leading axis (matrix products do). The predictive
mean and variance over the T passes are returned. The passes draw from
``rng`` only, so MC inference does not perturb a model's training streams.

The library knows no network: the application's
:class:`~dropkit.experiment.nn.MLP` offers its passes as the public method
``mc_forward``, which these functions call when given such a net.

Examples
--------
>>> import numpy as np
>>> from dropkit import dropout, relu_dropout
>>> w = np.full((4, 3), 0.5, np.float32)
>>> def model(xs, rng):
...     return relu_dropout(xs, 0.5, rng=rng) @ w
>>> mean, var = mc_dropout_predict(model, np.ones((2, 4), np.float32), samples=50, rng=1)
>>> mean.shape, var.shape, bool(np.allclose(mean.sum(axis=1), 1))
((2, 3), (2, 3), True)

With the application's network:

>>> from dropkit import Generator, get_backend
>>> from dropkit.experiment.nn import MLP
>>> net = MLP([4, 16, 3], backend=get_backend("numpy"), rng=Generator(0), p_hidden=0.5)
>>> mean, var = mc_dropout_predict(net, np.ones((2, 4), np.float32), samples=50, rng=1)
>>> mean.shape
(2, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .checks import as_integer, namespace_of
from .random import RNGLike, as_generator

__all__ = ["mc_dropout_forward", "mc_dropout_predict"]


def _model_call(model: Any) -> Callable[[Any, Any], Any]:
    """The pass function of ``model``: the callable itself, or a net's ``mc_forward``."""
    method = getattr(model, "mc_forward", None)
    if callable(method):
        return method
    if callable(model):
        return model
    raise TypeError(
        "model must be a callable model(xs, rng) -> logits (one dropout pass over xs, noise "
        "drawn from rng) or a net with such an mc_forward method like "
        f"dropkit.experiment.nn.MLP; got {type(model).__name__}, which is neither"
    )


def _check_samples(samples: Any) -> int:
    try:
        count = as_integer(samples)
    except TypeError:
        raise TypeError(
            f"samples must be a positive int, got {samples!r} ({type(samples).__name__}); "
            "it is the number of passes"
        ) from None
    if count < 1:
        raise ValueError(f"samples must be a positive int, got {count}; it is the number of passes")
    return count


def mc_dropout_forward(model: Any, x: Any, *, samples: int, rng: RNGLike = None) -> Any:
    """Logits of ``samples`` dropout passes of ``model`` on ``x``: shape ``(T, *model's output)``.

    Parameters
    ----------
    model : callable or MLP
        ``model(xs, rng) -> logits``: one dropout pass over ``xs`` (``x``
        repeated T times along a new leading axis), noise drawn from ``rng``
        (a :class:`~dropkit.Generator`); or an object with such a method
        ``mc_forward`` (the application's :class:`~dropkit.experiment.nn.MLP`).
    x : array
        The inputs, e.g. ``(N, features)``.
    samples : int
        Number of passes T (a positive integer; NumPy integers too).
    rng : None, int, Generator or numpy.random.Generator
        Stream for the masks (an MLP spawns one child stream per dropout layer).

    Raises
    ------
    TypeError
        ``model`` is not callable and has no ``mc_forward``; ``samples`` is not
        an integer; ``x`` is not an array (or the model refuses it).
    ValueError
        ``samples < 1``; whatever the model refuses (an MLP: ``x`` not of
        shape ``(N, net.sizes[0])``).
    """
    samples = _check_samples(samples)
    call = _model_call(model)
    xp = namespace_of(x, "x")
    xs = xp.broadcast_to(x[None, ...], (samples, *x.shape))
    return call(xs, as_generator(rng))


def mc_dropout_predict(
    model: Any, x: Any, *, samples: int = 100, rng: RNGLike = None, output: str = "probabilities"
) -> tuple[Any, Any]:
    """Predictive mean and variance over ``samples`` Monte Carlo dropout passes.

    Parameters
    ----------
    model, x, samples, rng
        As in :func:`mc_dropout_forward`.
    output : {"probabilities", "logits"}
        Which output to average: softmax probabilities over the last axis
        (default) or logits.

    Returns
    -------
    mean, variance : arrays of the shape of one pass's logits, e.g. ``(N, classes)``
        Over the T passes (variance with denominator T).
    """
    if not isinstance(output, str) or output not in ("probabilities", "logits"):
        raise ValueError(f"output must be 'probabilities' or 'logits', got {output!r}")
    out = mc_dropout_forward(model, x, samples=samples, rng=rng)
    xp = namespace_of(out, "the model's output")
    if output == "probabilities":
        shifted = out - xp.max(out, axis=-1, keepdims=True)
        e = xp.exp(shifted)
        out = e / xp.sum(e, axis=-1, keepdims=True)
    return xp.mean(out, axis=0), xp.var(out, axis=0)
