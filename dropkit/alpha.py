"""Alpha dropout for self-normalising (SELU) networks, forward and backward, on any backend.

Klambauer et al. 2017: a dropped unit takes SELU's saturation value
``alpha' = -scale * alpha`` (about -1.7581) instead of 0, and the affine map
``y = a * (x * m + alpha' * (1 - m)) + b`` with ``q = 1 - p``,
``a = (q * (1 + p * alpha'**2))**-0.5`` and ``b = -a * p * alpha'`` keeps an
input of mean 0 and variance 1 at mean 0 and variance 1.

The keep-mask ``m`` is :func:`dropkit.dropout`'s for the same ``rng`` (one
Philox word per unit, kept iff it is at or above ``round(p * 2**32)``), so it
is bit-identical on every backend and for every dtype. The op is computed as
``a * dropout(x - alpha', mode="vanilla") + (a * alpha' + b)``
(:func:`alpha_from_dropout`): dropout's fused kernels and framework forms do
the random part; inside torch the backward regenerates the mask, inside JAX it
keeps it packed (1 bit per element; regenerated above 2**22 elements).
:func:`feature_alpha_dropout` shares one draw per ``(sample, channel)``.

In evaluation, or with ``p = 0``, the input comes back unchanged; with
``p = 1`` the output is 0 (the limit of the affine map as ``q -> 0``), and so
is the gradient. There is no "vanilla" mode: the affine correction is the op.

Examples
--------
>>> import numpy as np
>>> import dropkit
>>> x = np.random.default_rng(0).standard_normal(200_000)
>>> y = dropkit.alpha_dropout(x, 0.2, rng=0)
>>> round(float(y.mean()), 2), round(float(y.std()), 2)
(0.0, 1.0)
"""

from __future__ import annotations

import math
from typing import Any, Literal, overload

from ._core import returned_mask
from ._dtype_facts import overflow_bound_of
from ._family import (
    check_axis,
    check_source,
    check_stored,
    device_of,
    finite_or_refuse,
    resolve,
)
from .checks import (
    ReturnMask,
    check_flag,
    check_noise_shape,
    check_p,
    check_return_mask,
    finfo,
)
from .ops import dropout, dropout_backward
from .packed import PackedMask, unpack_mask
from .random import RNGLike

__all__ = [
    "SELU_ALPHA",
    "SELU_SATURATION",
    "SELU_SCALE",
    "alpha_coefficients",
    "alpha_dropout",
    "alpha_dropout_backward",
    "alpha_from_dropout",
    "feature_alpha_dropout",
    "feature_alpha_dropout_backward",
    "feature_noise_shape",
]

#: SELU's constants (Klambauer et al. 2017).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
#: The value a dropped unit takes before the affine correction: ``-scale * alpha``.
SELU_SATURATION = -SELU_SCALE * SELU_ALPHA


def alpha_coefficients(p: float) -> tuple[float, float]:
    """The affine correction ``(a, b)`` of alpha dropout with drop probability ``p < 1``.

    Examples
    --------
    >>> a, b = alpha_coefficients(0.1)
    >>> round(a, 6), round(b, 6)
    (0.921285, 0.161971)
    """
    p = check_p(p)
    if p == 1.0:
        raise ValueError("alpha_coefficients needs p < 1 (at p = 1 alpha dropout outputs 0)")
    q = 1.0 - p
    a = 1.0 / math.sqrt(q * (1.0 + p * SELU_SATURATION**2))
    return a, -a * p * SELU_SATURATION


