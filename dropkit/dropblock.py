"""DropBlock: dropping contiguous blocks of each feature map (Ghiasi et al. 2018).

``dropblock2d(x, p, block_size=k)`` drops contiguous ``k x k`` regions of each
``(sample, channel)`` map of an ``(N, C, H, W)`` input (or ``(N, H, W, C)``
with ``channel_axis=-1``). Block positions are the ``(H - k + 1) x (W - k + 1)``
top-left corners whose block fits in the map; each is a block's seed with
probability

    gamma = p * H * W / (k**2 * (H - k + 1) * (W - k + 1))

(Ghiasi's calibration, capped at 1), drawn as :func:`dropkit.dropout`'s mask
with drop probability gamma, and a unit is dropped when a seeded block
covers it. Overlapping blocks make the expected dropped fraction somewhat
below ``p``; :func:`dropblock_drop_rate` gives it exactly. In inverted mode
(the default) the kept units are scaled by ``units / kept units`` of the whole
tensor (the realised kept fraction, as in the paper and timm), so the output's
total is the input's in expectation; ``mode="vanilla"`` does not scale in
training and multiplies by ``1 - p`` in evaluation. ``block_size = 1`` is
element-wise dropout renormalised by the kept fraction.

Examples
--------
>>> import numpy as np
>>> img = np.ones((2, 3, 16, 16), dtype=np.float32)
>>> y, keep = dropblock2d(img, 0.2, block_size=5, rng=0, return_mask=True)
>>> bool(np.all(y[~keep] == 0)), bool(np.allclose(y.sum(), img.sum()))
(True, True)
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal, overload

from ._core import check_scale_of, returned_mask
from ._family import (
    check_axis,
    check_source,
    check_stored,
    device_of,
    eval_output,
    keep_mask,
    resolve,
)
from .checks import (
    ReturnMask,
    as_integer,
    check_flag,
    check_mode,
    check_p,
    check_return_mask,
    finfo,
)
from .normals import wide_float
from .packed import PackedMask, unpack_mask
from .random import RNGLike

__all__ = [
    "check_block_size",
    "dropblock2d",
    "dropblock2d_backward",
    "dropblock_drop_rate",
    "dropblock_gamma",
]


def check_block_size(block_size: Any, height: int | None = None, width: int | None = None) -> int:
    """A block side: a positive integer (odd or even), at most ``min(height, width)`` if given.

    Examples
    --------
    >>> check_block_size(7)
    7
    >>> check_block_size(5, 4, 8)
    Traceback (most recent call last):
    ...
    ValueError: block_size=5 is larger than the feature map (4 x 8): a block must fit in the map; use block_size <= 4
    """  # noqa: E501
    try:
        k = as_integer(block_size)
    except TypeError:
        raise TypeError(
            f"block_size must be a positive integer (the side of the square blocks), got "
            f"{block_size!r} ({type(block_size).__name__})"
        ) from None
    if k < 1:
        raise ValueError(
            f"block_size must be a positive integer (the side of the square blocks), got {k}"
        )
    if height is not None and width is not None and k > min(height, width):
        raise ValueError(
            f"block_size={k} is larger than the feature map ({height} x {width}): a block must "
            f"fit in the map; use block_size <= {min(height, width)}"
        )
    return k


def dropblock_gamma(p: float, block_size: int, height: int, width: int) -> float:
    """The probability that a block position seeds a block (Ghiasi's calibration, capped at 1).

    Examples
    --------
    >>> dropblock_gamma(0.1, 3, 8, 8) == 0.1 * 64 / (9 * 36)
    True
    """
    p = check_p(p)
    k = check_block_size(block_size, height, width)
    positions = (height - k + 1) * (width - k + 1)
    return min(1.0, p * height * width / (k * k * positions))


def _coverage(size: int, k: int) -> Counter[int]:
    """How many block positions cover each index of an axis of ``size`` (counted by value)."""
    return Counter(min(i, size - k) - max(0, i - k + 1) + 1 for i in range(size))


def dropblock_drop_rate(p: float, block_size: int, height: int, width: int) -> float:
    """The exact expected fraction of units :func:`dropblock2d` drops.

    A unit covered by ``c`` block positions survives with probability
    ``(1 - gamma)**c`` (positions are seeded independently); with ``gamma``
    resolved to a multiple of 2**-32 as the mask draws it.

    Examples
    --------
    >>> round(dropblock_drop_rate(0.1, 3, 8, 8), 4)     # a little below p: blocks overlap
    0.0947
    >>> abs(dropblock_drop_rate(0.1, 1, 8, 8) - 0.1) < 2**-32   # 1 x 1 blocks: dropout
    True
    """
    from .ops import keep_probability

    gamma = dropblock_gamma(p, block_size, height, width)
    keep = keep_probability(gamma)
    rows, cols = _coverage(height, block_size), _coverage(width, block_size)
    survive = sum(nr * nc * keep ** (r * c) for r, nr in rows.items() for c, nc in cols.items())
    return 1.0 - survive / (height * width)


def _spatial_axes(shape: tuple[int, ...], channel_axis: Any) -> tuple[int, int]:
    if len(shape) != 4:
        hint = " (add a batch axis with x[None, ...])" if len(shape) == 3 else ""
        raise ValueError(
            f"dropblock2d expects a 4-d input (N, C, H, W) (or (N, H, W, C) with "
            f"channel_axis=-1), got shape {tuple(shape)} of rank {len(shape)}{hint}"
        )
    axis = check_axis(channel_axis, 4, "channel_axis", exclude=(0,))
    if axis == 2:
        raise ValueError(
            "channel_axis must be 1 (N, C, H, W) or -1 / 3 (N, H, W, C) for dropblock2d, got "
            f"{channel_axis}: the two spatial axes must be adjacent"
        )
    return (2, 3) if axis == 1 else (1, 2)


def _dilate(xp: Any, seeds: Any, axis: int, k: int) -> Any:
    """OR of ``k`` shifted copies along ``axis``: each seed covers ``k`` indices from itself."""
    if k == 1:
        return seeds
    pad = list(seeds.shape)
    pad[axis] = k - 1
    zeros = xp.zeros(tuple(pad), dtype=xp.bool, device=device_of(seeds))
    padded = xp.concat([zeros, seeds, zeros], axis=axis)
    size = seeds.shape[axis] + k - 1
    out = None
    for start in range(k):
        index = [slice(None)] * len(seeds.shape)
        index[axis] = slice(start, start + size)
        piece = padded[tuple(index)]
        out = piece if out is None else xp.logical_or(out, piece)
    return out


def _block_keep(b: Any, xp: Any, x: Any, rng: RNGLike, gamma: float, k: int, axes: Any) -> Any:
    """The keep-mask (``x``'s shape) of one draw: False under every seeded block."""
    shape = list(x.shape)
    for axis in axes:
        shape[axis] -= k - 1
    if gamma >= 1.0:  # every position seeds a block: nothing is drawn
        return xp.zeros(tuple(x.shape), dtype=xp.bool, device=device_of(x))
    no_seed = keep_mask(b, xp, x, rng, tuple(shape), gamma)
    dropped = xp.logical_not(no_seed)
    for axis in axes:
        dropped = _dilate(xp, dropped, axis, k)
    return xp.logical_not(dropped)


def _apply(xp: Any, x: Any, keep: Any, mode: str) -> Any:
    zero = xp.zeros((), dtype=x.dtype)
    if mode == "vanilla":
        return xp.where(keep, x, zero)
    wide = wide_float(xp)
    counts = xp.astype(keep, xp.int64 if wide == xp.float64 else xp.int32)
    kept = xp.astype(xp.sum(counts), wide)
    total = xp.asarray(float(_size(keep)), dtype=wide, device=device_of(x))
    scale = xp.where(kept > 0, total / xp.where(kept > 0, kept, 1.0), 0.0)
    if float(finfo(xp, x.dtype).max) < 2.0**32:  # float16: the scale alone may overflow
        product = xp.astype(xp.astype(x, xp.float32) * xp.astype(scale, xp.float32), x.dtype)
        return xp.where(keep, product, zero)
    return xp.where(keep, x * xp.astype(scale, x.dtype), zero)


def _check_expected_scale(xp: Any, dtype: Any, p: float, mode: str) -> None:
    """Refuse a ``p`` whose expected scale ``1 / (1 - p)`` is not finite in ``dtype``.

    The realised scale (units / kept units) is about that: float16 with ``p``
    near 1 would fill the kept blocks with inf, which dropout refuses too.
    """
    if mode == "inverted":
        check_scale_of(xp, dtype, 1.0 / (1.0 - p), p)


def _size(a: Any) -> int:
    n = 1
    for s in a.shape:
        n *= int(s)
    return n


@overload
def dropblock2d(
    x: Any,
    p: float,
    *,
    block_size: int,
    channel_axis: int = 1,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    return_mask: Literal[True],
    backend: str | None = None,
) -> tuple[Any, Any]: ...


@overload
def dropblock2d(
    x: Any,
    p: float,
    *,
    block_size: int,
    channel_axis: int = 1,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    return_mask: Literal["packed"],
    backend: str | None = None,
) -> tuple[Any, PackedMask]: ...


@overload
def dropblock2d(
    x: Any,
    p: float,
    *,
    block_size: int,
    channel_axis: int = 1,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    return_mask: ReturnMask = False,
    backend: str | None = None,
) -> Any: ...


def dropblock2d(
    x: Any,
    p: float,
    *,
    block_size: int,
    channel_axis: int = 1,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    return_mask: ReturnMask = False,
    backend: str | None = None,
) -> Any:
    """DropBlock: drop contiguous ``block_size x block_size`` regions of each feature map.

    Parameters
    ----------
    x : array
        ``(N, C, H, W)`` input (``(N, H, W, C)`` with ``channel_axis=-1``)
        with a real floating dtype, from any array-API library.
    p : float
        The target drop probability in [0, 1] (see the module docs for the
        calibration; :func:`dropblock_drop_rate` gives the exact expected rate).
    block_size : int
        The side of the square blocks: a positive integer, odd or even, at
        most ``min(H, W)``.
    channel_axis : {1, -1}, optional
        Where the channels are.
    rng, training, backend
        As in :func:`dropkit.dropout`.
    mode : {"inverted", "vanilla"}, optional
        "inverted": kept units scaled by ``units / kept units`` (the realised
        kept fraction of the whole tensor); "vanilla": unscaled in training,
        ``x * (1 - p)`` in evaluation.
    return_mask : bool or "packed", optional
        Also return the keep-mask (of ``x``'s shape).

    Returns
    -------
    y : array
        ``x`` itself in evaluation (inverted) or with ``p == 0``; zeros with
        ``p == 1`` (or whenever every unit is dropped).
    mask : array of bool
        Only if ``return_mask``.

    Raises
    ------
    TypeError
        ``x`` not a floating array; ``block_size`` not an integer.
    ValueError
        ``x`` not 4-d; ``block_size`` < 1 or larger than the map; a bad
        ``p``, ``mode`` or ``channel_axis``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((1, 1, 6, 6))
    >>> y, keep = dropblock2d(x, 0.3, block_size=3, rng=10, return_mask=True)
    >>> print((~keep[0, 0]).astype(int))          # dropped units: whole 3 x 3 blocks
    [[0 0 0 0 0 0]
     [0 0 0 0 0 0]
     [0 0 0 1 1 1]
     [0 0 0 1 1 1]
     [0 0 0 1 1 1]
     [0 0 0 0 0 0]]
    >>> float(y.max()) == 36 / 27                 # kept units scaled by 36 / 27
    True
    """
    xp, b = resolve(x, "x", backend)
    p = check_p(p)
    mode = check_mode(mode)
    axes = _spatial_axes(tuple(x.shape), channel_axis)
    height, width = (int(x.shape[a]) for a in axes)
    k = check_block_size(block_size, height, width)
    training = check_flag(training, "training")
    return_mask = check_return_mask(return_mask)
    device = device_of(x)
    if not training or p == 0.0 or p == 1.0:
        if training and p == 1.0:
            y, keep = xp.zeros_like(x), xp.zeros(tuple(x.shape), dtype=xp.bool, device=device)
        else:
            y = eval_output(xp, x, p, training, mode)
            keep = xp.ones(tuple(x.shape), dtype=xp.bool, device=device)
        return (y, returned_mask(keep, return_mask)) if return_mask else y
    _check_expected_scale(xp, x.dtype, p, mode)
    keep = _block_keep(b, xp, x, rng, dropblock_gamma(p, k, height, width), k, axes)
    y = _apply(xp, x, keep, mode)
    return (y, returned_mask(keep, return_mask)) if return_mask else y


def dropblock2d_backward(
    grad: Any,
    p: float,
    *,
    block_size: int,
    channel_axis: int = 1,
    mask: Any = None,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    backend: str | None = None,
) -> Any:
    """Gradient of :func:`dropblock2d`: ``grad`` times the same mask and scale.

    Give either the ``mask`` the forward returned, or ``rng`` in the state it
    had before the forward pass, to regenerate it. Exactly 0 on every
    dropped unit.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.ones((2, 3, 8, 8))
    >>> dx = dropblock2d_backward(g, 0.2, block_size=3, rng=1)
    >>> bool(np.all(dx == dropblock2d(g, 0.2, block_size=3, rng=1)))
    True
    """
    xp, b = resolve(grad, "grad", backend)
    p = check_p(p)
    mode = check_mode(mode)
    axes = _spatial_axes(tuple(grad.shape), channel_axis)
    height, width = (int(grad.shape[a]) for a in axes)
    k = check_block_size(block_size, height, width)
    training = check_flag(training, "training")
    if not training or p == 0.0:
        return eval_output(xp, grad, p, training, mode)
    if p == 1.0:
        return xp.zeros_like(grad)
    check_source(mask, rng, "dropblock2d", "mask")
    _check_expected_scale(xp, grad.dtype, p, mode)
    if mask is None:
        keep = _block_keep(b, xp, grad, rng, dropblock_gamma(p, k, height, width), k, axes)
    else:
        keep = unpack_mask(mask) if isinstance(mask, PackedMask) else mask
        check_stored(xp, grad, keep, tuple(grad.shape), "mask", boolean=True)
    return _apply(xp, grad, keep, mode)
