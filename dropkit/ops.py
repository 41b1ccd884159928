"""Dropout and ReLU-dropout, forward and backward, on any array-API namespace.

Channel dropout is in :mod:`dropkit.channel`; the decisions every op shares
(checks, modes, ``p = 0`` and ``p = 1``, masks) are made once, in the core,
which reduces the rest to one primitive (:mod:`dropkit.primitive`).

``p`` is the probability of DROPPING a unit. A unit is kept when its 32-bit
Philox word is at or above the threshold ``t = round(p * 2**32)``, so the keep
probability is exactly ``(2**32 - t) / 2**32``: ``p`` is resolved to a multiple
of ``2**-32`` (:func:`keep_probability` gives the exact value). The mask
depends only on ``(key, counter, element index)``, never on the dtype of ``x``
or the backend.

Modes
-----
``"inverted"`` (default): training output ``x * m / (1 - p)``, evaluation
output ``x``. ``"vanilla"`` (the original paper): training output ``x * m``,
evaluation output ``x * (1 - p)``. The scale is applied in ``x``'s dtype:
dropped units are exactly zero, kept units are ``x * scale`` with ``scale``
rounded to that dtype.

Examples
--------
>>> import numpy as np
>>> import dropkit
>>> x = np.ones((2, 4), dtype=np.float32)
>>> y, mask = dropkit.dropout(x, 0.5, rng=0, return_mask=True)
>>> bool(np.all(y == np.where(mask, 2.0, 0.0)))
True
>>> dx = dropkit.dropout_backward(np.ones_like(x), 0.5, rng=0)   # same seed: same mask
>>> bool(np.all(dx == y))
True
"""

from __future__ import annotations

from typing import Any, Literal, overload

from ._core import backward, forward, relu_backward, returned_mask
from .backend import default_draw
from .channel import (
    channel_noise_shape,
    dropout1d,
    dropout1d_backward,
    dropout2d,
    dropout2d_backward,
    dropout3d,
    dropout3d_backward,
)
from .checks import ReturnMask, check_p, check_shape
from .packed import PackedMask
from .primitive import keep_mask
from .random import RNGLike
from .selection import select_by_name
from .thresholds import (
    RESOLUTION_BITS,
    eval_factor,
    keep_probability,
    keep_threshold,
    train_scale,
)

__all__ = [
    "RESOLUTION_BITS",
    "channel_noise_shape",
    "dropout",
    "dropout1d",
    "dropout1d_backward",
    "dropout2d",
    "dropout2d_backward",
    "dropout3d",
    "dropout3d_backward",
    "dropout_backward",
    "dropout_mask",
    "eval_factor",
    "keep_probability",
    "keep_threshold",
    "relu_dropout",
    "relu_dropout_backward",
    "returned_mask",
    "train_scale",
]


def dropout_mask(
    shape: tuple[int, ...],
    p: float,
    *,
    rng: RNGLike = None,
    backend: str | None = None,
    device: Any = None,
) -> Any:
    """Draw a boolean keep-mask of ``shape`` (True = kept).

    The same ``rng`` state gives the same mask on every backend. Unlike
    :func:`dropout`, this always draws (p=0 and p=1 included).

    Parameters
    ----------
    shape : tuple of int, or int
        Shape of the mask: non-negative integers (NumPy integers too; an int
        is a 1-d shape).
    p : float
        Drop probability in [0, 1].
    rng : None, int, Generator or numpy.random.Generator, optional
        The random stream (SPEC 7).
    backend : str, optional
        Backend name; default: ``$DROPKIT_BACKEND`` or ``numpy``.
    device : optional
        Device of the mask.

    Examples
    --------
    >>> import numpy as np
    >>> m = dropout_mask((1000,), 0.25, rng=1)
    >>> 700 < int(np.sum(m)) < 800
    True
    """
    shape = check_shape(shape)
    p = check_p(p)
    caps = select_by_name(backend)
    return keep_mask(caps, default_draw(rng, None), shape, keep_threshold(p), device)


