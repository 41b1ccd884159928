"""The torch backend's primitive and key handling: what ``dropkit.dropout`` & co. use on tensors.

The core owns the ops' semantics (validation, modes, evaluation, ``p = 0`` and
``p = 1``, returned masks, which mask a backward uses) and reduces them to two
members of this backend:

- :func:`draw`: ``rng=`` to a seed tensor (:mod:`dropkit_torch.keys`): ``None``
  draws from torch's generator for the tensor's device, a ``torch.Generator``
  is accepted, and a :class:`SeedDraw` (the layers of :mod:`dropkit_torch.nn`)
  draws from the layer's own stream;
- :func:`mask_scale`: the registered custom op ``dropkit::dropout``
  (:mod:`dropkit_torch._op`), so autograd saves no mask and ``torch.compile``
  keeps it in one graph; in place where the call allows it.

:func:`random_bits` computes the words of a draw in the registered op
``dropkit::philox_words`` (the family's draws stay in a compiled graph too).

Every ``torch.func`` transform and ``torch.autograd.forward_ad`` see the
mask: gradients, tangents and Jacobians are those of ``x * mask * scale``.
Under ``vmap``, ``vmap(f)(xs)[i]`` is ``f(xs[i])``: an explicit ``rng=``
gives every sample the mask of one call; ``rng=None`` follows ``vmap``'s
``randomness=`` (``"error"`` refuses, ``"same"`` draws once,
``"different"`` draws per sample). ``torch.jit.trace`` records the op (a
Python-side ``rng=`` is refused there). See docs/backends.md.

Examples
--------
>>> import torch, dropkit
>>> x = torch.ones(4, 3, requires_grad=True)
>>> y = dropkit.dropout(x, 0.5, rng=0)
>>> y.sum().backward()
>>> bool(torch.equal(x.grad, y.detach()))    # the same mask, regenerated
True
>>> tangent = torch.func.jvp(lambda z: dropkit.dropout(z, 0.5, rng=0), (x,), (torch.ones(4, 3),))[1]
>>> bool(torch.equal(tangent, y.detach()))    # forward mode: the same mask and scale
True
>>> xs = torch.ones(2, 4, 3)
>>> same = torch.vmap(lambda z: dropkit.dropout(z, 0.5, rng=0))(xs)
>>> bool(torch.equal(same[0], y.detach()) and torch.equal(same[1], y.detach()))
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dropkit.checks import check_p

from ._op import (
    FULL,
    compute,
    direct,
    dropout_inplace_op,
    dropout_op,
    seed_ints,
    tangents_possible,
    traced_noise_shape,
    unwatched,
    words,
)
from .keys import CPU, TorchRNGLike, draw_ints, seed_from_ints, seed_tensor

__all__ = ["SeedDraw", "draw", "mask_scale", "philox_words_op", "random_bits", "torch_p"]


def torch_p(p: Any) -> float:
    """A drop probability from a Python number or a 0-d real tensor.

    Examples
    --------
    >>> torch_p(torch.tensor(0.25))
    0.25
    """
    return check_p(p)


class SeedDraw:
    """An ``rng=`` that draws its seed tensor from ``draw()``, called only if the op draws.

    The layers of :mod:`dropkit_torch.nn` pass their own stream this way.
    """

    def __init__(self, draw: Callable[[], torch.Tensor]) -> None:
        self.draw = draw


def draw(rng: TorchRNGLike, like: torch.Tensor) -> torch.Tensor | tuple[int, int]:
    """One draw of ``rng`` for the tensor ``like`` (the backend's ``draw``).

    A seed tensor; or, where the op will run eagerly on the CPU with nothing
    watching (:func:`dropkit_torch._op.unwatched`: no compiler, functorch transform,
    mode, JIT trace or profiler), ``rng=None`` and int seeds give the same draw
    as the integers ``(key, counter)``, which the kernel (and autograd's
    formula) take without a tensor built.

    Examples
    --------
    >>> draw(5, torch.ones(3))
    (5, 0)
    >>> with torch.autograd.profiler.profile():   # watched: a seed tensor, seen by all
    ...     draw(5, torch.ones(3)).tolist()
    [5, 0, 0, 0]
    """
    if isinstance(rng, SeedDraw):
        return rng.draw()
    if (rng is None or type(rng) is int) and unwatched(like):
        # no seed tensor: the kernel takes the ints (unwatched: like is on the CPU)
        return draw_ints(rng, CPU)
    return seed_tensor(rng, like)


def _seed(draw: Any, device: torch.device) -> torch.Tensor:
    """A seed tensor from a draw: a seed tensor already, or ``(key, counter)``."""
    if isinstance(draw, torch.Tensor):
        return draw
    key, counter = draw
    return seed_from_ints(key, counter, device)


@torch.library.custom_op("dropkit::philox_words", mutates_args=())
def philox_words_op(seed: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n`` Philox words (int64 values below 2**32) of the draw in ``seed``.

    Examples
    --------
    >>> hex(int(philox_words_op(torch.tensor([0, 0, 0, 0]), 1)[0]))
    '0x6627e8d5'
    """
    key, counter = seed_ints(seed)
    return words(key, counter, n, seed.device)


@philox_words_op.register_fake
def _philox_words_fake(seed: torch.Tensor, n: int) -> torch.Tensor:
    return torch.empty(n, dtype=torch.int64, device=seed.device)


def random_bits(draw: Any, n: int, *, offset: int = 0, device: Any = None) -> torch.Tensor:
    """Philox words of elements ``offset .. offset + n - 1`` (int64 values < 2**32).

    ``draw`` is ``(key, counter)`` or a seed tensor (then in the registered op,
    on the seed's device).

    Examples
    --------
    >>> int(random_bits((0, 0), 1)[0]) == 0x6627E8D5
    True
    """
    if isinstance(draw, torch.Tensor) and offset == 0:
        return philox_words_op(draw, int(n))
    if isinstance(draw, torch.Tensor):
        key, counter = seed_ints(draw)
        device = draw.device
    else:
        key, counter = draw
    device = torch.device("cpu") if device is None else torch.device(device)
    return words(key, counter, n, device, offset=offset)


def _check_inplace(x: torch.Tensor) -> None:
    if x.is_leaf and x.requires_grad and torch.is_grad_enabled():
        raise ValueError(
            "inplace=True on a leaf tensor that requires grad: autograd needs its value; "
            "pass inplace=False (the default), or apply dropout to a non-leaf tensor"
        )


def mask_scale(
    x: torch.Tensor,
    draw: Any,
    *,
    noise_shape: tuple[int, ...],
    threshold: int,
    scale: float,
    relu: Any = False,
    out: Any = None,
) -> torch.Tensor | None:
    """The primitive as the custom op (see :class:`dropkit.MasksAndScales`); None to decline.

    Declines the backward's gate on ``h`` and calls that keep every unit
    without a draw: the core's reference (torch operations) serves them.

    Examples
    --------
    >>> y = mask_scale(torch.ones(4), (0, 0), noise_shape=(4,), threshold=2**31, scale=2.0)
    >>> y.tolist()
    [0.0, 2.0, 2.0, 2.0]
    """
    if not isinstance(relu, bool):
        return None
    if draw is None:
        if threshold < FULL:
            return None
        draw = (0, 0)  # drops all: no bits
    elif not isinstance(draw, torch.Tensor):  # (a subclass, e.g. a fake tensor, too)
        draw = tuple(draw)  # (key, counter)
    if (type(draw) is tuple or type(draw) is torch.Tensor) and direct(x):
        # eagerly, nothing recording: the op's kernel at once (nobody sees the operator
        # skipped; the draw may be two integers, never built into a tensor)
        return compute(x, draw, noise_shape, threshold, scale, relu, inplace=out is not None)
    if out is None:
        return dropout_op(x, draw, noise_shape, threshold, scale, relu)
    _check_inplace(x)
    seed = draw if type(draw) is torch.Tensor else _seed(draw, x.device)
    tracing = torch._C._get_tracing_state() is not None
    shape = traced_noise_shape(noise_shape) if tracing else [int(n) for n in noise_shape]
    if (torch.is_grad_enabled() and x.requires_grad) or tangents_possible() or tracing:
        # autograd sees the op, then the copy (which carries a tangent too; a trace
        # records the op as dropout_op records it)
        return x.copy_(dropout_op(x, seed, shape, threshold, scale, relu))
    dropout_inplace_op(x, seed, shape, threshold, scale, relu)
    return x
