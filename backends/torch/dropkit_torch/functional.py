"""The ops in PyTorch's own form: what ``dropkit.dropout`` & co. run on tensors.

``dropkit.dropout``, ``dropout1d/2d/3d``, ``relu_dropout`` and their
backwards route torch tensors here (through the backend's ``dropout_native``
hooks). The semantics are the core's (``p`` is the DROP probability, inverted
or vanilla mode, exact zeros, the same mask as every other backend for one
dropkit key); what changes is the machinery:

- the random part is the registered custom op ``dropkit::dropout``
  (:mod:`dropkit_torch._op`), so autograd saves no mask and ``torch.compile``
  keeps it in one graph;
- ``rng=None`` draws the key from torch's generator for the tensor's device,
  and a ``torch.Generator`` is accepted (:mod:`dropkit_torch.keys`);
- ``p = 1`` keeps the graph (zeros flow back), evaluation returns ``x`` itself,
  the output has ``x``'s layout (``channels_last`` stays ``channels_last``);
- ``p`` may be a 0-d real tensor (read once with ``float``; pass a Python float
  inside ``torch.compile``: the graph specialises on ``p``, like ``F.dropout``).

Importing this module registers the torch backend with the core, so that the
ops resolve without the plugin registry (which ``torch.compile`` cannot trace).

Examples
--------
>>> import torch, dropkit
>>> x = torch.ones(4, 3, requires_grad=True)
>>> y = dropkit.dropout(x, 0.5, rng=0)
>>> y.sum().backward()
>>> bool(torch.equal(x.grad, y.detach()))    # the same mask, regenerated
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dropkit import keep_threshold, unpack_mask
from dropkit._arrays import (
    ReturnMask,
    check_flag,
    check_mode,
    check_noise_shape,
    check_p,
    check_return_mask,
    check_scale,
)
from dropkit.ops import (
    check_backward_source,
    eval_factor,
    relu_backward_factor,
    returned_mask,
    train_scale,
)
from dropkit.packed import PackedMask

from ._op import FULL, dropout_inplace_op, dropout_op, keep_mask_op, seed_ints, words
from .keys import TorchRNGLike, seed_tensor

__all__ = [
    "SeedDraw",
    "check_tensor",
    "dropout",
    "dropout_backward",
    "dropout_with",
    "family_bits",
    "philox_words_op",
    "relu_dropout_backward",
    "torch_p",
]


def check_tensor(x: Any, name: str) -> torch.Tensor:
    """Raise TypeError unless ``x`` is a tensor of a real floating dtype."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__qualname__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must have a real floating dtype (float16, bfloat16, float32, float64), "
            f"got {x.dtype}; convert it first, e.g. {name}.float()"
        )
    return x


def torch_p(p: Any) -> float:
    """A drop probability from a Python number or a 0-d real tensor.

    Examples
    --------
    >>> torch_p(torch.tensor(0.25))
    0.25
    >>> torch_p(torch.tensor([0.5]))
    Traceback (most recent call last):
    ...
    TypeError: p must be a real number in [0, 1] or a 0-d real tensor, got a tensor of shape (1,) and dtype torch.float32
    """  # noqa: E501
    if isinstance(p, torch.Tensor):
        if p.ndim != 0 or p.is_complex() or p.dtype == torch.bool:
            raise TypeError(
                "p must be a real number in [0, 1] or a 0-d real tensor, got a tensor of "
                f"shape {tuple(p.shape)} and dtype {p.dtype}"
            )
        p = float(p.detach())
    return check_p(p)


def _check_same_kind(first: torch.Tensor, other: Any, names: tuple[str, str]) -> None:
    """Plain checks (no array-API lookups, which compilers warn about)."""
    if not isinstance(other, torch.Tensor):
        library = type(other).__module__.partition(".")[0]
        raise TypeError(
            f"{names[0]} and {names[1]} come from different array libraries (torch and "
            f"{library}); convert one of them"
        )
    if other.device != first.device:
        raise ValueError(
            f"{names[0]} is on device {first.device} but {names[1]} is on device "
            f"{other.device}; move one of them"
        )