@overload
def dropout(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    noise_shape: tuple[int | None, ...] | None = None,
    return_mask: Literal[True],
    inplace: bool = False,
    backend: str | None = None,
) -> tuple[Any, Any]: ...


@overload
def dropout(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    noise_shape: tuple[int | None, ...] | None = None,
    return_mask: Literal["packed"],
    inplace: bool = False,
    backend: str | None = None,
) -> tuple[Any, PackedMask]: ...


@overload
def dropout(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    noise_shape: tuple[int | None, ...] | None = None,
    return_mask: ReturnMask = False,
    inplace: bool = False,
    backend: str | None = None,
) -> Any: ...


def dropout(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    noise_shape: tuple[int | None, ...] | None = None,
    return_mask: ReturnMask = False,
    inplace: bool = False,
    backend: str | None = None,
) -> Any:
    """Randomly zero elements of ``x`` with probability ``p``.

    Parameters
    ----------
    x : array
        Input with a real floating dtype, from any array-API library.
    p : float
        Probability of DROPPING each unit, in [0, 1].
    rng : None, int, Generator or numpy.random.Generator, optional
        The random stream (SPEC 7). An int seed gives the same mask each call;
        a :class:`~dropkit.Generator` advances by one draw.
    training : bool, optional
        If False, no bits are drawn and the evaluation output is returned.
    mode : {"inverted", "vanilla"}, optional
        Where the ``1 / (1 - p)`` compensation goes (see the module docs).
    noise_shape : tuple, optional
        Shape of the mask, broadcast against ``x``: each entry 1 (shared along
        that axis), None or the size of ``x`` on that axis.
    return_mask : bool or "packed", optional
        Also return the boolean keep-mask (of ``noise_shape``); ``"packed"``
        returns it as a 1-bit :class:`~dropkit.packed.PackedMask` (8x smaller).
    inplace : bool, optional
        Overwrite ``x`` with the result (not possible for immutable arrays).
    backend : str, optional
        Backend name; default: ``$DROPKIT_BACKEND``, else the array's library.

    Returns
    -------
    y : array
        Same shape, dtype and device as ``x``; ``x`` itself when nothing is
        dropped (evaluation in inverted mode, or ``p == 0``).
    mask : array of bool or PackedMask
        Only if ``return_mask``: the boolean mask for True, a
        :class:`~dropkit.packed.PackedMask` for ``"packed"``.

    Raises
    ------
    TypeError
        ``x`` is not a floating array (or is a ``numpy.matrix``), ``p`` is not
        a real number, or ``training``/``inplace`` is not a bool.
    ValueError
        ``p`` outside [0, 1] or NaN; a bad ``mode`` or ``noise_shape``; in
        training, a scale ``1 / (1 - p)`` that is not finite in ``x``'s dtype
        (float16 with ``p`` above about 0.9999847).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(1.0, 7.0).reshape(2, 3)
    >>> y = dropout(x, 0.5, rng=3)
    >>> bool(np.all((y == 0) | (y == 2 * x)))
    True
    >>> dropout(x, 0.5, training=False) is x
    True
    >>> dropout(x, 0.5, rng=3, noise_shape=(2, 1)).shape   # one draw per row
    (2, 3)
    """
    # by position (forward's order): every dropout passes here, keywords cost 0.1 us
    return forward(x, p, noise_shape, rng, training, mode, False, return_mask, inplace, backend)