def check_alpha_scale(xp: Any, dtype: Any, p: float, a: float) -> None:
    """Refuse a ``p`` whose affine scale ``a`` overflows ``dtype`` (float16 with p near 1).

    The bound is ``a * |alpha'|``: a kept input of 0 is ``a * (0 - alpha')``
    before the shift back, and the backward multiplies by ``a``. In float16 it
    overflows for ``1 - p`` below about ``2**-33``; in wider dtypes never.

    Examples
    --------
    >>> import numpy as np
    >>> import array_api_compat.numpy as xp
    >>> p = 1 - 2.0**-40
    >>> check_alpha_scale(xp, np.dtype("float16"), p, alpha_coefficients(p)[0])
    Traceback (most recent call last):
    ...
    ValueError: alpha dropout's scale a * |alpha'| at p=0.9999999999990905 can reach 911451, not finite in float16 (largest finite value 65504); use a smaller p or a wider dtype (e.g. float32)
    """  # noqa: E501
    bound = a * -SELU_SATURATION
    if bound >= overflow_bound_of(xp, dtype):
        finite_or_refuse(
            bound,
            dtype,
            finfo(xp, dtype),
            f"alpha dropout's scale a * |alpha'| at p={p!r}",
            "use a smaller p or a wider dtype (e.g. float32)",
        )


def alpha_from_dropout(xp: Any, x: Any, p: float, drop: Any) -> Any:
    """Alpha dropout of ``x`` as an affine map of a vanilla dropout of ``x - alpha'``.

    ``drop(z)`` must return ``where(m, z, 0)`` (vanilla dropout in training,
    ``p`` in (0, 1)), alone or as the first item of a tuple (its other items,
    e.g. the mask, are passed through). Then
    ``a * drop(x - alpha') + (a * alpha' + b)`` is ``a * x + b`` where kept (up
    to two roundings) and exactly ``a * alpha' + b`` where dropped. Built this
    way, alpha dropout runs on dropout's machinery: the backends' fused
    kernels, and the framework forms whose backward regenerates the mask
    (torch's custom op, JAX's ``custom_jvp``), so autograd stores no mask.

    Examples
    --------
    >>> import numpy as np
    >>> import array_api_compat.numpy as xp
    >>> from dropkit import dropout
    >>> x = np.linspace(-1, 1, 8)
    >>> y = alpha_from_dropout(xp, x, 0.5, lambda z: dropout(z, 0.5, rng=1, mode="vanilla"))
    >>> bool(np.all(y == alpha_dropout(x, 0.5, rng=1)))
    True
    """
    a, b = alpha_coefficients(p)
    dtype, device = x.dtype, device_of(x)
    check_alpha_scale(xp, dtype, p, a)
    out = drop(x - xp.asarray(SELU_SATURATION, dtype=dtype, device=device))
    d, rest = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())
    y = d * xp.asarray(a, dtype=dtype, device=device) + xp.asarray(
        a * SELU_SATURATION + b, dtype=dtype, device=device
    )
    return (y, *rest) if rest else y


def _forward(
    x: Any,
    p: Any,
    shape_of: Any,
    *,
    rng: RNGLike,
    training: bool,
    return_mask: ReturnMask,
    backend: str | None,
) -> Any:
    xp, _ = resolve(x, "x", backend)
    p = check_p(p)
    shape = shape_of(tuple(x.shape))
    training = check_flag(training, "training")
    return_mask = check_return_mask(return_mask)
    if not training or p == 0.0 or p == 1.0:
        y = x if not training or p == 0.0 else xp.zeros_like(x)
        if return_mask:
            keep = (xp.ones if y is x else xp.zeros)(shape, dtype=xp.bool, device=device_of(x))
            return y, returned_mask(keep, return_mask)
        return y
    return alpha_from_dropout(
        xp,
        x,
        p,
        lambda z: dropout(
            z,
            p,
            rng=rng,
            mode="vanilla",
            noise_shape=shape,
            return_mask=return_mask,
            backend=backend,
        ),
    )


