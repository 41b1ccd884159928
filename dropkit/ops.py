"""Dropout and channel dropout, forward and backward, on any array-API namespace.

``p`` is the probability of DROPPING a unit. A unit is kept when its 32-bit
Philox word is at or above the threshold ``t = round(p * 2**32)``, so the keep
probability is exactly ``(2**32 - t) / 2**32``: ``p`` is resolved to a multiple
of ``2**-32`` (:func:`keep_probability` gives the exact value). The mask
depends only on ``(key, counter, element index)``, never on the dtype of ``x``
or the backend.

Modes
-----
``"inverted"`` (default): training output ``x * m / (1 - p)``, evaluation
output ``x``. ``"vanilla"`` (the original paper): training output ``x * m``,
evaluation output ``x * (1 - p)``. The scale is applied in ``x``'s dtype:
dropped units are exactly zero, kept units are ``x * scale`` with ``scale``
rounded to that dtype.

Examples
--------
>>> import numpy as np
>>> import dropkit
>>> x = np.ones((2, 4), dtype=np.float32)
>>> y, mask = dropkit.dropout(x, 0.5, rng=0, return_mask=True)
>>> bool(np.all(y == np.where(mask, 2.0, 0.0)))
True
>>> dx = dropkit.dropout_backward(np.ones_like(x), 0.5, rng=0)   # same seed: same mask
>>> bool(np.all(dx == y))
True
"""

from __future__ import annotations

import math
import operator
import os
import sys
from collections.abc import Callable
from typing import Any, Literal, Protocol, overload

import array_api_compat

from ._arrays import (
    ReturnMask,
    check_flag,
    check_floating,
    check_mode,
    check_noise_shape,
    check_p,
    check_return_mask,
    check_same_array_kind,
    check_scale,
    check_shape,
    namespace_of,
)
from .backend import Backend, NativeBackend, has_native_ops
from .packed import PackedMask, pack_mask, unpack_mask
from .random import Generator, RNGLike, as_generator
from .registry import ENV_VAR, get_backend, get_registry, native_backend

__all__ = [
    "RESOLUTION_BITS",
    "channel_noise_shape",
    "check_backward_source",
    "dropout",
    "dropout1d",
    "dropout1d_backward",
    "dropout2d",
    "dropout2d_backward",
    "dropout3d",
    "dropout3d_backward",
    "dropout_backward",
    "dropout_mask",
    "eval_factor",
    "keep_probability",
    "keep_threshold",
    "relu_backward_factor",
    "relu_dropout",
    "relu_dropout_backward",
    "returned_mask",
    "train_scale",
]

#: Bits of resolution of the drop probability: ``p`` is rounded to a multiple of 2**-32.
RESOLUTION_BITS = 32
_FULL = 1 << RESOLUTION_BITS


def keep_threshold(p: float) -> int:
    """The integer threshold for drop probability ``p``: keep iff word >= threshold.

    Examples
    --------
    >>> keep_threshold(0.5) == 2**31
    True
    """
    return round(check_p(p) * _FULL)


def keep_probability(p: float) -> float:
    """The exact probability that a unit is kept, after resolving ``p`` to 2**-32.

    Examples
    --------
    >>> keep_probability(0.5)
    0.5
    >>> abs(keep_probability(0.1) - 0.9) < 2**-32
    True
    """
    return (_FULL - keep_threshold(p)) / _FULL


def train_scale(p: float, mode: str) -> float:
    """The factor of kept units in training: ``1 / (1 - p)`` (inverted) or 1 (vanilla).

    Examples
    --------
    >>> train_scale(0.75, "inverted"), train_scale(0.75, "vanilla")
    (4.0, 1.0)
    """
    return 1.0 / (1.0 - p) if mode == "inverted" else 1.0


def eval_factor(p: float, mode: str) -> float:
    """The evaluation output's factor: 1 (inverted) or ``1 - p`` (vanilla).

    Examples
    --------
    >>> eval_factor(0.25, "inverted"), eval_factor(0.25, "vanilla")
    (1.0, 0.75)
    """
    return 1.0 if mode == "inverted" else 1.0 - p


