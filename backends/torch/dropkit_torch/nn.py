"""Dropout layers as ``torch.nn.Module``: drop-in for ``nn.Dropout`` and friends.

``Dropout``, ``Dropout1d``, ``Dropout2d`` and ``Dropout3d`` follow
``module.train()`` / ``module.eval()``, go into ``nn.Sequential``, compile with
``torch.compile(..., fullgraph=True)`` and save no mask for backward (the
custom op regenerates it from a 32-byte seed). ``p`` is the DROP probability,
as in ``nn.Dropout``; channel dropout names its channel axis
(``channel_axis=1``, or ``-1`` for channels-last data).

Drop-in for torch's layers:

- ``Dropout``, ``Dropout1d``, ``Dropout2d``, ``Dropout3d``, ``AlphaDropout``
  and ``FeatureAlphaDropout`` are subclasses of their ``torch.nn``
  counterparts (``isinstance(m, torch.nn.Dropout)`` holds), with torch's
  positional signature ``(p, inplace)``; dropkit's options are keywords. Every
  layer is a :class:`StreamLayer`.
- Input ranks as torch 2.13 takes them: ``Dropout1d`` (N, C, L) or unbatched
  (C, L); ``Dropout3d`` (N, C, D, H, W) or unbatched (C, D, H, W) (the mask
  of an unbatched input is that of ``x[None]``); ``Dropout2d`` (N, C, H, W),
  and, as ``torch.nn.Dropout2d`` does, a 3-d input as (N, C, L) with a
  warning (torch warns that it will read it as an unbatched (C, H, W) in a
  future release). Ranks torch deprecates are refused.
- A ``state_dict`` without the stream (a stock ``torch.nn.Dropout``'s is
  empty) loads under ``strict=True``: the stream restarts from the layer's
  seed (``reset_parameters``). A partial stream (one of the two buffers) is
  an error.

Random stream (``rng=``):

- ``None`` (default): each call draws its key from torch's generator for the
  input's device (see :mod:`dropkit_torch.keys`), so ``torch.manual_seed``,
  ``fork_rng`` and activation checkpointing govern the masks, like
  ``nn.Dropout``. Nothing is added to the ``state_dict``.
- an ``int`` seed, a :class:`dropkit.Generator` (its state is copied; the
  generator itself is not advanced) or a ``numpy.random.Generator``: the layer
  owns a dropkit stream whose key and position are *buffers* (``rng_key``,
  ``rng_counter``): they move with ``.to(device)`` (a call on an input of
  another device is an error), are saved in the ``state_dict`` (loading
  resumes the same sequence of masks; a counter from 2**62 up is refused
  there), and advance in place at each draw, so compiled graphs,
  ``torch.export`` programs and ``torch.func.functional_call`` advance the
  buffers they are given. Activation checkpointing would re-run the forward
  and advance the stream twice, silently using another mask in backward:
  that recomputation is refused with an error (use ``rng=None`` there).
- a ``torch.Generator``: drawn from at each call (not in the ``state_dict``).

Distributed training (DDP, FSDP2): build every rank's model with the same
seeds, then call :func:`per_rank_streams` on it: each layer's buffers stay
identical on every rank (so DDP's default ``broadcast_buffers=True`` changes
nothing, and a checkpoint saved by rank 0 resumes every rank), and each rank
draws with the key :func:`~dropkit_torch.layer.rank_key` ``(key, rank)``:
masks independent across ranks, reproducible per rank. Layers left alone draw
identical masks on every rank. Per-rank keys held in the buffers
(``rng=Generator(7).spawn(world)[rank]``) do not survive DDP's broadcast:
every rank would draw rank 0's masks.

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

import warnings
from typing import Any

import torch

from dropkit import (
    channel_noise_shape,
)
from dropkit.structured import sample_noise_shape

from .layer import Dropout, StreamLayer
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
    "StreamLayer",
    "per_rank_streams",
]

_FORMS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


class _ChannelDropout(StreamLayer):
    spatial_dims: int

    def __init__(
        self,
        p: float = 0.5,
        inplace: bool = False,
        *,
        channel_axis: int = 1,
        mode: str = "inverted",
        rng: Any = None,
    ) -> None:
        channel_noise_shape((1,) * (self.spatial_dims + 2), self.spatial_dims, channel_axis)
        super().__init__(p, inplace, mode=mode, rng=rng)
        self.channel_axis = channel_axis

    def _noise_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        shape = tuple(x.shape)
        ndim = self.spatial_dims + 2
        if len(shape) == ndim:
            return channel_noise_shape(shape, self.spatial_dims, self.channel_axis)
        if len(shape) == ndim - 1:
            return self._unbatched(shape)
        raise ValueError(
            f"{type(self).__name__} takes {self._accepted()} inputs (channel_axis="
            f"{self.channel_axis}), got shape {shape} of rank {len(shape)}; the rank is never "
            "guessed"
        )

    def _accepted(self) -> str:
        form = _FORMS[self.spatial_dims]
        return f"{form} or unbatched ({form[4:]}"

    def _unbatched(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The mask shape of an input without its batch axis: that of ``x[None]``."""
        return channel_noise_shape((1, *shape), self.spatial_dims, self.channel_axis)[1:]

    def extra_repr(self) -> str:
        """As :class:`Dropout`, with the channel axis."""
        return f"{super().extra_repr()}, channel_axis={self.channel_axis}"


