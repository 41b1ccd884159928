"""Dropout layers as ``torch.nn.Module``: drop-in for ``nn.Dropout`` and friends.

``Dropout``, ``Dropout1d``, ``Dropout2d`` and ``Dropout3d`` follow
``module.train()`` / ``module.eval()``, go into ``nn.Sequential``, compile with
``torch.compile(..., fullgraph=True)`` and save no mask for backward (the
custom op regenerates it from a 32-byte seed). ``p`` is the DROP probability,
as in ``nn.Dropout``; channel dropout names its channel axis
(``channel_axis=1``, or ``-1`` for channels-last data) and never guesses the
rank.

Random stream (``rng=``):

- ``None`` (default): each call draws its key from torch's generator for the
  input's device (see :mod:`dropkit_torch.keys`), so ``torch.manual_seed``,
  ``fork_rng`` and activation checkpointing govern the masks, like
  ``nn.Dropout``. Nothing is added to the ``state_dict``.
- an ``int`` seed, a :class:`dropkit.Generator` (its state is copied; the
  generator itself is not advanced) or a ``numpy.random.Generator``: the layer
  owns a dropkit stream whose key and position are *buffers* (``rng_key``,
  ``rng_counter``): they move with ``.to(device)``, are saved in the
  ``state_dict`` (loading resumes the same sequence of masks), and advance
  inside compiled graphs. Activation checkpointing would re-run the forward
  and advance the stream twice, silently using another mask in backward:
  that recomputation is refused with an error (use ``rng=None`` there).
- a ``torch.Generator``: drawn from at each call (not in the ``state_dict``).

Examples
--------
>>> import torch
>>> from dropkit_torch import nn as dnn
>>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), dnn.Dropout(0.5, rng=0))
>>> model
Sequential(
  (0): Linear(in_features=8, out_features=16, bias=True)
  (1): ReLU()
  (2): Dropout(p=0.5, mode='inverted', inplace=False, rng=stream(key=0, counter=0))
)
>>> y = model(torch.ones(4, 8))
>>> int(model[2].rng_counter)
1
>>> _ = model.eval()
>>> bool(torch.equal(model[2](y), y))    # evaluation: the identity
True
"""

from __future__ import annotations

from typing import Any

import torch

from dropkit import (
    channel_noise_shape,
)
from dropkit.structured import sample_noise_shape

from .layer import Dropout
from .nn_family import (
    AlphaDropout,
    DropBlock2d,
    FeatureAlphaDropout,
    GaussianDropout,
    GaussianNoise,
)

__all__ = [
    "AlphaDropout",
    "DropBlock2d",
    "DropPath",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
]


class _ChannelDropout(Dropout):
    spatial_dims: int

    def __init__(
        self,
        p: float = 0.5,
        *,
        channel_axis: int = 1,
        mode: str = "inverted",
        inplace: bool = False,
        rng: Any = None,
    ) -> None:
        channel_noise_shape((1,) * (self.spatial_dims + 2), self.spatial_dims, channel_axis)
        super().__init__(p, mode=mode, inplace=inplace, rng=rng)
        self.channel_axis = channel_axis

    def _noise_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return channel_noise_shape(tuple(x.shape), self.spatial_dims, self.channel_axis)

    def extra_repr(self) -> str:
        """As :class:`Dropout`, with the channel axis."""
        return f"{super().extra_repr()}, channel_axis={self.channel_axis}"


class Dropout1d(_ChannelDropout):
    """Channel dropout of (N, C, L) inputs: whole channels dropped; see :func:`dropkit.dropout1d`.

    Examples
    --------
    >>> import torch
    >>> y = Dropout1d(0.5, rng=0)(torch.ones(2, 4, 5))
    >>> bool(torch.all(y.amin(dim=2) == y.amax(dim=2)))
    True
    """

    spatial_dims = 1


class Dropout2d(_ChannelDropout):
    """Channel dropout of (N, C, H, W) inputs; see :func:`dropkit.dropout2d`.

    Examples
    --------
    >>> import torch
    >>> Dropout2d(0.5, rng=0)(torch.ones(2, 4, 3, 3)).shape
    torch.Size([2, 4, 3, 3])
    """

    spatial_dims = 2


class Dropout3d(_ChannelDropout):
    """Channel dropout of (N, C, D, H, W) inputs; see :func:`dropkit.dropout3d`.

    Examples
    --------
    >>> import torch
    >>> Dropout3d(0.5, rng=0)(torch.ones(1, 2, 2, 2, 2)).shape
    torch.Size([1, 2, 2, 2, 2])
    """

    spatial_dims = 3


class DropPath(Dropout):
    """Stochastic depth: whole samples (axis 0) dropped; see :func:`dropkit.drop_path`.

    The custom op of :class:`Dropout` with the noise shape ``(N, 1, ..., 1)``:
    the mask is regenerated in backward, not saved.

    Examples
    --------
    >>> import torch
    >>> y = DropPath(0.5, rng=0)(torch.ones(6, 3))
    >>> bool(torch.all(y.amin(dim=1) == y.amax(dim=1)))
    True
    """

    def _noise_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return sample_noise_shape(tuple(x.shape))