def _backward(
    grad: Any,
    p: Any,
    shape_of: Any,
    *,
    mask: Any,
    rng: RNGLike,
    training: bool,
    backend: str | None,
    op: str,
) -> Any:
    xp, _ = resolve(grad, "grad", backend)
    p = check_p(p)
    shape = shape_of(tuple(grad.shape))
    training = check_flag(training, "training")
    if not training or p == 0.0:
        return grad
    if p == 1.0:
        return xp.zeros_like(grad)
    check_source(mask, rng, op, "mask")
    if mask is not None:
        keep = unpack_mask(mask) if isinstance(mask, PackedMask) else mask
        check_stored(xp, grad, keep, shape, "mask", boolean=True)
    a, _ = alpha_coefficients(p)
    check_alpha_scale(xp, grad.dtype, p, a)
    dx = dropout_backward(
        grad, p, mask=mask, rng=rng, mode="vanilla", noise_shape=shape, backend=backend
    )
    return dx * xp.asarray(a, dtype=grad.dtype, device=device_of(grad))


@overload
def alpha_dropout(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    noise_shape: tuple[int | None, ...] | None = None,
    return_mask: Literal[True],
    backend: str | None = None,
) -> tuple[Any, Any]: ...


@overload
def alpha_dropout(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    noise_shape: tuple[int | None, ...] | None = None,
    return_mask: Literal["packed"],
    backend: str | None = None,
) -> tuple[Any, PackedMask]: ...


@overload
def alpha_dropout(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    noise_shape: tuple[int | None, ...] | None = None,
    return_mask: ReturnMask = False,
    backend: str | None = None,
) -> Any: ...


def alpha_dropout(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    noise_shape: tuple[int | None, ...] | None = None,
    return_mask: ReturnMask = False,
    backend: str | None = None,
) -> Any:
    """Alpha dropout of ``x`` (for SELU networks): mean and variance kept at 0 and 1.

    Parameters
    ----------
    x : array
        Input with a real floating dtype, from any array-API library.
    p : float
        Probability of DROPPING each unit, in [0, 1].
    rng : None, int, Generator or numpy.random.Generator, optional
        The random stream (SPEC 7); on torch tensors and JAX arrays also the
        framework's keys, as for :func:`dropkit.dropout`.
    training : bool, optional
        If False, no bits are drawn and ``x`` is returned.
    noise_shape : tuple, optional
        Shape of the mask, broadcast against ``x`` (as in :func:`dropkit.dropout`).
    return_mask : bool or "packed", optional
        Also return the keep-mask (as :func:`dropkit.dropout` does).
    backend : str, optional
        Backend name; default: ``$DROPKIT_BACKEND``, else the array's library.

    Returns
    -------
    y : array
        ``a * x + b`` where kept, ``a * alpha' + b`` where dropped (see the
        module docs); ``x`` itself in evaluation or with ``p == 0``; zeros
        with ``p == 1``.
    mask : array of bool
        Only if ``return_mask``.

    Raises
    ------
    TypeError
        ``x`` not a floating array; ``p`` not a real number.
    ValueError
        ``p`` outside [0, 1] or NaN; a bad ``noise_shape``.

    Examples
    --------
    >>> import numpy as np
    >>> from dropkit import dropout
    >>> x = np.arange(6.0)
    >>> y, mask = alpha_dropout(x, 0.5, rng=4, return_mask=True)
    >>> bool(np.all(mask == (dropout(np.ones(6), 0.5, rng=4) > 0)))   # dropout's mask
    True
    >>> a, b = alpha_coefficients(0.5)
    >>> bool(np.allclose(y[mask], a * x[mask] + b))
    True
    """
    return _forward(
        x,
        p,
        lambda s: check_noise_shape(noise_shape, s),
        rng=rng,
        training=training,
        return_mask=return_mask,
        backend=backend,
    )


def alpha_dropout_backward(
    grad: Any,
    p: float,
    *,
    mask: Any = None,
    rng: RNGLike = None,
    training: bool = True,
    noise_shape: tuple[int | None, ...] | None = None,
    backend: str | None = None,
) -> Any:
    """Gradient of :func:`alpha_dropout`: ``a * grad`` where kept, exactly 0 where dropped.

    Give either the ``mask`` the forward returned, or ``rng`` in the state it
    had before the forward pass, to regenerate the mask.

    Examples
    --------
    >>> import numpy as np
    >>> y, mask = alpha_dropout(np.ones(8), 0.25, rng=2, return_mask=True)
    >>> g = alpha_dropout_backward(np.ones(8), 0.25, rng=2)
    >>> bool(np.all((g == 0) == ~mask))
    True
    """
    return _backward(
        grad,
        p,
        lambda s: check_noise_shape(noise_shape, s),
        mask=mask,
        rng=rng,
        training=training,
        backend=backend,
        op="alpha_dropout",
    )


