"""Channel dropout: whole feature maps share one draw (dropout1d, dropout2d, dropout3d).

Examples
--------
>>> import numpy as np
>>> y, mask = dropout2d(np.ones((2, 3, 4, 4)), 0.5, rng=0, return_mask=True)
>>> mask.shape
(2, 3, 1, 1)
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Literal, Protocol, overload

from . import _core
from .checks import ReturnMask, namespace_of
from .packed import PackedMask
from .random import RNGLike

__all__ = [
    "channel_noise_shape",
    "dropout1d",
    "dropout1d_backward",
    "dropout2d",
    "dropout2d_backward",
    "dropout3d",
    "dropout3d_backward",
]

_RANK_NAMES = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def channel_noise_shape(
    shape: tuple[int, ...], spatial_dims: int, channel_axis: int = 1
) -> tuple[int, ...]:
    """Mask shape of channel dropout: whole ``(N, C)`` maps share one draw.

    Parameters
    ----------
    shape : tuple of int
        Input shape: batch axis 0, a channel axis and ``spatial_dims`` others.
    spatial_dims : {1, 2, 3}
        Number of spatial axes.
    channel_axis : int, optional
        The channel axis (1 for channels-first, -1 for channels-last).

    Examples
    --------
    >>> channel_noise_shape((8, 3, 32, 32), 2)
    (8, 3, 1, 1)
    >>> channel_noise_shape((8, 32, 32, 3), 2, channel_axis=-1)
    (8, 1, 1, 3)
    """
    ndim = spatial_dims + 2
    if len(shape) != ndim:
        hint = " (add a batch axis with x[None, ...])" if len(shape) == ndim - 1 else ""
        raise ValueError(
            f"dropout{spatial_dims}d expects a {ndim}-d input {_RANK_NAMES[spatial_dims]}, got "
            f"shape {tuple(shape)} of rank {len(shape)}{hint}; the rank is never guessed"
        )
    try:
        if isinstance(channel_axis, bool):
            raise TypeError
        channel_axis = operator.index(channel_axis)  # NumPy integers too
    except TypeError:
        raise TypeError(f"channel_axis must be an int, got {channel_axis!r}") from None
    if not -ndim <= channel_axis < ndim or channel_axis % ndim == 0:
        raise ValueError(
            f"channel_axis must name a non-batch axis of a {ndim}-d input (1..{ndim - 1} or "
            f"-{ndim - 1}..-1), got {channel_axis}"
        )
    axis = channel_axis % ndim
    return tuple(n if i in (0, axis) else 1 for i, n in enumerate(shape))


class _ChannelDropout(Protocol):
    """The type of :func:`dropout1d`, :func:`dropout2d` and :func:`dropout3d`."""

    @overload
    def __call__(
        self,
        x: Any,
        p: float,
        *,
        channel_axis: int = 1,
        rng: RNGLike = None,
        training: bool = True,
        mode: str = "inverted",
        return_mask: Literal[True],
        inplace: bool = False,
        backend: str | None = None,
    ) -> tuple[Any, Any]: ...

    @overload
    def __call__(
        self,
        x: Any,
        p: float,
        *,
        channel_axis: int = 1,
        rng: RNGLike = None,
        training: bool = True,
        mode: str = "inverted",
        return_mask: Literal["packed"],
        inplace: bool = False,
        backend: str | None = None,
    ) -> tuple[Any, PackedMask]: ...

    @overload
    def __call__(
        self,
        x: Any,
        p: float,
        *,
        channel_axis: int = 1,
        rng: RNGLike = None,
        training: bool = True,
        mode: str = "inverted",
        return_mask: ReturnMask = False,
        inplace: bool = False,
        backend: str | None = None,
    ) -> Any: ...


def _make_channel(spatial_dims: int) -> tuple[_ChannelDropout, Callable[..., Any]]:
    def forward(
        x: Any,
        p: float,
        *,
        channel_axis: int = 1,
        rng: RNGLike = None,
        training: bool = True,
        mode: str = "inverted",
        return_mask: ReturnMask = False,
        inplace: bool = False,
        backend: str | None = None,
    ) -> Any:
        if not hasattr(x, "shape"):  # (a plain check: compilers trace it)
            namespace_of(x, "x")
        return _core.forward(
            x,
            p,
            noise_shape=channel_noise_shape(tuple(x.shape), spatial_dims, channel_axis),
            rng=rng,
            training=training,
            mode=mode,
            relu=False,
            return_mask=return_mask,
            inplace=inplace,
            backend=backend,
        )

    def backward(
        grad: Any,
        p: float,
        *,
        channel_axis: int = 1,
        mask: Any = None,
        rng: RNGLike = None,
        training: bool = True,
        mode: str = "inverted",
        backend: str | None = None,
    ) -> Any:
        if not hasattr(grad, "shape"):
            namespace_of(grad, "grad")
        return _core.backward(
            grad,
            p,
            noise_shape=channel_noise_shape(tuple(grad.shape), spatial_dims, channel_axis),
            mask=mask,
            rng=rng,
            training=training,
            mode=mode,
            backend=backend,
        )

    shape = _RANK_NAMES[spatial_dims]
    forward.__name__ = forward.__qualname__ = f"dropout{spatial_dims}d"
    backward.__name__ = backward.__qualname__ = f"dropout{spatial_dims}d_backward"
    forward.__doc__ = f"""Channel dropout of a {shape} input: zero whole feature maps.

    One draw per ``(N, C)`` pair; the mask has shape ``(N, C, 1, ...)`` (with
    ``C`` at ``channel_axis``). Other arguments as in :func:`dropout`; the
    input's rank must be exactly {spatial_dims + 2}.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones({(2, 3) + (4,) * spatial_dims})
    >>> y, mask = dropout{spatial_dims}d(x, 0.5, rng=0, return_mask=True)
    >>> mask.shape
    {(2, 3) + (1,) * spatial_dims}
    """
    backward.__doc__ = f"""Gradient of :func:`dropout{spatial_dims}d`; see :func:`dropout_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.ones({(2, 3) + (4,) * spatial_dims})
    >>> bool(np.all(dropout{spatial_dims}d_backward(g, 0.5, rng=0) == dropout{spatial_dims}d(g, 0.5, rng=0)))
    True
    """  # noqa: E501
    return forward, backward


dropout1d, dropout1d_backward = _make_channel(1)
dropout2d, dropout2d_backward = _make_channel(2)
dropout3d, dropout3d_backward = _make_channel(3)