def relu_dropout(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    inplace: bool = False,
    backend: str | None = None,
) -> Any:
    """``dropout(relu(x), p)`` in one pass where the backend has a fused kernel.

    The result ``h`` is all its backward needs: the gradient with respect to
    ``x`` is ``where(h > 0, grad * scale, 0)`` (see
    :func:`relu_dropout_backward`), so neither the mask nor ``x`` has to be
    kept. Same mask as :func:`dropout` for the same ``rng``. NaN is not
    positive but ReLU keeps it, as ``torch.relu`` does: a kept NaN stays NaN
    (and passes gradient), a dropped one is 0.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([-1.0, 2.0, 3.0, -4.0, 5.0, 6.0])
    >>> h = relu_dropout(x, 0.5, rng=0)
    >>> bool(np.all(h == dropout(np.maximum(x, 0), 0.5, rng=0)))
    True
    """
    return forward(
        x,
        p,
        noise_shape=None,
        rng=rng,
        training=training,
        mode=mode,
        relu=True,
        return_mask=False,
        inplace=inplace,
        backend=backend,
    )


def relu_dropout_backward(
    grad: Any,
    h: Any,
    p: float,
    *,
    training: bool = True,
    mode: str = "inverted",
    backend: str | None = None,
) -> Any:
    """Gradient of :func:`relu_dropout` from its output ``h``: no mask needed.

    A unit passes gradient iff it was kept *and* its input was positive (or
    NaN, as in ``torch.relu``), which is exactly where ``h > 0`` or ``h`` is
    NaN; there the gradient is ``grad * scale``. Exact in
    training mode and in inverted mode (the factor is >= 1). In vanilla
    evaluation the factor ``1 - p`` < 1 can underflow a positive subnormal
    input to 0, whose gradient is then lost (inputs below about
    ``tiny / (1 - p)`` of the dtype). Backends that flush subnormals to zero
    (XLA on CPU, hence JAX) lose it wherever the input or ``(1 - p)`` times
    it is subnormal, consistently with their forward pass.

    Parameters
    ----------
    grad : array
        Gradient with respect to ``h``.
    h : array
        The output of :func:`relu_dropout` (same shape as ``grad``).
    p, training, mode, backend
        As passed to :func:`relu_dropout`.

    Returns
    -------
    array
        The gradient with respect to the input of :func:`relu_dropout`.

    Raises
    ------
    ValueError
        ``grad`` and ``h`` differ in shape; ``p`` or ``mode`` is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([-1.0, 2.0, 3.0, -4.0, 5.0, 6.0])
    >>> h = relu_dropout(x, 0.5, rng=0)
    >>> g = relu_dropout_backward(np.ones(6), h, 0.5)
    >>> bool(np.all(g == np.where(x > 0, dropout_backward(np.ones(6), 0.5, rng=0), 0)))
    True
    """
    return relu_backward(grad, h, p, training=training, mode=mode, backend=backend)


def dropout_backward(
    grad: Any,
    p: float,
    *,
    mask: Any = None,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    noise_shape: tuple[int | None, ...] | None = None,
    backend: str | None = None,
) -> Any:
    """Gradient of :func:`dropout` with respect to its input.

    The result is ``grad * mask * scale``: exactly zero on every dropped unit.
    Give either the ``mask`` from the forward pass, or ``rng`` in the state it
    had *before* the forward pass (the same int seed, or a copy of the
    generator) to regenerate the mask without storing it.

    Parameters
    ----------
    grad : array
        Gradient with respect to the output.
    p, training, mode, noise_shape, backend
        As passed to the forward call.
    mask : array of bool or PackedMask, optional
        The keep-mask returned by ``dropout(..., return_mask=True)`` (or
        ``"packed"``).
    rng : int or Generator, optional
        The forward call's random stream, before it drew.

    Returns
    -------
    array
        Gradient with respect to the input.

    Examples
    --------
    >>> import numpy as np
    >>> from dropkit import Generator
    >>> g = Generator(5)
    >>> before = g.copy()
    >>> y = dropout(np.ones(6), 0.5, rng=g)
    >>> dx = dropout_backward(np.ones(6), 0.5, rng=before)
    >>> bool(np.all(dx == y))
    True
    """
    return backward(
        grad,
        p,
        noise_shape=noise_shape,
        mask=mask,
        rng=rng,
        training=training,
        mode=mode,
        backend=backend,
    )
