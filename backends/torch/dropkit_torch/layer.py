"""The layers' base: :class:`StreamLayer` (a random stream) and :class:`Dropout`.

See :mod:`dropkit_torch.nn` for the streams, distributed training and the
drop-in rules.
"""

from __future__ import annotations

from typing import Any

import torch

from dropkit import (
    Generator,
    as_generator,
    dropout,
    get_backend,
)
from dropkit.checks import check_flag, check_mode
from dropkit.philox import MASK32

from .functional import SeedDraw, torch_p
from .keys import in_backward, seed_tensor

__all__ = ["COUNTER_LIMIT", "Dropout", "StreamLayer", "rank_key"]

#: A layer's ``rng_counter`` stays below this (checked where it is set: at
#: construction and when a ``state_dict`` is loaded). A draw cannot check it
#: without a device synchronisation, so the limit leaves room for 2**62 draws
#: (146 years at a billion a second) before the 2**63 of the counter's range.
COUNTER_LIMIT = 1 << 62


def rank_key(key: int, rank: int) -> int:
    """The key that rank ``rank`` of a per-rank stream draws with, for the layer key ``key``.

    ``key ^ h(rank)``, where ``h(rank)`` is the key of
    ``dropkit.Generator(rank).spawn(1)[0]`` (a Philox hash of the rank): the
    ranks' keys differ from one another and from the layer's own key, and are
    computed in two XORs per draw, in the draw's graph.

    Examples
    --------
    >>> import dropkit
    >>> rank_key(7, 1) == 7 ^ dropkit.Generator(1).spawn(1)[0].key
    True
    >>> len({rank_key(7, r) for r in range(1000)} | {7})
    1001
    """
    return key ^ _rank_hash(rank)


def _rank_hash(rank: int) -> int:
    return Generator(rank).spawn(1)[0].key


