"""Gaussian dropout and additive Gaussian noise, forward and backward, on any backend.

``gaussian_dropout(x, p)`` multiplies every unit by ``1 + sigma * z`` with
``sigma = sqrt(p / (1 - p))`` and ``z`` standard normal (Srivastava et al.
2014, section 10): the noise has Bernoulli dropout's mean 1 and variance
``p / (1 - p)``. ``gaussian_noise(x, stddev)`` adds ``stddev * z``. Both are
active in training only; ``p = 0`` or ``stddev = 0`` returns ``x`` itself and
draws nothing.

The normals come from the Philox words of one draw through Box-Muller
(:mod:`dropkit.normals`): the words are bit-identical on every backend, and
the noise is too, up to the float64 ``log``/``cos`` differences stated there
(at most 1 ULP of a float32 or float16 output where they straddle a rounding
boundary; float32 arithmetic on JAX without x64 stays within
:data:`dropkit.normals.FLOAT32_ABS_ERROR`). The backward regenerates the noise
from the same ``rng``, or takes the noise the forward returned
(``return_noise=True``).

Examples
--------
>>> import numpy as np
>>> import dropkit
>>> x = np.ones((2, 3), dtype=np.float32)
>>> y, noise = dropkit.gaussian_dropout(x, 0.5, rng=0, return_noise=True)
>>> bool(np.all(y == x * noise))
True
>>> g = dropkit.gaussian_dropout_backward(np.ones_like(x), 0.5, rng=0)   # regenerated
>>> bool(np.all(g == noise))
True
>>> z = dropkit.gaussian_noise(x, 0.1, rng=0)
>>> z.shape, z.dtype
((2, 3), dtype('float32'))
"""

from __future__ import annotations

import math
from typing import Any

from ._family import (
    MAX_ABS_NORMAL,
    check_source,
    check_stddev,
    check_stored,
    device_of,
    eval_output,
    finite_or_refuse,
    normals,
    resolve,
)
from .checks import check_flag, check_mode, check_noise_shape, check_p, finfo
from .random import RNGLike

__all__ = [
    "gaussian_dropout",
    "gaussian_dropout_backward",
    "gaussian_dropout_stddev",
    "gaussian_noise",
    "gaussian_noise_backward",
]


def gaussian_dropout_stddev(p: float) -> float:
    """The noise's standard deviation ``sqrt(p / (1 - p))`` (inverted mode).

    Examples
    --------
    >>> gaussian_dropout_stddev(0.5)
    1.0
    >>> gaussian_dropout_stddev(1.0)
    Traceback (most recent call last):
    ...
    ValueError: gaussian_dropout needs p < 1: its noise's variance p / (1 - p) is infinite at p = 1
    """
    p = check_p(p)
    if p == 1.0:
        raise ValueError(
            "gaussian_dropout needs p < 1: its noise's variance p / (1 - p) is infinite at p = 1"
        )
    return math.sqrt(p / (1.0 - p))


def _noise(
    b: Any, xp: Any, x: Any, p: float, mode: str, rng: RNGLike, shape: tuple[int, ...]
) -> Any:
    """The multiplicative noise of one draw, in ``x``'s dtype and of the noise shape."""
    sigma = gaussian_dropout_stddev(p)
    factor = 1.0 if mode == "inverted" else 1.0 - p
    finite_or_refuse(
        factor * (1.0 + sigma * MAX_ABS_NORMAL),
        x.dtype,
        finfo(xp, x.dtype),
        f"gaussian_dropout's noise at p={p!r}",
        "use a smaller p or a wider dtype (e.g. float32)",
    )
    z = normals(b, xp, x, rng, shape)
    noise = (z * sigma + 1.0) * factor if factor != 1.0 else z * sigma + 1.0
    return xp.astype(noise, x.dtype)


def gaussian_dropout(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    noise_shape: tuple[int | None, ...] | None = None,
    return_noise: bool = False,
    backend: str | None = None,
) -> Any:
    """Multiply ``x`` by Gaussian noise of mean 1 and variance ``p / (1 - p)``.

    Parameters
    ----------
    x : array
        Input with a real floating dtype, from any array-API library.
    p : float
        The equivalent drop probability, in [0, 1): the noise has the mean
        (1) and variance (``p / (1 - p)``) of inverted Bernoulli dropout's.
    rng : None, int, Generator or numpy.random.Generator, optional
        The random stream (SPEC 7); on torch tensors and JAX arrays also the
        framework's keys, as for :func:`dropkit.dropout`.
    training : bool, optional
        If False, no bits are drawn and the evaluation output is returned.
    mode : {"inverted", "vanilla"}, optional
        "inverted": noise ``1 + sigma z`` in training, ``x`` in evaluation.
        "vanilla": noise ``(1 - p)(1 + sigma z)`` (Bernoulli's unscaled mean
        ``1 - p`` and variance ``p (1 - p)``), ``x * (1 - p)`` in evaluation.
    noise_shape : tuple, optional
        Shape of the noise, broadcast against ``x`` (as in :func:`dropkit.dropout`).
    return_noise : bool, optional
        Also return the noise (of ``noise_shape``, in ``x``'s dtype).
    backend : str, optional
        Backend name; default: ``$DROPKIT_BACKEND``, else the array's library.

    Returns
    -------
    y : array
        ``x * noise``: same shape, dtype and device as ``x``; ``x`` itself when
        nothing is drawn (evaluation in inverted mode, or ``p == 0``).
    noise : array
        Only if ``return_noise`` (ones when nothing is drawn).

    Raises
    ------
    TypeError
        ``x`` not a floating array; ``p`` not a real number.
    ValueError
        ``p`` outside [0, 1) or NaN (``p = 1`` has infinite variance); a bad
        ``mode`` or ``noise_shape``; noise that could overflow ``x``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones(100_000)
    >>> y = gaussian_dropout(x, 0.2, rng=1)      # sigma = sqrt(0.2 / 0.8) = 0.5
    >>> round(float(y.mean()), 2), round(float(y.std()), 2)
    (1.0, 0.5)
    >>> gaussian_dropout(x, 0.2, training=False) is x
    True
    """
    xp, b = resolve(x, "x", backend)
    p = check_p(p)
    gaussian_dropout_stddev(p)  # refuses p = 1, in evaluation too
    mode = check_mode(mode)
    shape = check_noise_shape(noise_shape, tuple(x.shape))
    training = check_flag(training, "training")
    return_noise = check_flag(return_noise, "return_noise")
    if not training or p == 0.0:
        y = eval_output(xp, x, p, training, mode)
        if return_noise:
            ones = xp.ones(shape, dtype=x.dtype, device=device_of(x))
            return y, eval_output(xp, ones, p, training, mode)
        return y
    noise = _noise(b, xp, x, p, mode, rng, shape)
    y = x * noise
    return (y, noise) if return_noise else y


