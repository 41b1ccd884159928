"""Monte Carlo dropout at inference: T stochastic passes in one vectorised call.

The input is repeated T times along a new leading axis, and every dropout layer
draws the masks of all T passes at once (one draw over ``(T, N, width)``), so
pass ``t`` uses slice ``t`` of each draw. The predictive mean and variance over
the T passes are returned. The network's own generators are not touched: the
passes draw from ``rng``, so MC inference does not perturb training.

Examples
--------
>>> import numpy as np
>>> from dropkit import Generator, get_backend
>>> from dropkit.experiment.nn import MLP
>>> net = MLP([4, 16, 3], backend=get_backend("numpy"), rng=Generator(0), p_hidden=0.5)
>>> mean, var = mc_dropout_predict(net, np.ones((2, 4), np.float32), samples=50, rng=1)
>>> mean.shape, var.shape, bool(np.allclose(mean.sum(axis=1), 1))
((2, 3), (2, 3), True)
"""

from __future__ import annotations

from typing import Any

from ._arrays import as_integer
from .ops import dropout, relu_dropout
from .random import RNGLike, as_generator

__all__ = ["mc_dropout_forward", "mc_dropout_predict"]

#: What a network must have: the library does not import the application's
#: :class:`~dropkit.experiment.nn.MLP`, it works on anything shaped like it.
_NET_ATTRIBUTES = ("check_input", "xp", "params", "input_dropout", "hidden_dropouts", "backend")


def _check_net(net: Any) -> None:
    missing = [a for a in _NET_ATTRIBUTES if not hasattr(net, a)]
    if missing:
        raise TypeError(
            f"net must be a ReLU network with dropout layers like dropkit.experiment.nn.MLP "
            f"(attributes {', '.join(_NET_ATTRIBUTES)}), got {type(net).__name__} without "
            f"{', '.join(missing)}"
        )
    if not getattr(net, "_fused", True):
        raise ValueError(
            "Monte Carlo dropout here covers ReLU nets with standard dropout layers; this net "
            f"has activation={getattr(net, 'activation', '?')!r} or another noise layer: "
            "build it with activation='relu' and the default noise"
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


def mc_dropout_forward(net: Any, x: Any, *, samples: int, rng: RNGLike = None) -> Any:
    """Logits of ``samples`` dropout passes of ``net`` on ``x``: shape ``(T, N, classes)``.

    Parameters
    ----------
    net : MLP
        The network (its dropout probabilities and modes are used).
    x : array
        Inputs ``(N, features)``.
    samples : int
        Number of passes T (a positive integer; NumPy integers too).
    rng : None, int, Generator or numpy.random.Generator
        Stream for the masks (one child stream per dropout layer).

    Raises
    ------
    TypeError
        ``net`` lacks what an :class:`~dropkit.experiment.nn.MLP` has; ``samples`` is not an
        integer; ``x`` is not an array of the net's library and dtype.
    ValueError
        ``samples < 1``; ``x`` is not of shape ``(N, net.sizes[0])``.
    """
    samples = _check_samples(samples)
    _check_net(net)
    net.check_input(x)
    xp = net.xp
    streams = as_generator(rng).spawn(len(net.hidden_dropouts) + 1)
    h = xp.broadcast_to(x[None, ...], (samples, *x.shape))
    if net.input_dropout.p > 0:
        layer = net.input_dropout
        h = dropout(h, layer.p, rng=streams[0], mode=layer.mode, backend=net.backend.name)
    n_layers = len(net.params) // 2
    for i in range(n_layers):
        z = h @ net.params[2 * i] + net.params[2 * i + 1]
        if i == n_layers - 1:
            return z
        layer = net.hidden_dropouts[i]
        h = relu_dropout(z, layer.p, rng=streams[i + 1], mode=layer.mode, backend=net.backend.name)
    return h


def mc_dropout_predict(
    net: Any, x: Any, *, samples: int = 100, rng: RNGLike = None, output: str = "probabilities"
) -> tuple[Any, Any]:
    """Predictive mean and variance over ``samples`` Monte Carlo dropout passes.

    Parameters
    ----------
    net, x, samples, rng
        As in :func:`mc_dropout_forward`.
    output : {"probabilities", "logits"}
        Which output to average: softmax probabilities (default) or logits.

    Returns
    -------
    mean, variance : arrays of shape ``(N, classes)``
        Over the T passes (variance with denominator T).
    """
    if not isinstance(output, str) or output not in ("probabilities", "logits"):
        raise ValueError(f"output must be 'probabilities' or 'logits', got {output!r}")
    out = mc_dropout_forward(net, x, samples=samples, rng=rng)
    xp = net.xp
    if output == "probabilities":
        shifted = out - xp.max(out, axis=-1, keepdims=True)
        e = xp.exp(shifted)
        out = e / xp.sum(e, axis=-1, keepdims=True)
    return xp.mean(out, axis=0), xp.var(out, axis=0)