class StreamLayer(torch.nn.Module):
    """Base of dropkit's torch layers: ``p``, the mode, ``inplace`` and the random stream.

    Every layer of :mod:`dropkit_torch.nn` is one (``isinstance(m,
    StreamLayer)`` finds them in a model); those with a counterpart in
    ``torch.nn`` are also subclasses of it (``dropkit_torch.nn.Dropout`` is a
    ``torch.nn.Dropout``).

    Attributes
    ----------
    rank : int or None
        ``None`` (default): the layer draws with its stream's key. An int: the
        layer draws with the key :func:`rank_key` (stream key, rank), at the
        same counter, so the processes of a data-parallel job hold identical
        buffers (DDP's buffer broadcast changes nothing) yet draw
        independent masks. Not saved in the ``state_dict``: it belongs to the
        process, as the device does. See
        :func:`dropkit_torch.nn.per_rank_streams`.
    """

    rng_key: torch.Tensor | None
    rng_counter: torch.Tensor | None
    # class defaults too: a whole module pickled by an earlier version lacks them
    _rank: int | None = None
    _rank_words: tuple[int, int] = (0, 0)

    def __init__(
        self,
        p: float = 0.5,
        inplace: bool = False,
        *,
        mode: str = "inverted",
        rng: Any = None,
    ) -> None:
        super().__init__()
        # Load dropkit's torch backend now, eagerly: a layer may next run inside
        # torch.compile, which cannot trace the plugin registry.
        get_backend("torch")
        self.p = torch_p(p)
        self.mode = check_mode(mode)
        self.inplace = check_flag(inplace, "inplace")
        self.generator: torch.Generator | None = None
        self._rank = None
        self._rank_words = (0, 0)  # the XOR of the key words for the rank
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
        if stream.counter >= COUNTER_LIMIT:
            raise ValueError(
                f"rng: a layer's stream starts below counter 2**62, got a generator at "
                f"counter {stream.counter}; spawn a fresh generator (generator.spawn(1)[0])"
            )
        self._initial_stream = (stream.key, stream.counter)
        self.register_buffer("rng_key", torch.empty(2, dtype=torch.int64))
        self.register_buffer("rng_counter", torch.empty((), dtype=torch.int64))
        self.reset_parameters()

    @property
    def rank(self) -> int | None:
        """The process rank folded into the draws (None: not folded); see the class docs."""
        return self._rank

    @rank.setter
    def rank(self, rank: int | None) -> None:
        if rank is None:
            self._rank, self._rank_words = None, (0, 0)
            return
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
            raise ValueError(f"rank must be None or a non-negative int, got {rank!r}")
        if self._buffers.get("rng_key") is None:
            raise ValueError(
                f"{type(self).__name__} has no stream of its own (rng=None or a "
                "torch.Generator): its masks come from torch's generator, which you seed per "
                "rank (torch.manual_seed(seed + rank)); give it an int seed to fold a rank in"
            )
        h = _rank_hash(rank)
        self._rank, self._rank_words = rank, (h & MASK32, h >> 32)

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
        names = (prefix + "rng_key", prefix + "rng_counter")
        problem = _stream_problem(state_dict.get(names[0]), "rng_key")
        problem = problem or _stream_problem(state_dict.get(names[1]), "rng_counter")
        if problem is not None and self.rng_key is not None:
            error_msgs.append(
                f"{type(self).__name__} ({prefix or 'this module'}): {problem}; the "
                "state_dict is not from a dropkit_torch layer, or it is corrupt"
            )
            return
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if self.rng_key is not None and not any(name in state_dict for name in names):
            # A state_dict without a stream (torch.nn.Dropout's is empty): the stream
            # starts from the layer's seed, and nothing is missing.
            for name in names:
                if name in missing_keys:
                    missing_keys.remove(name)
            self.reset_parameters()

    @property
    def stream(self) -> Generator | None:
        """The layer's dropkit stream as a :class:`dropkit.Generator` (None without one).

        With :attr:`rank` set, the stream this process draws from (its key folded
        with the rank by :func:`rank_key`).
        """
        if self.rng_key is None or self.rng_counter is None:
            return None
        lo, hi = (int(v) for v in self.rng_key.tolist())
        key = lo | (hi << 32)
        if self._rank is not None:
            key = rank_key(key, self._rank)
        return Generator(key, int(self.rng_counter))

    def _rng(self, x: torch.Tensor) -> Any:
        """The ``rng=`` of a call on ``x``: torch's generator (or the layer's), else the stream."""
        buffers = self._buffers  # (not self.rng_key: Module.__getattr__ costs a call per name)
        if buffers.get("rng_key") is None or buffers.get("rng_counter") is None:
            return self.generator  # None or a torch.Generator: drawn as dropkit.dropout draws it
        return SeedDraw(lambda: self._draw(x))

    def _draw(self, x: torch.Tensor) -> torch.Tensor:
        buffers = self._buffers
        key, counter = buffers.get("rng_key"), buffers.get("rng_counter")
        if key is None or counter is None:
            return seed_tensor(self.generator, x)
        device = x.device
        if key.device != device or counter.device != device:
            raise _device_error(self, key.device, device)
        if counter.dtype != torch.int64 or key.dtype != torch.int64:
            raise TypeError(
                f"{type(self).__name__}'s stream buffers must be int64 (rng_key {key.dtype}, "
                f"rng_counter {counter.dtype}): assign them as saved, or load a state_dict"
            )
        if in_backward():
            raise RuntimeError(
                f"{type(self).__name__} with an explicit rng stream was run during a backward "
                "pass (activation checkpointing recomputes the forward there; so may a backward "
                "hook): its stream would advance twice and the gradient would use another "
                "mask. Use rng=None in checkpointed regions (torch's RNG state is restored for "
                "the recomputation), or an int seed"
            )
        k0, k1 = key[0], key[1]
        if self._rank is not None:
            lo, hi = self._rank_words
            k0, k1 = k0 ^ lo, k1 ^ hi
        seed = torch.stack([k0, k1, counter & MASK32, counter >> 32])
        # In place: torch.export then records the buffer as mutated and
        # torch.func.functional_call advances the caller's tensor. (The seed is a new
        # tensor: autograd and compiled graphs keep it, not the counter.)
        if torch.compiler.is_compiling():
            counter.add_(1)
            if not torch.compiler.is_exporting():
                # Also stored back, for Dynamo alone: a stored attribute is a side effect
                # it refuses inside a checkpointed region, whose recomputation in
                # backward would read the advanced counter (another mask) without it.
                self.rng_counter = counter
        elif _functorch_level() is None:
            if counter.is_inference() and not torch.is_inference_mode_enabled():
                # built under torch.inference_mode, used outside it: an inference
                # tensor cannot change there, so the buffer becomes a normal tensor
                self.rng_counter = counter + 1
            else:
                counter.add_(1)
        else:
            # Inside torch.func.grad & co. (functional_call under a transform): the
            # counter is the caller's tensor, which functorch forbids mutating; the
            # draw is outside differentiation, so the update bypasses the transform.
            with torch._C._DisableFuncTorch():
                counter.add_(1)
        return seed

    def _noise_shape(self, x: torch.Tensor) -> tuple[int, ...] | None:
        return None

    def __prepare_scriptable__(self) -> torch.nn.Module:
        """Refuse ``torch.jit.script`` (which calls this first) with what to use instead.

        The layers call dropkit's Python ops, which TorchScript cannot compile
        (it would fail deep inside, on a type annotation). ``torch.jit.trace``
        records them (see :mod:`dropkit_torch._op`); ``torch.compile`` and
        ``torch.export`` are torch's successors to both.
        """
        raise RuntimeError(
            f"dropkit_torch.nn.{type(self).__name__} cannot be compiled by torch.jit.script "
            "(it runs dropkit's Python ops, which TorchScript does not support); use "
            "torch.compile or torch.export, or record the model with torch.jit.trace"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout of ``x`` in training mode, the evaluation output otherwise."""
        if not isinstance(x, torch.Tensor):
            _check_tensor(x)  # raises
        return dropout(
            x,
            self.p,
            rng=self._rng(x),
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
        if self.rng_key is not None and self.rng_counter is not None:
            lo, hi = (int(v) for v in self.rng_key.tolist())
            text += f", rng=stream(key={lo | (hi << 32)}, counter={int(self.rng_counter)})"
            if self._rank is not None:
                text += f", rank={self._rank}"
        elif self.generator is not None:
            text += ", rng=torch.Generator"
        return text


class Dropout(StreamLayer, torch.nn.Dropout):
    """Element-wise dropout, a ``torch.nn.Dropout``; see :func:`dropkit.dropout` and the module docs.

    Parameters
    ----------
    p : float
        Probability of DROPPING each unit, in [0, 1].
    inplace : bool, optional
        Overwrite the input (not allowed on a leaf that requires grad); second
        positional argument, as in ``torch.nn.Dropout(0.1, True)``.
    mode : {"inverted", "vanilla"}, optional
        Where the ``1 / (1 - p)`` compensation goes (training or evaluation).
    rng : None, int, dropkit.Generator, numpy.random.Generator or torch.Generator
        The random stream (see the module docs).

    Examples
    --------
    >>> import torch
    >>> layer = Dropout(0.25, rng=3)
    >>> layer(torch.ones(2, 4)).unique().tolist()
    [0.0, 1.3333333730697632]
    >>> isinstance(layer, torch.nn.Dropout)
    True
    """  # noqa: E501


_functorch_level = torch._C._functorch.maybe_current_level


def _check_tensor(x: Any) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__qualname__}")


def _device_error(layer: torch.nn.Module, stream: torch.device, data: torch.device) -> Exception:
    name = type(layer).__name__
    if stream.type == "meta":
        return RuntimeError(
            f"{name}'s random stream (rng_key, rng_counter) is on the meta device, which "
            f"holds no values, but the input is on {data}: materialise the module with "
            f"module.to_empty(device={str(data)!r}) and then reset_parameters() (or "
            "load_state_dict) on its dropkit layers"
        )
    return RuntimeError(
        f"{name}'s random stream (rng_key, rng_counter) is on {stream} but the input is on "
        f"{data}: move the module to the input's device with module.to({str(data)!r})"
    )


def _stream_problem(value: Any, name: str) -> str | None:
    """What is wrong with a saved ``rng_key`` / ``rng_counter`` (None: fine or absent)."""
    if value is None:
        return None
    shape = (2,) if name == "rng_key" else ()
    what = (
        "two 32-bit words"
        if name == "rng_key"
        else "a non-negative count below 2**62 (the layer's limit; see COUNTER_LIMIT)"
    )
    if not isinstance(value, torch.Tensor) or value.dtype != torch.int64 or value.shape != shape:
        kind = (
            f"{value.dtype} tensor of shape {tuple(value.shape)}"
            if isinstance(value, torch.Tensor)
            else type(value).__name__
        )
        return f"{name} must be an int64 tensor of shape {shape} ({what}), got a {kind}"
    if value.device.type == "meta":
        return None
    limit = MASK32 if name == "rng_key" else COUNTER_LIMIT - 1
    bad = [int(v) for v in value.reshape(-1).tolist() if not 0 <= v <= limit]
    if bad:
        return f"{name} must hold {what}, got {bad[0]}"
    return None
