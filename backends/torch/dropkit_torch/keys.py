"""From an ``rng=`` argument to the seed tensor of one draw.

A dropkit draw is ``(key, counter)``: a 64-bit key and a draw counter. On
torch tensors it travels as an int64 *seed tensor* of four 32-bit words
``(key_lo, key_hi, counter_lo, counter_hi)``, so ``torch.compile`` sees a
tensor (no recompilation per key) and autograd saves 32 bytes.

The mapping from torch's random state (``rng=None`` or a ``torch.Generator``)
is one draw of two words, on the generator of the tensor's device::

    w = torch.randint(0, 2**32, (2,), dtype=torch.int64, device=x.device, generator=g)
    key = int(w[0]) + 2**32 * int(w[1]);  counter = 0

So ``torch.manual_seed``, ``torch.random.fork_rng`` and activation
checkpointing (which saves and restores the RNG state) govern the masks, and a
mask drawn this way is reproducible on every other backend with
``rng=dropkit.Generator(key)``. Under ``torch.compile`` with Inductor the draw
comes from Inductor's own generator (as for ``F.dropout``): still governed by
``torch.manual_seed``, but not the eager values unless
``torch._inductor.config.fallback_random = True``.

Other ``rng=`` values: an ``int`` seed is ``(seed, 0)``; a
:class:`dropkit.Generator` gives its next draw (and advances), which a trace
cannot do: inside ``torch.compile`` it is refused with an error; a
``numpy.random.Generator`` gives a key drawn from it.

Examples
--------
>>> import torch
>>> x = torch.ones(3)
>>> seed_tensor(5, x).tolist()
[5, 0, 0, 0]
>>> _ = torch.manual_seed(0)
>>> a = seed_tensor(None, x)
>>> _ = torch.manual_seed(0)
>>> bool(torch.equal(a, seed_tensor(None, x)))
True
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch

from dropkit import Generator, as_generator
from dropkit.philox import MASK32

__all__ = [
    "TorchRNGLike",
    "draw_ints",
    "draw_words",
    "in_backward",
    "seed_from_ints",
    "seed_tensor",
]

TorchRNGLike = Any  # None | int | dropkit.Generator | numpy Generator | torch.Generator
#: The CPU device: callers on the CPU path pass this object (see :func:`draw_ints`).
CPU = torch.device("cpu")


def seed_from_ints(key: int, counter: int, device: torch.device) -> torch.Tensor:
    """The seed tensor of the draw ``(key, counter)``.

    Examples
    --------
    >>> seed_from_ints(2**32 + 1, 2, torch.device("cpu")).tolist()
    [1, 1, 2, 0]
    """
    words = [key & MASK32, key >> 32, counter & MASK32, counter >> 32]
    return torch.tensor(words, dtype=torch.int64, device=device)


def _same_device(generator_device: torch.device, device: torch.device) -> bool:
    if generator_device.type != device.type:
        return False
    if generator_device.type == "cpu":
        return True
    current = torch.cuda.current_device() if device.type == "cuda" else 0
    a = generator_device.index if generator_device.index is not None else current
    b = device.index if device.index is not None else current
    return a == b


def draw_words(device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Two 32-bit words (int64) from torch's generator for ``device``: the dropkit key."""
    return torch.randint(0, 1 << 32, (2,), dtype=torch.int64, device=device, generator=generator)


def _compiling() -> bool:
    return torch.compiler.is_compiling()


def _tracing() -> bool:
    """Whether ``torch.jit.trace`` is recording."""
    return torch._C._get_tracing_state() is not None


#: Seed tensors of int seeds, per (seed, device): an int seed is the same draw on
#: every call, so its four words are built once (at most ``_CACHE_SIZE`` kept).
_INT_SEEDS: dict[tuple[int, torch.device], torch.Tensor] = {}
_CACHE_SIZE = 256


def _eager_plain() -> bool:
    """True outside traces and torch function/dispatch modes (fake tensors, export).

    Only then may a call reuse a tensor built by an earlier one: a mode would
    see (or have built) a tensor that is not what it expects.
    """
    return not (
        _compiling()
        or torch._C._is_torch_function_mode_enabled()
        or torch._C._len_torch_dispatch_stack() > 0
        or _tracing()  # (a cached tensor is a constant there: two traces would differ)
    )


#: Per thread, the int64 buffer that :func:`draw_ints` draws torch's two CPU words into
#: (``torch.randint`` is ``empty`` then ``random_``: the same words, one allocation less).
_WORD_BUFFERS = threading.local()
#: Draws ``(key, counter)`` of int seeds (at most ``_CACHE_SIZE`` kept).
_INT_DRAWS: dict[int, tuple[int, int]] = {}


def draw_ints(rng: int | None, device: torch.device) -> tuple[int, int]:
    """The draw ``(key, counter)`` of ``rng=None`` (torch's generator) or an int seed, as ints.

    For eager calls that need no seed tensor (:func:`dropkit_torch._op.direct`):
    the same draw as :func:`seed_tensor`, without building a tensor of it
    (``rng=None`` still draws its two words from torch's generator, once).

    Examples
    --------
    >>> draw_ints(5, torch.device("cpu"))
    (5, 0)
    >>> _ = torch.manual_seed(0)
    >>> key, counter = draw_ints(None, torch.device("cpu"))
    >>> _ = torch.manual_seed(0)
    >>> seed_tensor(None, torch.ones(1)).tolist() == [key & MASK32, key >> 32, 0, 0]
    True
    """
    if rng is None:
        # randint's draw into this thread's buffer: no new tensor (CPU, compared by identity
        # first: device.type builds a string, 0.2 us alone and about 3 us within a training step)
        if device is CPU or device.type == "cpu":
            buffer = getattr(_WORD_BUFFERS, "cpu", None)
            if buffer is None:
                with torch.inference_mode(False):
                    buffer = _WORD_BUFFERS.cpu = torch.empty(2, dtype=torch.int64)
            lo, hi = buffer.random_(0, 1 << 32).tolist()
        else:
            lo, hi = draw_words(device).tolist()
        return lo | (hi << 32), 0
    drawn = _INT_DRAWS.get(rng)
    if drawn is None:
        drawn = as_generator(rng).draw()
        if len(_INT_DRAWS) >= _CACHE_SIZE:
            _INT_DRAWS.clear()
        _INT_DRAWS[rng] = drawn
    return drawn


