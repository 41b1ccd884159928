"""Every semantic decision of the dropout ops, once: checks, modes, p = 0 and 1, masks.

The public ops (:mod:`dropkit.ops`, :mod:`dropkit.channel`, the family) call
:func:`forward`, :func:`backward` and :func:`relu_backward`; these select the
backend (:mod:`dropkit.selection`), validate, and reduce what is left to the
one primitive :func:`dropkit.primitive.mask_scale`.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from ._dtype_facts import check_floating_dtype, overflow_bound_of
from ._selection_state import _ENV, BY_TYPE
from .backend import Capabilities
from .checks import (
    MODES,
    check_flag,
    check_mode,
    check_noise_shape,
    check_p,
    check_return_mask,
    check_same_array_kind,
    check_scale,
    check_stored,
    finfo,
    namespace_of,
)
from .packed import PackedMask, pack_mask, unpack_mask
from .primitive import device_of, keep_mask, mask_scale, relu_keep, times, write
from .selection import _OPEN, select
from .thresholds import FULL, eval_factor, threshold_of, train_scale

__all__ = [
    "backward",
    "check_backward_source",
    "check_scale_of",
    "check_training_scale",
    "forward",
    "relu_backward",
    "relu_backward_factor",
    "returned_mask",
    "selected",
]


def selected(x: Any, name: str, backend: str | None) -> Capabilities:
    """The backend for the array ``x`` (argument ``name``), its dtype checked.

    The common case (no ``backend=``, no :func:`~dropkit.use_backend` block, no
    ``$DROPKIT_BACKEND``, an array type already seen) is one dict look-up in
    :data:`~dropkit.selection.BY_TYPE`, the memo :func:`~dropkit.selection.select`
    itself reads there (and the registry clears); every other case is ``select``'s.
    """
    caps = None
    if backend is None and not _OPEN[0] and _ENV[0] is None:
        caps = BY_TYPE.get(type(x))
    if caps is None:
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            namespace_of(x, name)  # raises, naming the argument
        caps = select(x, name, backend)
    dtype = x.dtype
    try:
        if dtype in caps.bounds:  # the common case: one dict look-up
            return caps
    except TypeError:  # an unhashable dtype
        pass
    check_floating_dtype(caps.xp, dtype, name)
    return caps


def check_scale_of(xp: Any, dtype: Any, scale: float, p: float) -> None:
    """Refuse a training scale that is not finite in ``dtype`` (float16 with p near 1)."""
    if scale > 1.0 and scale >= overflow_bound_of(xp, dtype):
        check_scale(scale, p, dtype, finfo(xp, dtype))  # raises, with the message


def check_training_scale(caps: Capabilities, dtype: Any, scale: float, p: float) -> None:
    """:func:`check_scale_of`, answered by one dict look-up for the dtypes found at load.

    ``caps.bounds`` holds their overflow bounds; any other dtype (1.0 below
    every scale) is checked in full.
    """
    try:
        if scale < caps.bounds.get(dtype, 1.0):
            return
    except TypeError:  # an unhashable dtype
        pass
    check_scale_of(caps.xp, dtype, scale, p)


def check_backward_source(mask: Any, rng: Any) -> None:
    """Raise unless exactly one of ``mask`` and ``rng`` is given to a backward."""
    if (mask is None) == (rng is None):
        raise ValueError(
            "dropout backward needs exactly one of mask= (the mask from the forward pass, "
            "return_mask=True) or rng= (the seed, or a copy of the generator taken before "
            "the forward pass, to regenerate the mask)"
        )


def _check_writeable(x: Any) -> None:
    if not array_api_compat.is_writeable_array(x):
        raise ValueError(
            f"inplace=True but x ({type(x).__module__}.{type(x).__qualname__}) is read-only; "
            "pass inplace=False (the default) or a writeable copy"
        )


def returned_mask(mask: Any, how: Any) -> Any:
    """The mask as ``return_mask`` asks: the boolean mask (True) or packed bits ("packed").

    Examples
    --------
    >>> import numpy as np
    >>> returned_mask(np.array([True, False]), "packed").nbytes
    1
    """
    how = check_return_mask(how)
    if how == "packed":
        return pack_mask(mask)
    if how is not True:
        raise ValueError("returned_mask is only called when a mask is asked for")
    return mask


def forward(
    x: Any,
    p: Any,
    noise_shape: Any,
    rng: Any,
    training: bool,
    mode: str,
    relu: bool,
    return_mask: Any,
    inplace: bool,
    backend: str | None,
) -> Any:
    """Dropout (of ``relu(x)`` if ``relu``) of ``x``: the decision tree of every forward.

    The arguments may be passed by position (``dropout`` does: keywords cost
    0.1 us a call on an (8, 8) array, a twentieth of the whole).
    """
    caps = selected(x, "x", backend)
    xp = caps.xp
    # Each check runs in full unless its argument is already what it returns (a
    # float in [0, 1], a bool, ...): the same errors, without a call per argument.
    if type(p) is not float or not 0.0 <= p <= 1.0:
        p = check_p(p)
    if mode not in MODES:
        check_mode(mode)
    shape = x.shape
    if type(shape) is not tuple:
        shape = tuple(shape)
    if noise_shape is not None:
        shape = check_noise_shape(noise_shape, shape)
    if training is not True and training is not False:
        training = check_flag(training, "training")
    if inplace is not False:
        inplace = check_flag(inplace, "inplace")
    if return_mask is not False:
        return_mask = check_return_mask(return_mask)
    if inplace:
        _check_writeable(x)
    out = x if inplace else None

    if not training or p == 0.0:
        factor = 1.0 if training else eval_factor(p, mode)
        if relu:
            zero = xp.zeros((), dtype=x.dtype, device=device_of(x))
            y = write(xp, x, xp.where(relu_keep(xp, x), times(xp, x, factor), zero), inplace)
        else:
            y = write(xp, x, times(xp, x, factor), inplace)
        if return_mask:
            ones = xp.ones(shape, dtype=xp.bool, device=device_of(x))
            return y, returned_mask(ones, return_mask)
        return y

    if p == 1.0:  # nothing is drawn; the primitive keeps a framework's graph
        y = mask_scale(
            caps, x, None, noise_shape=shape, threshold=FULL, scale=0.0, relu=relu, out=out
        )
        if return_mask:
            zeros = xp.zeros(shape, dtype=xp.bool, device=device_of(x))
            return y, returned_mask(zeros, return_mask)
        return y

    scale = train_scale(p, mode)
    check_training_scale(caps, x.dtype, scale, p)
    threshold = threshold_of(p)
    draw = caps.draw(rng, x)
    if return_mask:
        mask = keep_mask(caps, draw, shape, threshold, device_of(x))
        keep = xp.logical_and(mask, relu_keep(xp, x)) if relu else mask
        zero = xp.zeros((), dtype=x.dtype, device=device_of(x))
        y = write(xp, x, xp.where(keep, times(xp, x, scale), zero), inplace)
        return y, returned_mask(mask, return_mask)
    if caps.mask_scale is not None:  # primitive.mask_scale's first step, without its call
        y = caps.mask_scale(
            x, draw, noise_shape=shape, threshold=threshold, scale=scale, relu=relu, out=out
        )
        if y is not None:
            return y
    return mask_scale(
        caps, x, draw, noise_shape=shape, threshold=threshold, scale=scale, relu=relu, out=out
    )


def backward(
    grad: Any,
    p: Any,
    *,
    noise_shape: Any,
    mask: Any,
    rng: Any,
    training: bool,
    mode: str,
    backend: str | None,
) -> Any:
    """Gradient of :func:`forward` (``relu=False``): from ``mask``, or regenerated from ``rng``."""
    caps = selected(grad, "grad", backend)
    xp = caps.xp
    if type(p) is not float or not 0.0 <= p <= 1.0:
        p = check_p(p)
    if mode not in MODES:
        check_mode(mode)
    shape = tuple(grad.shape)
    if noise_shape is not None:
        shape = check_noise_shape(noise_shape, shape)
    if training is not True and training is not False:
        training = check_flag(training, "training")
    if not training or p == 0.0:
        return grad if (training or mode == "inverted") else times(xp, grad, 1.0 - p)
    if p == 1.0:
        return xp.zeros_like(grad)
    check_backward_source(mask, rng)
    scale = train_scale(p, mode)
    check_training_scale(caps, grad.dtype, scale, p)
    if mask is None:
        draw = caps.draw(rng, grad)
        return mask_scale(
            caps, grad, draw, noise_shape=shape, threshold=threshold_of(p), scale=scale
        )
    if isinstance(mask, PackedMask):
        mask = unpack_mask(mask)
    check_stored(xp, grad, mask, shape, "mask", boolean=True)  # the forward's noise shape
    zero = xp.zeros((), dtype=grad.dtype, device=device_of(grad))
    return xp.where(mask, times(xp, grad, scale), zero)


def relu_backward_factor(grad: Any, h: Any, p: Any, *, training: bool, mode: str) -> float | None:
    """Check :func:`relu_backward`'s arguments; the gradient's factor where ``h`` passes.

    None when training with ``p = 1`` (every unit dropped: the gradient is 0).

    Examples
    --------
    >>> import numpy as np
    >>> relu_backward_factor(np.ones(2), np.ones(2), 0.5, training=True, mode="inverted")
    2.0
    """
    if tuple(h.shape) != tuple(grad.shape):
        raise ValueError(
            f"grad and h must have the same shape (h is the output of relu_dropout), "
            f"got grad {tuple(grad.shape)} and h {tuple(h.shape)}"
        )
    p = check_p(p)
    mode = check_mode(mode)
    training = check_flag(training, "training")
    if p == 1.0 and training:
        return None
    return train_scale(p, mode) if training else eval_factor(p, mode)


def relu_backward(
    grad: Any, h: Any, p: Any, *, training: bool, mode: str, backend: str | None
) -> Any:
    """Gradient of ReLU-dropout from its output ``h``: the primitive gated on ``h``."""
    caps = selected(grad, "grad", backend)
    xp = caps.xp
    check_same_array_kind(xp, grad, h, ("grad", "h"))
    scale = relu_backward_factor(grad, h, p, training=training, mode=mode)
    if scale is None:
        return xp.zeros_like(grad)
    check_scale_of(xp, grad.dtype, scale, p if type(p) is float else check_p(p))
    return mask_scale(
        caps, grad, None, noise_shape=tuple(grad.shape), threshold=0, scale=scale, relu=h
    )