def feature_noise_shape(shape: tuple[int, ...], channel_axis: int = 1) -> tuple[int, ...]:
    """Mask shape of feature (channel) dropout: one draw per ``(sample, channel)``.

    Any input of rank >= 2: batch axis 0, the channel axis named explicitly.

    Examples
    --------
    >>> feature_noise_shape((8, 3, 5, 5))
    (8, 3, 1, 1)
    >>> feature_noise_shape((8, 5, 3), channel_axis=-1)
    (8, 1, 3)
    """
    if len(shape) < 2:
        raise ValueError(
            f"feature_alpha_dropout expects an input (N, C, ...) of rank >= 2, got shape "
            f"{tuple(shape)}; add a batch axis with x[None, ...]"
        )
    axis = check_axis(channel_axis, len(shape), "channel_axis", exclude=(0,))
    return tuple(n if i in (0, axis) else 1 for i, n in enumerate(shape))


@overload
def feature_alpha_dropout(
    x: Any,
    p: float,
    *,
    channel_axis: int = 1,
    rng: RNGLike = None,
    training: bool = True,
    return_mask: Literal[True],
    backend: str | None = None,
) -> tuple[Any, Any]: ...


@overload
def feature_alpha_dropout(
    x: Any,
    p: float,
    *,
    channel_axis: int = 1,
    rng: RNGLike = None,
    training: bool = True,
    return_mask: Literal["packed"],
    backend: str | None = None,
) -> tuple[Any, PackedMask]: ...


@overload
def feature_alpha_dropout(
    x: Any,
    p: float,
    *,
    channel_axis: int = 1,
    rng: RNGLike = None,
    training: bool = True,
    return_mask: ReturnMask = False,
    backend: str | None = None,
) -> Any: ...


def feature_alpha_dropout(
    x: Any,
    p: float,
    *,
    channel_axis: int = 1,
    rng: RNGLike = None,
    training: bool = True,
    return_mask: ReturnMask = False,
    backend: str | None = None,
) -> Any:
    """Alpha dropout of whole channels: one draw per ``(sample, channel)`` of ``(N, C, ...)``.

    As :func:`alpha_dropout` with the mask of :func:`feature_noise_shape`.

    Examples
    --------
    >>> import numpy as np
    >>> y = feature_alpha_dropout(np.ones((2, 4, 3, 3)), 0.5, rng=0)
    >>> bool(np.all(y.min(axis=(2, 3)) == y.max(axis=(2, 3))))   # whole maps share a value
    True
    """
    if not hasattr(x, "shape"):
        resolve(x, "x", backend)
    return _forward(
        x,
        p,
        lambda s: feature_noise_shape(s, channel_axis),
        rng=rng,
        training=training,
        return_mask=return_mask,
        backend=backend,
    )


def feature_alpha_dropout_backward(
    grad: Any,
    p: float,
    *,
    channel_axis: int = 1,
    mask: Any = None,
    rng: RNGLike = None,
    training: bool = True,
    backend: str | None = None,
) -> Any:
    """Gradient of :func:`feature_alpha_dropout`; see :func:`alpha_dropout_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> g = feature_alpha_dropout_backward(np.ones((2, 3, 4)), 0.5, rng=1)
    >>> bool(np.all(g.min(axis=2) == g.max(axis=2)))
    True
    """
    if not hasattr(grad, "shape"):
        resolve(grad, "grad", backend)
    return _backward(
        grad,
        p,
        lambda s: feature_noise_shape(s, channel_axis),
        mask=mask,
        rng=rng,
        training=training,
        backend=backend,
        op="feature_alpha_dropout",
    )