#: The counter words ``[0, 0]`` of a draw from torch's generator, per device (eager only).
_ZERO_COUNTERS: dict[torch.device, torch.Tensor] = {}


def _zero_counter(device: torch.device) -> torch.Tensor:
    """``torch.zeros(2, int64)`` on ``device``: built once outside traces and modes."""
    if not _eager_plain():
        return torch.zeros(2, dtype=torch.int64, device=device)
    zeros = _ZERO_COUNTERS.get(device)
    if zeros is None:
        with torch.inference_mode(False):
            zeros = _ZERO_COUNTERS[device] = torch.zeros(2, dtype=torch.int64, device=device)
    return zeros


def _int_seed(seed: int, device: torch.device) -> torch.Tensor:
    """The seed tensor of the int seed ``seed`` (cached outside traces and modes)."""
    if not _eager_plain():
        key, counter = as_generator(seed).draw()
        return seed_from_ints(key, counter, device)
    cached = _INT_SEEDS.get((seed, device))
    if cached is None:
        key, counter = as_generator(seed).draw()
        with torch.inference_mode(False):  # a normal tensor: autograd may save it later
            cached = seed_from_ints(key, counter, device)
        if len(_INT_SEEDS) >= _CACHE_SIZE:
            _INT_SEEDS.clear()
        _INT_SEEDS[seed, device] = cached
    return cached


def in_backward() -> bool:
    """True while autograd runs a backward pass, eagerly.

    Activation checkpointing recomputes the forward there: a stream held in
    Python (or in a layer's buffers) would advance a second time and give the
    gradient another mask. Compiled graphs recompute from the traced values and
    do not run Python, so this is False inside ``torch.compile``.
    """
    return not _compiling() and torch._C._current_graph_task_id() != -1


def seed_tensor(rng: TorchRNGLike, x: torch.Tensor) -> torch.Tensor:
    """The seed tensor of one draw for tensor ``x`` from ``rng`` (see the module docs).

    Parameters
    ----------
    rng : None, int, dropkit.Generator, numpy.random.Generator or torch.Generator
        The random stream.
    x : torch.Tensor
        The tensor the mask is for; the seed lives on its device.

    Raises
    ------
    ValueError
        A ``torch.Generator`` on another device than ``x``.
    RuntimeError
        A :class:`dropkit.Generator` inside ``torch.compile``.
    """
    device = x.device
    if type(rng) is int:  # the common stateless case first
        return _int_seed(rng, device)
    if isinstance(rng, np.integer):
        rng = int(rng)  # a NumPy integer seed is a seed (not a stream)
    stateful = rng is not None and not (isinstance(rng, int) and not isinstance(rng, bool))
    if stateful and in_backward():
        raise RuntimeError(
            f"rng={type(rng).__name__} was drawn from during a backward pass (activation "
            "checkpointing recomputes the forward there; so may a backward hook): the "
            "generator would advance a second time and the gradient would use another mask. "
            "Use rng=None (torch's RNG state is restored for the recomputation) or an int seed"
        )
    if rng is None or isinstance(rng, torch.Generator):
        if rng is not None and _tracing():
            raise RuntimeError(
                "dropkit: rng=torch.Generator cannot be recorded by torch.jit.trace (a trace "
                "keeps no generator object: the traced function would draw from torch's "
                "default generator instead); pass rng=None, or use torch.compile / "
                "torch.export instead of tracing"
            )
        if rng is not None and not _same_device(rng.device, device):
            raise ValueError(
                f"rng is a torch.Generator on device {rng.device}, but x is on {device}; "
                "pass a generator of x's device (torch.Generator(device=x.device))"
            )
        words = draw_words(device, rng)
        return torch.cat((words, _zero_counter(device)))  # a new tensor: the zeros are only read
    if isinstance(rng, torch.Tensor):
        raise TypeError(
            "rng must be None, an int seed, a dropkit.Generator, a numpy.random.Generator "
            f"or a torch.Generator, got a tensor of shape {tuple(rng.shape)}; for a seed "
            "held in tensors use dropkit_torch.nn layers (their stream is in buffers)"
        )
    if isinstance(rng, Generator) and _compiling():
        raise RuntimeError(
            "a dropkit.Generator is Python state that torch.compile would freeze into the "
            "graph (the same mask on every call); inside compiled code pass rng=None "
            "(torch's generator), an int seed, or use a dropkit_torch.nn layer with rng= "
            "(its stream lives in buffers that the graph advances)"
        )
    if _tracing():
        raise RuntimeError(
            f"dropkit: rng={type(rng).__name__} is Python state that torch.jit.trace would "
            "freeze into the trace (the same mask on every call of the traced function); "
            "pass rng=None (torch's generator: the trace records its draw) or an int seed, "
            "or compile with torch.compile / torch.export instead of tracing"
        )
    key, counter = as_generator(rng).draw()
    return seed_from_ints(key, counter, device)
