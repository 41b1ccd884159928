"""Structured dropout: whole samples (drop path) and contiguous blocks (DropBlock).

``drop_path(x, p)`` (stochastic depth, Huang et al. 2016; timm's
``drop_path``) drops whole samples: one draw per index of the batch axis 0,
i.e. :func:`dropkit.dropout` with ``noise_shape=(N, 1, ..., 1)``, so it has
dropout's modes, masks and fast kernels. Applied to a residual branch
(``x + drop_path(branch(x), p)``) it skips the branch for the dropped samples.

``dropblock2d(x, p, block_size=k)`` (Ghiasi et al. 2018) drops contiguous
``k x k`` regions of each ``(sample, channel)`` map of an ``(N, C, H, W)`` input
(or ``(N, H, W, C)`` with ``channel_axis=-1``). Block positions are the
``(H - k + 1) x (W - k + 1)`` top-left corners whose block fits in the map;
each is a block's seed with probability

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

Variational (locked) dropout of sequences (Gal and Ghahramani 2016) needs no
op of its own: for ``(N, T, F)`` inputs, one mask per sequence and feature,
shared by every time step, is :func:`dropkit.dropout` with
``noise_shape=(N, 1, F)`` (or ``(None, 1, None)``); its backward is
:func:`dropkit.dropout_backward` with the same ``noise_shape``:

>>> import numpy as np
>>> import dropkit
>>> seq = np.ones((2, 5, 4))                      # (N, T, F)
>>> y = dropkit.dropout(seq, 0.5, rng=3, noise_shape=(None, 1, None))
>>> bool(np.all(y == y[:, :1, :]))                # every time step has the same mask
True

Examples
--------
>>> import numpy as np
>>> import dropkit
>>> x = np.ones((4, 3, 2))
>>> y = dropkit.drop_path(x, 0.5, rng=0)
>>> sorted({float(v) for v in y.reshape(4, -1).std(axis=1)})   # samples are all or nothing
[0.0]
>>> img = np.ones((2, 3, 16, 16), dtype=np.float32)
>>> y, keep = dropkit.dropblock2d(img, 0.2, block_size=5, rng=0, return_mask=True)
>>> bool(np.all(y[~keep] == 0)), bool(np.allclose(y.sum(), img.sum()))
(True, True)
"""

from __future__ import annotations

from typing import Any, Literal, overload

from ._family import (
    resolve,
)
from .checks import (
    ReturnMask,
)
from .dropblock import (
    check_block_size,
    dropblock2d,
    dropblock2d_backward,
    dropblock_drop_rate,
    dropblock_gamma,
)
from .ops import dropout, dropout_backward
from .packed import PackedMask
from .random import RNGLike

__all__ = [
    "check_block_size",
    "drop_path",
    "drop_path_backward",
    "dropblock2d",
    "dropblock2d_backward",
    "dropblock_drop_rate",
    "dropblock_gamma",
    "sample_noise_shape",
]


def sample_noise_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Mask shape of drop path: one draw per sample (batch axis 0).

    Examples
    --------
    >>> sample_noise_shape((8, 16, 32))
    (8, 1, 1)
    """
    if len(shape) < 1:
        raise ValueError(
            "drop_path expects an input with a batch axis (rank >= 1, samples along axis 0), "
            "got a 0-d array"
        )
    return (shape[0],) + (1,) * (len(shape) - 1)


@overload
def drop_path(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    return_mask: Literal[True],
    backend: str | None = None,
) -> tuple[Any, Any]: ...


@overload
def drop_path(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    return_mask: Literal["packed"],
    backend: str | None = None,
) -> tuple[Any, PackedMask]: ...


@overload
def drop_path(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    return_mask: ReturnMask = False,
    backend: str | None = None,
) -> Any: ...


def drop_path(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    return_mask: ReturnMask = False,
    backend: str | None = None,
) -> Any:
    """Stochastic depth: drop whole samples (along axis 0) with probability ``p``.

    Kept samples are scaled by ``1 / (1 - p)`` (inverted mode, the default);
    ``mode="vanilla"`` leaves them unscaled and scales by ``1 - p`` in
    evaluation. (timm's ``scale_by_keep=False`` is vanilla's training output
    with an unscaled evaluation output.) Everything else as
    :func:`dropkit.dropout` with ``noise_shape=(N, 1, ..., 1)``: the mask,
    for one ``rng``, equals that call's on every backend.

    Parameters
    ----------
    x : array
        Input of rank >= 1 with a real floating dtype; samples along axis 0.
    p, rng, training, mode, return_mask, backend
        As in :func:`dropkit.dropout`.

    Returns
    -------
    y : array
        ``x`` with each sample either scaled or zero.
    mask : array of bool, shape (N, 1, ..., 1)
        Only if ``return_mask``.

    Examples
    --------
    >>> import numpy as np
    >>> y, mask = drop_path(np.ones((6, 2)), 0.5, rng=1, return_mask=True)
    >>> mask.shape, bool(np.all(y == np.where(mask, 2.0, 0.0)))
    ((6, 1), True)
    """
    if not hasattr(x, "shape"):
        resolve(x, "x", backend)
    return dropout(
        x,
        p,
        rng=rng,
        training=training,
        mode=mode,
        noise_shape=sample_noise_shape(tuple(x.shape)),
        return_mask=return_mask,
        backend=backend,
    )


def drop_path_backward(
    grad: Any,
    p: float,
    *,
    mask: Any = None,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    backend: str | None = None,
) -> Any:
    """Gradient of :func:`drop_path`: exactly 0 for dropped samples; see :func:`dropout_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> g = drop_path_backward(np.ones((4, 3)), 0.5, rng=1)
    >>> bool(np.all(g == drop_path(np.ones((4, 3)), 0.5, rng=1)))
    True
    """
    if not hasattr(grad, "shape"):
        resolve(grad, "grad", backend)
    return dropout_backward(
        grad,
        p,
        mask=mask,
        rng=rng,
        training=training,
        mode=mode,
        noise_shape=sample_noise_shape(tuple(grad.shape)),
        backend=backend,
    )