def gaussian_dropout_backward(
    grad: Any,
    p: float,
    *,
    noise: Any = None,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    noise_shape: tuple[int | None, ...] | None = None,
    backend: str | None = None,
) -> Any:
    """Gradient of :func:`gaussian_dropout`: ``grad * noise``, the noise regenerated.

    Give either the ``noise`` the forward returned, or ``rng`` in the state it
    had before the forward pass (the same int seed, or a copy of the
    generator).

    Examples
    --------
    >>> import numpy as np
    >>> from dropkit import Generator
    >>> g = Generator(3)
    >>> before = g.copy()
    >>> y = gaussian_dropout(np.ones(5), 0.3, rng=g)
    >>> bool(np.all(gaussian_dropout_backward(np.ones(5), 0.3, rng=before) == y))
    True
    """
    xp, b = resolve(grad, "grad", backend)
    p = check_p(p)
    gaussian_dropout_stddev(p)
    mode = check_mode(mode)
    shape = check_noise_shape(noise_shape, tuple(grad.shape))
    training = check_flag(training, "training")
    if not training or p == 0.0:
        return eval_output(xp, grad, p, training, mode)
    check_source(noise, rng, "gaussian_dropout", "noise")
    if noise is None:
        noise = _noise(b, xp, grad, p, mode, rng, shape)
    else:
        check_stored(xp, grad, noise, shape, "noise", boolean=False)
    return grad * noise


def gaussian_noise(
    x: Any,
    stddev: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    return_noise: bool = False,
    backend: str | None = None,
) -> Any:
    """Add zero-mean Gaussian noise of standard deviation ``stddev`` to ``x`` in training.

    Parameters
    ----------
    x : array
        Input with a real floating dtype, from any array-API library.
    stddev : float
        The noise's standard deviation: finite and >= 0.
    rng, training, backend
        As in :func:`gaussian_dropout`.
    return_noise : bool, optional
        Also return the added noise (in ``x``'s dtype; zeros when nothing is drawn).

    Returns
    -------
    y : array
        ``x + noise``; ``x`` itself in evaluation or with ``stddev == 0``.

    Raises
    ------
    TypeError
        ``x`` not a floating array; ``stddev`` not a real number.
    ValueError
        ``stddev`` negative, NaN or infinite, or so large that the noise
        could overflow ``x``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> y, noise = gaussian_noise(np.zeros(50_000), 2.0, rng=0, return_noise=True)
    >>> bool(np.all(y == noise)), round(float(y.std()), 1)
    (True, 2.0)
    >>> gaussian_noise(np.zeros(3), -1.0)
    Traceback (most recent call last):
    ...
    ValueError: stddev must be a finite number >= 0 (the noise's standard deviation), got -1.0
    """
    xp, b = resolve(x, "x", backend)
    stddev = check_stddev(stddev)
    training = check_flag(training, "training")
    return_noise = check_flag(return_noise, "return_noise")
    if not training or stddev == 0.0:
        if return_noise:
            return x, xp.zeros(tuple(x.shape), dtype=x.dtype, device=device_of(x))
        return x
    finite_or_refuse(
        stddev * MAX_ABS_NORMAL,
        x.dtype,
        finfo(xp, x.dtype),
        f"gaussian_noise with stddev={stddev!r}",
        "use a smaller stddev or a wider dtype (e.g. float32)",
    )
    z = normals(b, xp, x, rng, tuple(x.shape))
    noise = xp.astype(z * stddev, x.dtype)
    y = x + noise
    return (y, noise) if return_noise else y


def gaussian_noise_backward(
    grad: Any, stddev: float, *, training: bool = True, backend: str | None = None
) -> Any:
    """Gradient of :func:`gaussian_noise`: ``grad`` itself (additive noise has slope 1).

    Nothing is drawn or regenerated; the arguments are checked as in the forward.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.ones(3)
    >>> gaussian_noise_backward(g, 0.5) is g
    True
    """
    resolve(grad, "grad", backend)
    check_stddev(stddev)
    check_flag(training, "training")
    return grad
