"""The dropout family's layers as ``torch.nn.Module``: Gaussian, alpha, DropBlock.

Re-exported by :mod:`dropkit_torch.nn` (with the same random streams as its
``Dropout``); each layer runs the core's op of the same name.

Examples
--------
>>> import torch, dropkit
>>> layer = GaussianDropout(0.2, rng=1)
>>> bool(torch.equal(layer(torch.ones(5)), dropkit.gaussian_dropout(torch.ones(5), 0.2, rng=1)))
True
"""

from __future__ import annotations

from typing import Any

import array_api_compat.torch as xp
import torch

from dropkit import (
    alpha_dropout,
    dropblock2d,
    dropout,
    gaussian_dropout,
    gaussian_noise,
)
from dropkit.alpha import alpha_from_dropout, feature_noise_shape
from dropkit.checks import check_flag, check_stddev
from dropkit.gaussian import gaussian_dropout_stddev
from dropkit.structured import check_block_size

from .functional import SeedDraw, torch_p
from .layer import StreamLayer

__all__ = [
    "AlphaDropout",
    "DropBlock2d",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
]


class _FamilyDropout(StreamLayer):
    """A layer of the dropout family: the core op on tensors, the layer's stream as its key.

    The ops are the core's (written once against the array API); on tensors
    they are plain torch arithmetic around the registered op
    ``dropkit::philox_words``, so autograd differentiates them and
    ``torch.compile`` keeps them in one graph. Autograd keeps what the
    arithmetic needs for backward (the noise or the keep-mask), as torch's own
    layers do; only :class:`Dropout` regenerates its mask.
    """

    def __init__(self, p: float = 0.5, *, mode: str = "inverted", rng: Any = None) -> None:
        super().__init__(p, False, mode=mode, rng=rng)

    def _call(self, x: torch.Tensor, rng: SeedDraw) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The op of ``x`` in training mode, the evaluation output otherwise."""
        return self._call(x, SeedDraw(lambda: self._draw(x)))

    def extra_repr(self) -> str:
        """As :class:`Dropout`, without ``inplace`` (these layers are never in place)."""
        return super().extra_repr().replace(", inplace=False", "")


class GaussianDropout(_FamilyDropout):
    """Multiplicative Gaussian noise of mean 1, variance ``p / (1 - p)``; see :func:`dropkit.gaussian_dropout`.

    Examples
    --------
    >>> import torch, dropkit
    >>> layer = GaussianDropout(0.2, rng=1)
    >>> bool(torch.equal(layer(torch.ones(5)), dropkit.gaussian_dropout(torch.ones(5), 0.2, rng=1)))
    True
    """  # noqa: E501

    def __init__(self, p: float = 0.5, *, mode: str = "inverted", rng: Any = None) -> None:
        gaussian_dropout_stddev(torch_p(p))  # p = 1 (infinite variance) refused here
        super().__init__(p, mode=mode, rng=rng)

    def _call(self, x: torch.Tensor, rng: SeedDraw) -> torch.Tensor:
        return gaussian_dropout(x, self.p, rng=rng, training=self.training, mode=self.mode)


class GaussianNoise(_FamilyDropout):
    """Additive Gaussian noise of standard deviation ``stddev`` in training; see :func:`dropkit.gaussian_noise`.

    Examples
    --------
    >>> import torch
    >>> layer = GaussianNoise(0.1, rng=0)
    >>> bool(torch.equal(layer.eval()(torch.ones(3)), torch.ones(3)))
    True
    """  # noqa: E501

    def __init__(self, stddev: float, *, rng: Any = None) -> None:
        super().__init__(0.0, rng=rng)
        self.stddev = check_stddev(stddev)

    def _call(self, x: torch.Tensor, rng: SeedDraw) -> torch.Tensor:
        return gaussian_noise(x, self.stddev, rng=rng, training=self.training)

    def extra_repr(self) -> str:
        """``stddev`` and the stream."""
        return super().extra_repr().replace("p=0.0, mode='inverted'", f"stddev={self.stddev}")


class _Alpha(_FamilyDropout):
    """The alpha dropouts: the affine correction around dropout's custom op."""

    def __init__(self, p: float = 0.5, inplace: bool = False, *, rng: Any = None) -> None:
        super().__init__(p, rng=rng)
        self.inplace = check_flag(inplace, "inplace")

    def _call(self, x: torch.Tensor, rng: SeedDraw) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            y = alpha_dropout(x, 1.0)  # zeros (the graph kept)
        else:
            # dropout's custom op on the shifted input: the backward regenerates the mask
            noise = self._noise_shape(x)
            y = alpha_from_dropout(
                xp,
                x,
                self.p,
                lambda z: dropout(z, self.p, rng=rng, noise_shape=noise, mode="vanilla"),
            )
        if self.inplace:  # torch's inplace=True: the result written over the input
            return x.copy_(y)
        return y

    def extra_repr(self) -> str:
        """``p``, inplace and the stream (no mode: the affine correction is the op)."""
        return StreamLayer.extra_repr(self).replace(", mode='inverted'", "")


