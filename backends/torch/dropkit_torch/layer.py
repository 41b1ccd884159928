"""The base layer: :class:`Dropout` with its random stream (see :mod:`dropkit_torch.nn`)."""

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

__all__ = ["Dropout"]


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
        # Load dropkit's torch backend now, eagerly: a layer may next run inside
        # torch.compile, which cannot trace the plugin registry.
        get_backend("torch")
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

    def _rng(self, x: torch.Tensor) -> Any:
        """The ``rng=`` of a call on ``x``: torch's generator (or the layer's), else the stream."""
        buffers = self._buffers  # (not self.rng_key: Module.__getattr__ costs a call per name)
        if buffers.get("rng_key") is None or buffers.get("rng_counter") is None:
            return self.generator  # None or a torch.Generator: drawn as dropkit.dropout draws it
        return SeedDraw(lambda: self._draw(x))

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
        _check_tensor(x)
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
