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

import array_api_compat.torch as xp
import torch

from dropkit import (
    Generator,
    alpha_dropout,
    as_generator,
    channel_noise_shape,
    dropblock2d,
    dropout,
    gaussian_dropout,
    gaussian_noise,
)
from dropkit.alpha import alpha_from_dropout, feature_noise_shape
from dropkit.checks import check_flag, check_mode, check_stddev
from dropkit.gaussian import gaussian_dropout_stddev
from dropkit.philox import MASK32
from dropkit.structured import check_block_size, sample_noise_shape

from .functional import SeedDraw, torch_p
from .keys import in_backward, seed_tensor

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


class Dropout(torch.nn.Module):
    """Element-wise dropout; see :func:`dropkit.dropout` and the module docs.

    Parameters
    ----------
    p : float
        Probability of DROPPING each unit, in [0, 1].
    mode : {"inverted", "vanilla"}, optional
        Where the ``1 / (1 - p)`` compensation goes (training or evaluation).
    inplace : bool, optional
        Overwrite the input (not allowed on a leaf that requires grad).
    rng : None, int, dropkit.Generator, numpy.random.Generator or torch.Generator
        The random stream (see the module docs).

    Examples
    --------
    >>> import torch
    >>> layer = Dropout(0.25, rng=3)
    >>> layer(torch.ones(2, 4)).unique().tolist()
    [0.0, 1.3333333730697632]
    """

    rng_key: torch.Tensor | None
    rng_counter: torch.Tensor | None

    def __init__(
        self,
        p: float = 0.5,
        *,
        mode: str = "inverted",
        inplace: bool = False,
        rng: Any = None,
    ) -> None:
        super().__init__()
        self.p = torch_p(p)
        self.mode = check_mode(mode)
        self.inplace = check_flag(inplace, "inplace")
        self.generator: torch.Generator | None = None
        if rng is None or isinstance(rng, torch.Generator):
            self.generator = rng
            self.register_buffer("rng_key", None)
            self.register_buffer("rng_counter", None)
            return
        if isinstance(rng, torch.Tensor):
            raise TypeError(
                "rng must be None, an int seed, a dropkit.Generator, a numpy.random.Generator "
                "or a torch.Generator, got a tensor"
            )
        stream = rng.copy() if isinstance(rng, Generator) else as_generator(rng)
        self._initial_stream = (stream.key, stream.counter)
        self.register_buffer("rng_key", torch.empty(2, dtype=torch.int64))
        self.register_buffer("rng_counter", torch.empty((), dtype=torch.int64))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Rewind an explicit stream to where the layer was built (e.g. after ``to_empty``).

        Examples
        --------
        >>> import torch
        >>> layer = Dropout(0.5, rng=4)
        >>> _ = layer(torch.ones(3))
        >>> layer.reset_parameters()
        >>> int(layer.rng_counter)
        0
        """
        if self.rng_key is None or self.rng_counter is None:
            return
        key, counter = self._initial_stream
        with torch.no_grad():
            self.rng_key.copy_(torch.tensor([key & MASK32, key >> 32]))
            self.rng_counter.fill_(counter)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Check the stream before anything is copied: a refused load changes nothing.
        problem = _stream_problem(state_dict.get(prefix + "rng_key"), "rng_key")
        problem = problem or _stream_problem(state_dict.get(prefix + "rng_counter"), "rng_counter")
        if problem is not None and self.rng_key is not None:
            error_msgs.append(
                f"{type(self).__name__} ({prefix or 'this module'}): {problem}; the "
                "state_dict is not from a dropkit_torch layer, or it is corrupt"
            )
            return
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    @property
    def stream(self) -> Generator | None:
        """The layer's dropkit stream as a :class:`dropkit.Generator` (None without one)."""
        if self.rng_key is None or self.rng_counter is None:
            return None
        lo, hi = (int(v) for v in self.rng_key.tolist())
        return Generator(lo | (hi << 32), int(self.rng_counter))

    def _draw(self, x: torch.Tensor) -> torch.Tensor:
        if self.rng_key is None or self.rng_counter is None:
            return seed_tensor(self.generator, x)
        if in_backward():
            raise RuntimeError(
                f"{type(self).__name__} with an explicit rng stream was run during a backward "
                "pass (activation checkpointing recomputes the forward there; so may a backward "
                "hook): its stream would advance twice and the gradient would use another "
                "mask. Use rng=None in checkpointed regions (torch's RNG state is restored for "
                "the recomputation), or an int seed"
            )
        counter = self.rng_counter
        seed = torch.stack([self.rng_key[0], self.rng_key[1], counter & MASK32, counter >> 32])
        # Rebind, never add_ in place: a compiled graph (or autograd) may keep the old
        # counter tensor for a recomputation in backward, which must see the old value.
        self.rng_counter = counter + 1
        return seed

    def _noise_shape(self, x: torch.Tensor) -> tuple[int, ...] | None:
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout of ``x`` in training mode, the evaluation output otherwise."""
        _check_tensor(x)
        return dropout(
            x,
            self.p,
            rng=SeedDraw(lambda: self._draw(x)),
            noise_shape=self._noise_shape(x),
            training=self.training,
            mode=self.mode,
            inplace=self.inplace,
        )

    def extra_repr(self) -> str:
        """``p``, mode, inplace and the stream, as ``repr`` shows them."""
        text = f"p={self.p}, mode={self.mode!r}, inplace={self.inplace}"
        if self.rng_key is not None and self.rng_key.device.type == "meta":
            return text + ", rng=stream(on the meta device)"
        stream = self.stream
        if stream is not None:
            text += f", rng=stream(key={stream.key}, counter={stream.counter})"
        elif self.generator is not None:
            text += ", rng=torch.Generator"
        return text


def _check_tensor(x: Any) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__qualname__}")


def _stream_problem(value: Any, name: str) -> str | None:
    """What is wrong with a saved ``rng_key`` / ``rng_counter`` (None: fine or absent)."""
    if value is None:
        return None
    shape = (2,) if name == "rng_key" else ()
    what = "two 32-bit words" if name == "rng_key" else "a non-negative count below 2**63 - 1"
    if not isinstance(value, torch.Tensor) or value.dtype != torch.int64 or value.shape != shape:
        kind = (
            f"{value.dtype} tensor of shape {tuple(value.shape)}"
            if isinstance(value, torch.Tensor)
            else type(value).__name__
        )
        return f"{name} must be an int64 tensor of shape {shape} ({what}), got a {kind}"
    if value.device.type == "meta":
        return None
    limit = MASK32 if name == "rng_key" else (1 << 63) - 2
    bad = [int(v) for v in value.reshape(-1).tolist() if not 0 <= v <= limit]
    if bad:
        return f"{name} must hold {what}, got {bad[0]}"
    return None


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


class _FamilyDropout(Dropout):
    """A layer of the dropout family: the core op on tensors, the layer's stream as its key.

    The ops are the core's (written once against the array API); on tensors
    they are plain torch arithmetic around the registered op
    ``dropkit::philox_words``, so autograd differentiates them and
    ``torch.compile`` keeps them in one graph. Autograd keeps what the
    arithmetic needs for backward (the noise or the keep-mask), as torch's own
    layers do; only :class:`Dropout` regenerates its mask.
    """

    def __init__(self, p: float = 0.5, *, mode: str = "inverted", rng: Any = None) -> None:
        super().__init__(p, mode=mode, inplace=False, rng=rng)

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


class AlphaDropout(_FamilyDropout):
    """Alpha dropout for SELU networks; see :func:`dropkit.alpha_dropout`.

    Examples
    --------
    >>> import torch, dropkit
    >>> layer = AlphaDropout(0.2, rng=1)
    >>> bool(torch.equal(layer(torch.ones(5)), dropkit.alpha_dropout(torch.ones(5), 0.2, rng=1)))
    True
    """

    def __init__(self, p: float = 0.5, *, rng: Any = None) -> None:
        super().__init__(p, rng=rng)

    def _noise_shape(self, x: torch.Tensor) -> tuple[int, ...] | None:
        return None

    def _call(self, x: torch.Tensor, rng: SeedDraw) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return alpha_dropout(x, 1.0)  # zeros (the graph kept)
        # dropout's custom op on the shifted input: the backward regenerates the mask
        noise = self._noise_shape(x)
        return alpha_from_dropout(
            xp,
            x,
            self.p,
            lambda z: dropout(z, self.p, rng=rng, noise_shape=noise, mode="vanilla"),
        )

    def extra_repr(self) -> str:
        """``p`` and the stream (no mode: the affine correction is the op)."""
        return super().extra_repr().replace(", mode='inverted'", "")


class FeatureAlphaDropout(AlphaDropout):
    """Alpha dropout of whole channels of (N, C, ...) inputs; see :func:`dropkit.feature_alpha_dropout`.

    Examples
    --------
    >>> import torch
    >>> y = FeatureAlphaDropout(0.5, rng=0)(torch.ones(2, 4, 5))
    >>> bool(torch.all(y.amin(dim=2) == y.amax(dim=2)))
    True
    """  # noqa: E501

    def __init__(self, p: float = 0.5, *, channel_axis: int = 1, rng: Any = None) -> None:
        if isinstance(channel_axis, bool) or not isinstance(channel_axis, int) or channel_axis == 0:
            raise ValueError(
                "channel_axis must name a non-batch axis (an int other than 0), got "
                f"{channel_axis!r}"
            )
        super().__init__(p, rng=rng)
        self.channel_axis = channel_axis

    def _noise_shape(self, x: torch.Tensor) -> tuple[int, ...] | None:
        return feature_noise_shape(tuple(x.shape), self.channel_axis)

    def extra_repr(self) -> str:
        """As :class:`AlphaDropout`, with the channel axis."""
        return f"{super().extra_repr()}, channel_axis={self.channel_axis}"


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
        return dropblock2d(
            x,
            self.p,
            block_size=self.block_size,
            channel_axis=self.channel_axis,
            rng=rng,
            training=self.training,
            mode=self.mode,
        )

    def extra_repr(self) -> str:
        """As :class:`Dropout`, with the block size and the channel axis."""
        return (
            f"{super().extra_repr()}, block_size={self.block_size}, "
            f"channel_axis={self.channel_axis}"
        )