def check_backward_source(mask: Any, rng: Any) -> None:
    """Raise unless exactly one of ``mask`` and ``rng`` is given to a backward."""
    if (mask is None) == (rng is None):
        raise ValueError(
            "dropout backward needs exactly one of mask= (the mask from the forward pass, "
            "return_mask=True) or rng= (the seed, or a copy of the generator taken before "
            "the forward pass, to regenerate the mask)"
        )


def _refuse_inside_torch_compile() -> None:
    """A clear error where ``torch.compile`` would trace into the plugin registry.

    The registry (entry points, pluggy) cannot be traced; once the torch
    backend is registered (``import dropkit_torch``, or any eager call on a
    tensor) the ops resolve without it. Looks torch up in ``sys.modules`` only:
    the core never imports a framework.
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.compiler.is_compiling():
        raise RuntimeError(
            "dropkit ops reached the plugin registry inside torch.compile; register the "
            "torch backend before compiling: `import dropkit_torch` after `import torch` "
            "(or call any dropkit op eagerly on a tensor first)"
        )


#: ``(array type, backend=, $DROPKIT_BACKEND) -> (registry, xp, backend)``: what
#: :func:`_resolve` found last time, valid while the registry is the same object.
_RESOLVED: dict[tuple[type, str | None, str | None], tuple[Any, Any, Backend]] = {}


def _resolve(x: Any, name: str, backend: str | None) -> tuple[Any, Backend]:
    """The namespace and backend for ``x``, looked up once per array type.

    The namespace and the selected backend depend only on the array's type,
    ``backend=`` and ``$DROPKIT_BACKEND`` (and the registry), so a hit skips
    the registry (measured: about a third of a small call's Python time).
    """
    _refuse_inside_torch_compile()
    registry = get_registry()
    key = (type(x), backend, os.environ.get(ENV_VAR))
    hit = _RESOLVED.get(key) if backend is None or isinstance(backend, str) else None
    if hit is not None and hit[0] is registry:
        check_floating(hit[1], x, name)
        return hit[1], hit[2]
    xp = namespace_of(x, name)
    check_floating(xp, x, name)
    chosen = get_backend(backend, x)
    if chosen.xp is not xp:
        raise TypeError(
            f"{name} is an array of {xp.__name__}, but the selected backend {chosen.name!r} "
            f"serves {chosen.xp.__name__}; pass backend= matching the array, or unset "
            "DROPKIT_BACKEND"
        )
    if backend is None or isinstance(backend, str):
        if len(_RESOLVED) >= 64:  # a bound, for processes that see many array types
            _RESOLVED.clear()
        _RESOLVED[key] = (registry, xp, chosen)
    return xp, chosen


def _dispatch(x: Any, name: str, backend: str | None) -> tuple[Any, Backend, NativeBackend | None]:
    """``(xp, backend, native)``: native is the backend when it has its own form of the ops."""
    native = native_backend(x, backend)
    if native is not None:
        return native.xp, native, native
    xp, chosen = _resolve(x, name, backend)
    return xp, chosen, chosen if has_native_ops(chosen) else None


def _draw_mask(
    b: Backend, xp: Any, shape: tuple[int, ...], p: float, rng: RNGLike, device: Any
) -> Any:
    key, counter = as_generator(rng).draw()
    threshold = keep_threshold(p)
    if threshold >= _FULL:
        return xp.zeros(shape, dtype=xp.bool, device=device)
    bits = b.random_bits(key, counter, math.prod(shape), device=device)
    # the threshold as an array of the words' dtype: JAX without x64 reads a bare
    # Python int above 2**31 as int32 and overflows
    limit = xp.asarray(threshold, dtype=bits.dtype, device=array_api_compat.device(bits))
    return xp.reshape(bits >= limit, shape)


def _times(xp: Any, z: Any, factor: float) -> Any:
    """``z * factor``, the factor rounded to ``z``'s dtype first.

    NumPy rounds a Python float to the array's dtype; PyTorch would multiply
    float16 by the unrounded value. Both now give the same result.
    """
    if factor == 1.0:
        return z
    return z * xp.asarray(factor, dtype=z.dtype, device=array_api_compat.device(z))


def _check_scale(xp: Any, dtype: Any, scale: float, p: float) -> None:
    """Refuse a training scale that is not finite in ``dtype`` (float16 with p near 1)."""
    if scale > 1.0:
        check_scale(scale, p, dtype, xp.finfo(dtype))


def _check_writeable(x: Any) -> None:
    if not array_api_compat.is_writeable_array(x):
        raise ValueError(
            f"inplace=True but x ({type(x).__module__}.{type(x).__qualname__}) is read-only; "
            "pass inplace=False (the default) or a writeable copy"
        )


def _relu_keep(xp: Any, z: Any) -> Any:
    """Where ReLU passes ``z``: ``not (z <= 0)``, so NaN passes (as ``torch.relu``)."""
    return xp.logical_not(z <= 0)


def _masked(xp: Any, z: Any, mask: Any, scale: float) -> Any:
    """``z * scale`` where kept, exactly 0 where dropped (even for inf or NaN)."""
    return xp.where(mask, _times(xp, z, scale), xp.zeros((), dtype=z.dtype))


def _apply_mask(b: Backend, xp: Any, z: Any, mask: Any, scale: float, *, inplace: bool) -> Any:
    """:func:`_masked` for a mask of a noise shape: the backend's kernel if it has one."""
    kernel = getattr(b, "dropout_masked", None)
    if kernel is not None and tuple(mask.shape) != tuple(z.shape):
        y = kernel(z, mask, scale, out=z if inplace else None)
        if y is not None:
            return y
    if not inplace:
        return _masked(xp, z, mask, scale)
    if math.prod(z.shape):  # (Dask cannot assign into an empty array)
        z[xp.logical_not(xp.broadcast_to(mask, tuple(z.shape)))] = 0
        if scale != 1.0:
            z[...] = _times(xp, z, scale)
    return z


def _fused_or_masked(
    b: Backend,
    xp: Any,
    z: Any,
    p: float,
    scale: float,
    rng: RNGLike,
    *,
    relu: bool = False,
    inplace: bool = False,
) -> Any:
    """Element-wise (ReLU-)dropout of ``z``: the backend's fused kernel if it has one."""
    fused = getattr(b, "dropout_fused", None)
    if fused is not None:
        key, counter = as_generator(rng).draw()
        y = fused(z, key, counter, keep_threshold(p), scale, relu=relu, out=z if inplace else None)
        if y is not None:
            return y
        rng = Generator(key, counter)  # the kernel declined: replay the same draw
    mask = _draw_mask(b, xp, tuple(z.shape), p, rng, array_api_compat.device(z))
    if relu:
        mask = xp.logical_and(mask, _relu_keep(xp, z))
    y = _masked(xp, z, mask, scale)
    if inplace:
        if math.prod(z.shape):  # (Dask cannot assign into an empty array)
            z[...] = y
        return z
    return y


def dropout_mask(
    shape: tuple[int, ...],
    p: float,
    *,
    rng: RNGLike = None,
    backend: str | None = None,
    device: Any = None,
) -> Any:
    """Draw a boolean keep-mask of ``shape`` (True = kept).

    The same ``rng`` state gives the same mask on every backend. Unlike
    :func:`dropout`, this always draws (p=0 and p=1 included).

    Parameters
    ----------
    shape : tuple of int, or int
        Shape of the mask: non-negative integers (NumPy integers too; an int
        is a 1-d shape).
    p : float
        Drop probability in [0, 1].
    rng : None, int, Generator or numpy.random.Generator, optional
        The random stream (SPEC 7).
    backend : str, optional
        Backend name; default: ``$DROPKIT_BACKEND`` or ``numpy``.
    device : optional
        Device of the mask.

    Examples
    --------
    >>> import numpy as np
    >>> m = dropout_mask((1000,), 0.25, rng=1)
    >>> 700 < int(np.sum(m)) < 800
    True
    """
    shape = check_shape(shape)
    p = check_p(p)
    b = get_backend(backend)
    return _draw_mask(b, b.xp, shape, p, rng, device)


def _forward(
    x: Any,
    p: Any,
    *,
    noise_shape: Any,
    rng: RNGLike,
    training: bool,
    mode: str,
    return_mask: ReturnMask,
    inplace: bool,
    backend: str | None,
) -> Any:
    xp, b, native = _dispatch(x, "x", backend)
    if native is not None:
        return native.dropout_native(
            x,
            p,
            noise_shape=noise_shape,
            rng=rng,
            training=training,
            mode=mode,
            relu=False,
            return_mask=return_mask,
            inplace=inplace,
        )
    p = check_p(p)
    mode = check_mode(mode)
    shape = check_noise_shape(noise_shape, tuple(x.shape))
    training = check_flag(training, "training")
    inplace = check_flag(inplace, "inplace")
    return_mask = check_return_mask(return_mask)
    if inplace:
        _check_writeable(x)
    device = array_api_compat.device(x)

    if not training or p == 0.0:
        mask = xp.ones(shape, dtype=xp.bool, device=device)
        if training or mode == "inverted":
            y = x
        elif inplace:
            if math.prod(x.shape):
                x[...] = _times(xp, x, 1.0 - p)
            y = x
        else:
            y = _times(xp, x, 1.0 - p)
        return (y, returned_mask(mask, return_mask)) if return_mask else y

    if p == 1.0:
        mask = xp.zeros(shape, dtype=xp.bool, device=device)
        if inplace:
            if math.prod(x.shape):
                x[...] = 0
            y = x
        else:
            y = xp.zeros_like(x)
        return (y, returned_mask(mask, return_mask)) if return_mask else y

    scale = train_scale(p, mode)
    _check_scale(xp, x.dtype, scale, p)
    if not return_mask and shape == tuple(x.shape):
        return _fused_or_masked(b, xp, x, p, scale, rng, inplace=inplace)
    mask = _draw_mask(b, xp, shape, p, rng, device)
    y = _apply_mask(b, xp, x, mask, scale, inplace=inplace)
    return (y, returned_mask(mask, return_mask)) if return_mask else y


def relu_backward_factor(grad: Any, h: Any, p: Any, *, training: bool, mode: str) -> float | None:
    """Check :func:`relu_dropout_backward`'s arguments; the gradient's factor where ``h`` passes.

    None when training with ``p = 1`` (every unit dropped: the gradient is 0).
    Backends' own forms of the op share it.

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


def _backward(
    grad: Any,
    p: Any,
    *,
    noise_shape: Any,
    mask: Any,
    rng: RNGLike,
    training: bool,
    mode: str,
    backend: str | None,
) -> Any:
    xp, b, native = _dispatch(grad, "grad", backend)
    if native is not None:
        return native.dropout_backward_native(
            grad, p, noise_shape=noise_shape, mask=mask, rng=rng, training=training, mode=mode
        )
    p = check_p(p)
    mode = check_mode(mode)
    shape = check_noise_shape(noise_shape, tuple(grad.shape))
    training = check_flag(training, "training")
    if not training or p == 0.0:
        return grad if (training or mode == "inverted") else _times(xp, grad, 1.0 - p)
    if p == 1.0:
        return xp.zeros_like(grad)
    check_backward_source(mask, rng)
    scale = train_scale(p, mode)
    _check_scale(xp, grad.dtype, scale, p)
    if mask is None:
        if shape == tuple(grad.shape):
            return _fused_or_masked(b, xp, grad, p, scale, rng)
        mask = _draw_mask(b, xp, shape, p, rng, array_api_compat.device(grad))
    else:
        if isinstance(mask, PackedMask):
            mask = unpack_mask(mask)
        check_same_array_kind(xp, grad, mask, ("grad", "mask"))
        if mask.dtype != xp.bool:
            raise TypeError(f"mask must be a boolean array (True = kept), got dtype {mask.dtype}")
        check_noise_shape(tuple(mask.shape), tuple(grad.shape))
    return _apply_mask(b, xp, grad, mask, scale, inplace=False)


@overload
def dropout(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    noise_shape: tuple[int | None, ...] | None = None,
    return_mask: Literal[True],
    inplace: bool = False,
    backend: str | None = None,
) -> tuple[Any, Any]: ...


@overload
def dropout(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    noise_shape: tuple[int | None, ...] | None = None,
    return_mask: Literal["packed"],
    inplace: bool = False,
    backend: str | None = None,
) -> tuple[Any, PackedMask]: ...


@overload
def dropout(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    noise_shape: tuple[int | None, ...] | None = None,
    return_mask: ReturnMask = False,
    inplace: bool = False,
    backend: str | None = None,
) -> Any: ...


def dropout(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    noise_shape: tuple[int | None, ...] | None = None,
    return_mask: ReturnMask = False,
    inplace: bool = False,
    backend: str | None = None,
) -> Any:
    """Randomly zero elements of ``x`` with probability ``p``.

    Parameters
    ----------
    x : array
        Input with a real floating dtype, from any array-API library.
    p : float
        Probability of DROPPING each unit, in [0, 1].
    rng : None, int, Generator or numpy.random.Generator, optional
        The random stream (SPEC 7). An int seed gives the same mask each call;
        a :class:`~dropkit.Generator` advances by one draw.
    training : bool, optional
        If False, no bits are drawn and the evaluation output is returned.
    mode : {"inverted", "vanilla"}, optional
        Where the ``1 / (1 - p)`` compensation goes (see the module docs).
    noise_shape : tuple, optional
        Shape of the mask, broadcast against ``x``: each entry 1 (shared along
        that axis), None or the size of ``x`` on that axis.
    return_mask : bool or "packed", optional
        Also return the boolean keep-mask (of ``noise_shape``); ``"packed"``
        returns it as a 1-bit :class:`~dropkit.packed.PackedMask` (8x smaller).
    inplace : bool, optional
        Overwrite ``x`` with the result (not possible for immutable arrays).
    backend : str, optional
        Backend name; default: ``$DROPKIT_BACKEND``, else the array's library.

    Returns
    -------
    y : array
        Same shape, dtype and device as ``x``; ``x`` itself when nothing is
        dropped (evaluation in inverted mode, or ``p == 0``).
    mask : array of bool or PackedMask
        Only if ``return_mask``: the boolean mask for True, a
        :class:`~dropkit.packed.PackedMask` for ``"packed"``.

    Raises
    ------
    TypeError
        ``x`` is not a floating array (or is a ``numpy.matrix``), ``p`` is not
        a real number, or ``training``/``inplace`` is not a bool.
    ValueError
        ``p`` outside [0, 1] or NaN; a bad ``mode`` or ``noise_shape``; in
        training, a scale ``1 / (1 - p)`` that is not finite in ``x``'s dtype
        (float16 with ``p`` above about 0.9999847).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(1.0, 7.0).reshape(2, 3)
    >>> y = dropout(x, 0.5, rng=3)
    >>> bool(np.all((y == 0) | (y == 2 * x)))
    True
    >>> dropout(x, 0.5, training=False) is x
    True
    >>> dropout(x, 0.5, rng=3, noise_shape=(2, 1)).shape   # one draw per row
    (2, 3)
    """
    return _forward(
        x,
        p,
        noise_shape=noise_shape,
        rng=rng,
        training=training,
        mode=mode,
        return_mask=return_mask,
        inplace=inplace,
        backend=backend,
    )


def relu_dropout(
    x: Any,
    p: float,
    *,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    inplace: bool = False,
    backend: str | None = None,
) -> Any:
    """``dropout(relu(x), p)`` in one pass where the backend has a fused kernel.

    The result ``h`` is all its backward needs: the gradient with respect to
    ``x`` is ``where(h > 0, grad * scale, 0)`` (see
    :func:`relu_dropout_backward`), so neither the mask nor ``x`` has to be
    kept. Same mask as :func:`dropout` for the same ``rng``. NaN is not
    positive but ReLU keeps it, as ``torch.relu`` does: a kept NaN stays NaN
    (and passes gradient), a dropped one is 0.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([-1.0, 2.0, 3.0, -4.0, 5.0, 6.0])
    >>> h = relu_dropout(x, 0.5, rng=0)
    >>> bool(np.all(h == dropout(np.maximum(x, 0), 0.5, rng=0)))
    True
    """
    xp, b, native = _dispatch(x, "x", backend)
    if native is not None:
        return native.dropout_native(
            x,
            p,
            noise_shape=None,
            rng=rng,
            training=training,
            mode=mode,
            relu=True,
            return_mask=False,
            inplace=inplace,
        )
    p = check_p(p)
    mode = check_mode(mode)
    training = check_flag(training, "training")
    inplace = check_flag(inplace, "inplace")
    if inplace:
        _check_writeable(x)
    if not training or p == 0.0:
        factor = 1.0 if training else eval_factor(p, mode)
        y = xp.where(_relu_keep(xp, x), _times(xp, x, factor), xp.zeros((), dtype=x.dtype))
    elif p == 1.0:
        y = xp.zeros_like(x)
    else:
        scale = train_scale(p, mode)
        _check_scale(xp, x.dtype, scale, p)
        return _fused_or_masked(b, xp, x, p, scale, rng, relu=True, inplace=inplace)
    if inplace:
        if math.prod(x.shape):
            x[...] = y
        return x
    return y


def relu_dropout_backward(
    grad: Any,
    h: Any,
    p: float,
    *,
    training: bool = True,
    mode: str = "inverted",
    backend: str | None = None,
) -> Any:
    """Gradient of :func:`relu_dropout` from its output ``h``: no mask needed.

    A unit passes gradient iff it was kept *and* its input was positive (or
    NaN, as in ``torch.relu``), which is exactly where ``h > 0`` or ``h`` is
    NaN; there the gradient is ``grad * scale``. Exact in
    training mode and in inverted mode (the factor is >= 1). In vanilla
    evaluation the factor ``1 - p`` < 1 can underflow a positive subnormal
    input to 0, whose gradient is then lost (inputs below about
    ``tiny / (1 - p)`` of the dtype). Backends that flush subnormals to zero
    (XLA on CPU, hence JAX) lose it wherever the input or ``(1 - p)`` times
    it is subnormal, consistently with their forward pass.

    Parameters
    ----------
    grad : array
        Gradient with respect to ``h``.
    h : array
        The output of :func:`relu_dropout` (same shape as ``grad``).
    p, training, mode, backend
        As passed to :func:`relu_dropout`.

    Returns
    -------
    array
        The gradient with respect to the input of :func:`relu_dropout`.

    Raises
    ------
    ValueError
        ``grad`` and ``h`` differ in shape; ``p`` or ``mode`` is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([-1.0, 2.0, 3.0, -4.0, 5.0, 6.0])
    >>> h = relu_dropout(x, 0.5, rng=0)
    >>> g = relu_dropout_backward(np.ones(6), h, 0.5)
    >>> bool(np.all(g == np.where(x > 0, dropout_backward(np.ones(6), 0.5, rng=0), 0)))
    True
    """
    xp, b, native = _dispatch(grad, "grad", backend)
    if native is not None:
        return native.relu_dropout_backward_native(grad, h, p, training=training, mode=mode)
    check_same_array_kind(xp, grad, h, ("grad", "h"))
    scale = relu_backward_factor(grad, h, p, training=training, mode=mode)
    if scale is None:
        return xp.zeros_like(grad)
    _check_scale(xp, grad.dtype, scale, float(p))
    fused = getattr(b, "relu_dropout_backward_fused", None)
    if fused is not None:
        y = fused(grad, h, scale)
        if y is not None:
            return y
    return xp.where(_relu_keep(xp, h), _times(xp, grad, scale), xp.zeros((), dtype=grad.dtype))


def dropout_backward(
    grad: Any,
    p: float,
    *,
    mask: Any = None,
    rng: RNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    noise_shape: tuple[int | None, ...] | None = None,
    backend: str | None = None,
) -> Any:
    """Gradient of :func:`dropout` with respect to its input.

    The result is ``grad * mask * scale``: exactly zero on every dropped unit.
    Give either the ``mask`` from the forward pass, or ``rng`` in the state it
    had *before* the forward pass (the same int seed, or a copy of the
    generator) to regenerate the mask without storing it.

    Parameters
    ----------
    grad : array
        Gradient with respect to the output.
    p, training, mode, noise_shape, backend
        As passed to the forward call.
    mask : array of bool or PackedMask, optional
        The keep-mask returned by ``dropout(..., return_mask=True)`` (or
        ``"packed"``).
    rng : int or Generator, optional
        The forward call's random stream, before it drew.

    Returns
    -------
    array
        Gradient with respect to the input.

    Examples
    --------
    >>> import numpy as np
    >>> from dropkit import Generator
    >>> g = Generator(5)
    >>> before = g.copy()
    >>> y = dropout(np.ones(6), 0.5, rng=g)
    >>> dx = dropout_backward(np.ones(6), 0.5, rng=before)
    >>> bool(np.all(dx == y))
    True
    """
    return _backward(
        grad,
        p,
        noise_shape=noise_shape,
        mask=mask,
        rng=rng,
        training=training,
        mode=mode,
        backend=backend,
    )


_RANK_NAMES = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def channel_noise_shape(
    shape: tuple[int, ...], spatial_dims: int, channel_axis: int = 1
) -> tuple[int, ...]:
    """Mask shape of channel dropout: whole ``(N, C)`` maps share one draw.

    Parameters
    ----------
    shape : tuple of int
        Input shape: batch axis 0, a channel axis and ``spatial_dims`` others.
    spatial_dims : {1, 2, 3}
        Number of spatial axes.
    channel_axis : int, optional
        The channel axis (1 for channels-first, -1 for channels-last).

    Examples
    --------
    >>> channel_noise_shape((8, 3, 32, 32), 2)
    (8, 3, 1, 1)
    >>> channel_noise_shape((8, 32, 32, 3), 2, channel_axis=-1)
    (8, 1, 1, 3)
    """
    ndim = spatial_dims + 2
    if len(shape) != ndim:
        hint = " (add a batch axis with x[None, ...])" if len(shape) == ndim - 1 else ""
        raise ValueError(
            f"dropout{spatial_dims}d expects a {ndim}-d input {_RANK_NAMES[spatial_dims]}, got "
            f"shape {tuple(shape)} of rank {len(shape)}{hint}; the rank is never guessed"
        )
    try:
        if isinstance(channel_axis, bool):
            raise TypeError
        channel_axis = operator.index(channel_axis)  # NumPy integers too
    except TypeError:
        raise TypeError(f"channel_axis must be an int, got {channel_axis!r}") from None
    if not -ndim <= channel_axis < ndim or channel_axis % ndim == 0:
        raise ValueError(
            f"channel_axis must name a non-batch axis of a {ndim}-d input (1..{ndim - 1} or "
            f"-{ndim - 1}..-1), got {channel_axis}"
        )
    axis = channel_axis % ndim
    return tuple(n if i in (0, axis) else 1 for i, n in enumerate(shape))


class _ChannelDropout(Protocol):
    """The type of :func:`dropout1d`, :func:`dropout2d` and :func:`dropout3d`."""

    @overload
    def __call__(
        self,
        x: Any,
        p: float,
        *,
        channel_axis: int = 1,
        rng: RNGLike = None,
        training: bool = True,
        mode: str = "inverted",
        return_mask: Literal[True],
        inplace: bool = False,
        backend: str | None = None,
    ) -> tuple[Any, Any]: ...

    @overload
    def __call__(
        self,
        x: Any,
        p: float,
        *,
        channel_axis: int = 1,
        rng: RNGLike = None,
        training: bool = True,
        mode: str = "inverted",
        return_mask: Literal["packed"],
        inplace: bool = False,
        backend: str | None = None,
    ) -> tuple[Any, PackedMask]: ...

    @overload
    def __call__(
        self,
        x: Any,
        p: float,
        *,
        channel_axis: int = 1,
        rng: RNGLike = None,
        training: bool = True,
        mode: str = "inverted",
        return_mask: ReturnMask = False,
        inplace: bool = False,
        backend: str | None = None,
    ) -> Any: ...


def _make_channel(spatial_dims: int) -> tuple[_ChannelDropout, Callable[..., Any]]:
    def forward(
        x: Any,
        p: float,
        *,
        channel_axis: int = 1,
        rng: RNGLike = None,
        training: bool = True,
        mode: str = "inverted",
        return_mask: ReturnMask = False,
        inplace: bool = False,
        backend: str | None = None,
    ) -> Any:
        if not hasattr(x, "shape"):  # (a plain check: compilers trace it)
            namespace_of(x, "x")
        return _forward(
            x,
            p,
            noise_shape=channel_noise_shape(tuple(x.shape), spatial_dims, channel_axis),
            rng=rng,
            training=training,
            mode=mode,
            return_mask=return_mask,
            inplace=inplace,
            backend=backend,
        )

    def backward(
        grad: Any,
        p: float,
        *,
        channel_axis: int = 1,
        mask: Any = None,
        rng: RNGLike = None,
        training: bool = True,
        mode: str = "inverted",
        backend: str | None = None,
    ) -> Any:
        if not hasattr(grad, "shape"):
            namespace_of(grad, "grad")
        return _backward(
            grad,
            p,
            noise_shape=channel_noise_shape(tuple(grad.shape), spatial_dims, channel_axis),
            mask=mask,
            rng=rng,
            training=training,
            mode=mode,
            backend=backend,
        )

    shape = _RANK_NAMES[spatial_dims]
    forward.__name__ = forward.__qualname__ = f"dropout{spatial_dims}d"
    backward.__name__ = backward.__qualname__ = f"dropout{spatial_dims}d_backward"
    forward.__doc__ = f"""Channel dropout of a {shape} input: zero whole feature maps.

    One draw per ``(N, C)`` pair; the mask has shape ``(N, C, 1, ...)`` (with
    ``C`` at ``channel_axis``). Other arguments as in :func:`dropout`; the
    input's rank must be exactly {spatial_dims + 2}.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones({(2, 3) + (4,) * spatial_dims})
    >>> y, mask = dropout{spatial_dims}d(x, 0.5, rng=0, return_mask=True)
    >>> mask.shape
    {(2, 3) + (1,) * spatial_dims}
    """
    backward.__doc__ = f"""Gradient of :func:`dropout{spatial_dims}d`; see :func:`dropout_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.ones({(2, 3) + (4,) * spatial_dims})
    >>> bool(np.all(dropout{spatial_dims}d_backward(g, 0.5, rng=0) == dropout{spatial_dims}d(g, 0.5, rng=0)))
    True
    """  # noqa: E501
    return forward, backward


dropout1d, dropout1d_backward = _make_channel(1)
dropout2d, dropout2d_backward = _make_channel(2)
dropout3d, dropout3d_backward = _make_channel(3)