def _times(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x * factor``, the factor rounded to ``x``'s dtype first (as the core does)."""
    if factor == 1.0:
        return x
    return x * torch.tensor(factor, dtype=x.dtype, device=x.device)


def _zero(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros((), dtype=x.dtype, device=x.device)


def _relu_keep(x: torch.Tensor) -> torch.Tensor:
    """Where ReLU passes ``x``: not ``x <= 0``, so NaN passes (as ``torch.relu``)."""
    return (x <= 0).logical_not()


def _check_scale(x: torch.Tensor, scale: float, p: float) -> None:
    """Refuse a training scale that is not finite in ``x``'s dtype (float16, p near 1)."""
    if scale > 1.0:
        check_scale(scale, p, x.dtype, torch.finfo(x.dtype))


def _check_inplace(x: torch.Tensor) -> None:
    if x.is_leaf and x.requires_grad and torch.is_grad_enabled():
        raise ValueError(
            "inplace=True on a leaf tensor that requires grad: autograd needs its value; "
            "pass inplace=False (the default), or apply dropout to a non-leaf tensor"
        )


def _write(x: torch.Tensor, y: torch.Tensor, inplace: bool) -> torch.Tensor:
    if not inplace or y is x:
        return y
    return x.copy_(y)


def dropout(
    x: torch.Tensor,
    p: Any,
    *,
    noise_shape: tuple[int | None, ...] | None = None,
    rng: TorchRNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    relu: bool = False,
    return_mask: ReturnMask = False,
    inplace: bool = False,
) -> Any:
    """Dropout (of ``relu(x)`` if ``relu``) of a tensor; see :func:`dropkit.dropout`.

    Examples
    --------
    >>> x = torch.arange(1.0, 7.0)
    >>> y = dropout(x, 0.5, rng=3)
    >>> bool(torch.all((y == 0) | (y == 2 * x)))
    True
    >>> dropout(x, 0.5, training=False) is x
    True
    """
    return dropout_with(
        x,
        p,
        lambda: seed_tensor(rng, x),
        noise_shape=noise_shape,
        training=training,
        mode=mode,
        relu=relu,
        return_mask=return_mask,
        inplace=inplace,
    )


def dropout_with(
    x: torch.Tensor,
    p: Any,
    draw: Callable[[], torch.Tensor],
    *,
    noise_shape: tuple[int | None, ...] | None = None,
    training: bool = True,
    mode: str = "inverted",
    relu: bool = False,
    return_mask: ReturnMask = False,
    inplace: bool = False,
) -> Any:
    """:func:`dropout` with the seed tensor from ``draw()``, called only if a mask is drawn.

    The layers of :mod:`dropkit_torch.nn` pass their own stream here.
    """
    check_tensor(x, "x")
    p = torch_p(p)
    mode = check_mode(mode)
    shape = check_noise_shape(noise_shape, tuple(x.shape))
    training = check_flag(training, "training")
    relu = check_flag(relu, "relu")
    inplace = check_flag(inplace, "inplace")
    return_mask = check_return_mask(return_mask)
    if inplace:
        _check_inplace(x)
    if not training or p == 0.0:
        factor = 1.0 if training else eval_factor(p, mode)
        y = torch.where(_relu_keep(x), _times(x, factor), _zero(x)) if relu else _times(x, factor)
        y = _write(x, y, inplace)
        if return_mask:
            return (
                y,
                returned_mask(torch.ones(shape, dtype=torch.bool, device=x.device), return_mask),
            )
        return y
    threshold = FULL if p == 1.0 else keep_threshold(p)
    scale = 0.0 if p == 1.0 else train_scale(p, mode)
    _check_scale(x, scale, p)
    # p = 1 draws nothing (like the core); the op drops every unit and keeps the graph
    seed = torch.zeros(4, dtype=torch.int64, device=x.device) if p == 1.0 else draw()
    if return_mask:
        mask = keep_mask_op(seed, list(shape), threshold)
        keep = mask & _relu_keep(x) if relu else mask
        y = _write(x, torch.where(keep, _times(x, scale), _zero(x)), inplace)
        return y, returned_mask(mask, return_mask)
    if inplace and not (torch.is_grad_enabled() and x.requires_grad):
        dropout_inplace_op(x, seed, list(shape), threshold, scale, relu)
        return x
    return _write(x, dropout_op(x, seed, list(shape), threshold, scale, relu), inplace)


def dropout_backward(
    grad: torch.Tensor,
    p: Any,
    *,
    noise_shape: tuple[int | None, ...] | None = None,
    mask: Any = None,
    rng: TorchRNGLike = None,
    training: bool = True,
    mode: str = "inverted",
) -> torch.Tensor:
    """Gradient of :func:`dropout`; see :func:`dropkit.dropout_backward`.

    Examples
    --------
    >>> g = torch.ones(6)
    >>> bool(torch.equal(dropout_backward(g, 0.5, rng=1), dropout(g, 0.5, rng=1)))
    True
    """
    check_tensor(grad, "grad")
    p = torch_p(p)
    mode = check_mode(mode)
    shape = check_noise_shape(noise_shape, tuple(grad.shape))
    training = check_flag(training, "training")
    if not training or p == 0.0:
        return grad if (training or mode == "inverted") else _times(grad, eval_factor(p, mode))
    if p == 1.0:
        return torch.zeros_like(grad)
    check_backward_source(mask, rng)
    threshold, scale = keep_threshold(p), train_scale(p, mode)
    _check_scale(grad, scale, p)
    if mask is None:
        return dropout_op(grad, seed_tensor(rng, grad), list(shape), threshold, scale, False)
    if isinstance(mask, PackedMask):
        mask = unpack_mask(mask)
    _check_same_kind(grad, mask, ("grad", "mask"))
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a boolean array (True = kept), got dtype {mask.dtype}")
    check_noise_shape(tuple(mask.shape), tuple(grad.shape))
    return torch.where(mask, _times(grad, scale), _zero(grad))


def relu_dropout_backward(
    grad: torch.Tensor,
    h: torch.Tensor,
    p: Any,
    *,
    training: bool = True,
    mode: str = "inverted",
) -> torch.Tensor:
    """Gradient of ReLU-dropout from its output ``h``; see :func:`dropkit.relu_dropout_backward`.

    Examples
    --------
    >>> h = torch.tensor([0.0, 2.0, 0.0, 4.0])
    >>> relu_dropout_backward(torch.ones(4), h, 0.5).tolist()
    [0.0, 2.0, 0.0, 2.0]
    """
    check_tensor(grad, "grad")
    _check_same_kind(grad, h, ("grad", "h"))
    check_tensor(h, "h")
    p = torch_p(p)
    scale = relu_backward_factor(grad, h, p, training=training, mode=mode)
    if scale is None:
        return torch.zeros_like(grad)
    _check_scale(grad, scale, p)
    return torch.where(_relu_keep(h), _times(grad, scale), _zero(grad))


@torch.library.custom_op("dropkit::philox_words", mutates_args=())
def philox_words_op(seed: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n`` Philox words (int64 values below 2**32) of the draw in ``seed``.

    A registered op, so that ``torch.compile`` keeps the dropout family's
    draws in its graph (the rest of those ops is plain tensor arithmetic).

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


class SeedDraw:
    """An ``rng=`` for the dropout family that draws its seed tensor from ``draw()``.

    The layers of :mod:`dropkit_torch.nn` pass their own stream this way (the
    draw happens only if the op draws).
    """

    def __init__(self, draw: Callable[[], torch.Tensor]) -> None:
        self.draw = draw


def family_bits(rng: Any, x: torch.Tensor, n: int) -> torch.Tensor:
    """The words of one draw for the dropout family's ops on ``x`` (the backend's hook).

    ``rng`` maps to a seed as for :func:`dropout` (:mod:`dropkit_torch.keys`:
    ``None`` draws from torch's generator for ``x``'s device), or is a
    :class:`SeedDraw`.

    Examples
    --------
    >>> import numpy as np
    >>> from dropkit import get_backend
    >>> w = family_bits(5, torch.ones(3), 6)
    >>> bool(np.array_equal(w.numpy(), get_backend("numpy").random_bits(5, 0, 6)))
    True
    """
    seed = rng.draw() if isinstance(rng, SeedDraw) else seed_tensor(rng, x)
    return philox_words_op(seed, n)


# Importing the backend registers it with the core (after this module is complete).
from . import backend as _backend  # noqa: E402, F401