class AlphaDropout(_Alpha, torch.nn.AlphaDropout):
    """Alpha dropout for SELU networks, a ``torch.nn.AlphaDropout``; see :func:`dropkit.alpha_dropout`.

    ``AlphaDropout(p, inplace)`` positionally, as torch's; ``rng=`` a keyword.

    Examples
    --------
    >>> import torch, dropkit
    >>> layer = AlphaDropout(0.2, rng=1)
    >>> bool(torch.equal(layer(torch.ones(5)), dropkit.alpha_dropout(torch.ones(5), 0.2, rng=1)))
    True
    """  # noqa: E501


class FeatureAlphaDropout(_Alpha, torch.nn.FeatureAlphaDropout):
    """Alpha dropout of whole channels of (N, C, ...) inputs; see :func:`dropkit.feature_alpha_dropout`.

    A ``torch.nn.FeatureAlphaDropout``; axis 0 is the batch, as in torch.

    Examples
    --------
    >>> import torch
    >>> y = FeatureAlphaDropout(0.5, rng=0)(torch.ones(2, 4, 5))
    >>> bool(torch.all(y.amin(dim=2) == y.amax(dim=2)))
    True
    """  # noqa: E501

    def __init__(
        self, p: float = 0.5, inplace: bool = False, *, channel_axis: int = 1, rng: Any = None
    ) -> None:
        if isinstance(channel_axis, bool) or not isinstance(channel_axis, int) or channel_axis == 0:
            raise ValueError(
                "channel_axis must name a non-batch axis (an int other than 0), got "
                f"{channel_axis!r}"
            )
        super().__init__(p, inplace, rng=rng)
        self.channel_axis = channel_axis

    def _noise_shape(self, x: torch.Tensor) -> tuple[int, ...] | None:
        return feature_noise_shape(tuple(x.shape), self.channel_axis)

    def extra_repr(self) -> str:
        """As :class:`AlphaDropout`, with the channel axis."""
        return f"{super().extra_repr()}, channel_axis={self.channel_axis}"


class DropBlock2d(_FamilyDropout):
    """DropBlock of (N, C, H, W) inputs; see :func:`dropkit.dropblock2d`.

    Examples
    --------
    >>> import torch, dropkit
    >>> layer = DropBlock2d(0.2, block_size=3, rng=1)
    >>> x = torch.ones(2, 3, 8, 8)
    >>> bool(torch.equal(layer(x), dropkit.dropblock2d(x, 0.2, block_size=3, rng=1)))
    True
    """

    def __init__(
        self,
        p: float = 0.1,
        *,
        block_size: int,
        channel_axis: int = 1,
        mode: str = "inverted",
        rng: Any = None,
    ) -> None:
        super().__init__(p, mode=mode, rng=rng)
        self.block_size = check_block_size(block_size)
        if channel_axis not in (1, 3, -1):
            raise ValueError(
                "channel_axis must be 1 (N, C, H, W) or -1 / 3 (N, H, W, C) for DropBlock2d, "
                f"got {channel_axis!r}"
            )
        self.channel_axis = channel_axis

    def _call(self, x: torch.Tensor, rng: SeedDraw) -> torch.Tensor:
        y = dropblock2d(
            x,
            self.p,
            block_size=self.block_size,
            channel_axis=self.channel_axis,
            rng=rng,
            training=self.training,
            mode=self.mode,
        )
        if y is not x and x.dim() == 4 and _channels_last(x) and not _channels_last(y):
            return y.contiguous(memory_format=torch.channels_last)  # keep the input's layout
        return y

    def extra_repr(self) -> str:
        """As :class:`Dropout`, with the block size and the channel axis."""
        return (
            f"{super().extra_repr()}, block_size={self.block_size}, "
            f"channel_axis={self.channel_axis}"
        )


def _channels_last(x: torch.Tensor) -> bool:
    """``x`` is laid out channels-last and not also C-contiguous (a size-1 ambiguity)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