class Dropout1d(_ChannelDropout, torch.nn.Dropout1d):
    """Channel dropout of (N, C, L) or unbatched (C, L) inputs; see :func:`dropkit.dropout1d`.

    A ``torch.nn.Dropout1d``: ``Dropout1d(p, inplace)`` positionally, the rest
    keywords.

    Examples
    --------
    >>> import torch
    >>> y = Dropout1d(0.5, rng=0)(torch.ones(2, 4, 5))
    >>> bool(torch.all(y.amin(dim=2) == y.amax(dim=2)))
    True
    >>> bool(torch.equal(Dropout1d(0.5, rng=0)(torch.ones(4, 5)), y[0]))   # unbatched
    True
    """

    spatial_dims = 1


class Dropout2d(_ChannelDropout, torch.nn.Dropout2d):
    """Channel dropout of (N, C, H, W) inputs; see :func:`dropkit.dropout2d`.

    A ``torch.nn.Dropout2d``. A 3-d input is read as ``torch.nn.Dropout2d``
    (torch 2.13) reads it, as (N, C, L), with a warning: use ``Dropout1d`` for
    such inputs, or ``x[None]`` for an unbatched (C, H, W) one.

    Examples
    --------
    >>> import torch
    >>> Dropout2d(0.5, rng=0)(torch.ones(2, 4, 3, 3)).shape
    torch.Size([2, 4, 3, 3])
    """

    spatial_dims = 2

    def _accepted(self) -> str:
        return "(N, C, H, W) or, as torch.nn.Dropout2d, (N, C, L)"

    def _unbatched(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if torch.compiler.is_compiling():  # (Dynamo cannot trace warnings.warn)
            return channel_noise_shape(shape, 1, self.channel_axis)
        warnings.warn(
            f"Dropout2d received a 3-d input {shape} and, as torch.nn.Dropout2d does, drops "
            "channels of an (N, C, L) input (torch says a future release will read it as an "
            "unbatched (C, H, W)); use Dropout1d for (N, C, L) inputs, or x[None] for an "
            "unbatched (C, H, W) one",
            UserWarning,
            stacklevel=6,  # the caller of module(x)
        )
        return channel_noise_shape(shape, 1, self.channel_axis)


class Dropout3d(_ChannelDropout, torch.nn.Dropout3d):
    """Channel dropout of (N, C, D, H, W) or unbatched (C, D, H, W) inputs; see :func:`dropkit.dropout3d`.

    A ``torch.nn.Dropout3d``.

    Examples
    --------
    >>> import torch
    >>> Dropout3d(0.5, rng=0)(torch.ones(1, 2, 2, 2, 2)).shape
    torch.Size([1, 2, 2, 2, 2])
    """  # noqa: E501

    spatial_dims = 3


class DropPath(StreamLayer):
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


def per_rank_streams(module: torch.nn.Module, rank: int | None = None) -> list[str]:
    """Give every stream layer of ``module`` its process's own masks (data-parallel training).

    Sets :attr:`StreamLayer.rank` on each layer of ``module`` that owns a
    stream (an int seed or a dropkit generator): it then draws with the key
    :func:`~dropkit_torch.layer.rank_key` ``(key, rank)`` at the shared
    counter. The buffers stay equal on every rank, so DDP's buffer broadcast
    and rank 0's checkpoints keep working; layers with ``rng=None`` follow
    torch's generator (seed it per rank: ``torch.manual_seed(seed + rank)``).
    Call it on every rank, before or after wrapping the model in DDP or
    ``fully_shard``; set ``layer.rank = None`` on a layer that must draw the
    same masks on every rank.

    Parameters
    ----------
    module : torch.nn.Module
        The model.
    rank : int, optional
        This process's rank; default ``torch.distributed.get_rank()``.

    Returns
    -------
    list of str
        The names of the layers given the rank.

    Raises
    ------
    ValueError
        ``rank`` is None and no process group is initialised; or, with a process
        group, the layers' streams differ between ranks (built from
        different seeds), so that DDP's broadcast would overwrite them.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), Dropout(0.5, rng=7), Dropout(0.1))
    >>> per_rank_streams(model, rank=1)
    ['1']
    >>> model[1].rank
    1
    """
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if rank is None:
        if not distributed:
            raise ValueError(
                "per_rank_streams(module) reads the rank from torch.distributed, but no "
                "process group is initialised: call torch.distributed.init_process_group "
                "first, or pass rank="
            )
        rank = torch.distributed.get_rank()
    layers = [
        (name, m)
        for name, m in module.named_modules()
        if isinstance(m, StreamLayer) and m.rng_key is not None
    ]
    if distributed:
        _check_same_streams(layers)
    for _, layer in layers:
        layer.rank = rank
    return [name for name, _ in layers]


def _check_same_streams(layers: list[tuple[str, StreamLayer]]) -> None:
    """Refuse streams that differ between the ranks (a collective: every rank calls it)."""
    mine = [(name, _buffer_ints(m.rng_key), _buffer_ints(m.rng_counter)) for name, m in layers]
    gathered: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, mine)
    for rank, theirs in enumerate(gathered):
        if theirs != gathered[0]:
            different = [a for a, b in zip(theirs, gathered[0], strict=False) if a != b]
            first = different[0][0] if different else "(the list of layers)"
            raise ValueError(
                f"per_rank_streams: the dropkit streams of rank {rank} differ from rank 0's "
                f"(first: {first!r}); DDP's buffer broadcast would overwrite them with rank 0's. "
                "Build every rank's layers with the same seeds (e.g. rng=7 on all ranks): "
                "per_rank_streams then gives each rank its own masks"
            )


def _buffer_ints(t: torch.Tensor | None) -> list[int]:
    return [] if t is None else [int(v) for v in t.reshape(-1).tolist()]
