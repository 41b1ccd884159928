"""The ops in JAX's own form: traced keys, ``custom_jvp``, no stored mask.

``dropkit.dropout`` & co. route JAX arrays here. The semantics are the
core's; the machinery is JAX's:

- the key is a JAX key or four ``uint32`` words (:mod:`dropkit_jax.keys`), so
  under ``jax.jit`` it is an argument: one compilation for every key;
- the random part is a ``jax.custom_jvp`` (so forward mode works too) whose
  tangent saves nothing but the 16-byte draw: the backward regenerates the
  mask (the ReLU variant keeps its output, which the next layer holds anyway);
- ``p``, ``training``, ``mode`` and ``noise_shape`` are static Python values
  (a traced ``p`` is refused with the fix in the message).

Examples
--------
>>> import jax, jax.numpy as jnp, dropkit
>>> x = jnp.ones(6)
>>> key = jax.random.PRNGKey(3)
>>> step = jax.jit(lambda x, k: dropkit.dropout(x, 0.5, rng=k))
>>> bool(jnp.all(step(x, key) == dropkit.dropout(x, 0.5, rng=3)))
True
>>> g = jax.grad(lambda x: dropkit.dropout(x, 0.5, rng=key).sum())(x)
>>> bool(jnp.all(g == step(x, key)))
True
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from dropkit import keep_threshold, unpack_mask
from dropkit._arrays import (
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
from dropkit.philox import random_bits_elementwise, random_bits_words

from .keys import JaxRNGLike, is_traced, seed_words

__all__ = ["dropout", "dropout_backward", "family_bits", "keep_mask", "relu_dropout_backward"]

_FULL = 1 << 32

# A packed mask is a pytree (its bits the leaf, its shape static), so it can be
# returned from jit, vmap and scan. Under vmap the bits gain the batch axis while
# the shape stays the per-call one: unpack it inside the vmapped function.
jax.tree_util.register_pytree_node(
    PackedMask,
    lambda m: ((m.bits,), m.shape),
    lambda shape, leaves: PackedMask(leaves[0], shape),
)


def _check_array(x: Any, name: str) -> None:
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{name} must have a real floating dtype (float16, bfloat16, float32, float64), "
            f"got dtype {x.dtype}; convert it first, e.g. {name}.astype(jnp.float32)"
        )


def static_p(p: Any) -> float:
    """``p`` as a checked Python float; a traced ``p`` is refused with the fix."""
    if is_traced(p):
        raise TypeError(
            "p is a traced value; dropkit needs p as a static Python float (its threshold "
            "is part of the compiled computation): mark it static, e.g. "
            "jax.jit(f, static_argnames='p'), or close over it"
        )
    if isinstance(p, jax.Array) and p.ndim == 0 and not jnp.issubdtype(p.dtype, jnp.bool_):
        p = float(p)  # a concrete scalar array: its value is known here
    return check_p(p)


def _static_training(training: Any) -> bool:
    if is_traced(training):
        raise TypeError(
            "training is a traced value; pass it as a static Python bool (e.g. "
            "jax.jit(f, static_argnames='training'))"
        )
    return check_flag(training, "training")


@partial(jax.jit, static_argnums=(1,))
def _keep(words: Any, shape: tuple[int, ...], threshold: Any) -> Any:
    # the threshold is an argument, not a constant: eagerly, a new p compiles nothing
    bits = random_bits_elementwise(jnp, (words[0], words[1]), (words[2], words[3]), shape)
    return bits >= threshold


def keep_mask(words: Any, shape: tuple[int, ...], threshold: int) -> Any:
    """The boolean keep-mask of ``shape`` for the draw ``words`` (``uint32[4]``, traceable).

    One fused XLA loop (jitted, so eager calls are fused too): every element
    computes its own Philox block (:func:`dropkit.philox.random_bits_elementwise`).
    """
    if threshold >= _FULL:
        return jnp.zeros(shape, dtype=bool)
    return _keep(jnp.asarray(words), tuple(shape), jnp.asarray(int(threshold), dtype=jnp.uint32))


def _relu_keep(x: Any) -> Any:
    """Where ReLU passes ``x``: not ``x <= 0``, so NaN passes (as ``jax.nn.relu``)."""
    return jnp.logical_not(x <= 0)


def _check_scale(x: Any, scale: float, p: float) -> None:
    """Refuse a training scale that is not finite in ``x``'s dtype (float16, p near 1)."""
    if scale > 1.0:
        check_scale(scale, p, x.dtype, jnp.finfo(x.dtype))


def _apply(x: Any, keep: Any, scale: float) -> Any:
    # No multiplication for a scale of 1, as the core's ops: XLA's CPU code flushes
    # subnormals in a product, so ``x * 1`` would zero a subnormal gradient that the
    # other paths pass through (dropkit.testing.subnormals states the rule).
    # Jitted, the factor an argument: eagerly one compilation per shape and dtype, not one
    # per operation and p.
    if scale == 1.0:
        return _kept(x, keep)
    return _kept_scaled(x, keep, jnp.asarray(scale, dtype=x.dtype))  # rounded as the core does


@jax.jit
def _kept(x: Any, keep: Any) -> Any:
    return jnp.where(keep, x, jnp.zeros((), dtype=x.dtype))


@jax.jit
def _kept_scaled(x: Any, keep: Any, factor: Any) -> Any:
    return jnp.where(keep, x * factor, jnp.zeros((), dtype=x.dtype))


_REMAT = partial(jax.checkpoint, policy=jax.checkpoint_policies.nothing_saveable)


@partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5))
def _drop(x: Any, words: Any, shape: tuple, threshold: int, scale: float, relu: bool) -> Any:
    keep = keep_mask(words, shape, threshold)
    if relu:
        keep = keep & _relu_keep(x)
    return _apply(x, keep, scale)


@_drop.defjvp
def _drop_jvp(shape: tuple, threshold: int, scale: float, relu: bool, primals, tangents):
    # The op is linear in x for a fixed mask, so its tangent is the op on the
    # tangent. Wrapped in a remat that saves nothing but its inputs: reverse
    # mode (the transpose of this tangent) keeps only the 16-byte draw and
    # regenerates the mask; the ReLU form keeps its output h, which the next
    # layer holds anyway. Forward mode (jvp, jacfwd, hessian) works as well.
    x, words = primals
    dx, _ = tangents
    y = _drop(x, words, shape, threshold, scale, relu)
    if relu:
        dy = _REMAT(lambda t, h: _apply(t, _relu_keep(h), scale))(dx, y)
    else:
        dy = _REMAT(lambda t, w: _apply(t, keep_mask(w, shape, threshold), scale))(dx, words)
    return y, dy


def _words_array(rng: JaxRNGLike) -> Any:
    return jnp.stack(seed_words(rng))


def dropout(
    x: Any,
    p: Any,
    *,
    noise_shape: tuple[int | None, ...] | None = None,
    rng: JaxRNGLike = None,
    training: bool = True,
    mode: str = "inverted",
    relu: bool = False,
    return_mask: Any = False,
    inplace: bool = False,
) -> Any:
    """Dropout (of ``relu(x)`` if ``relu``) of a JAX array; see :func:`dropkit.dropout`."""
    _check_array(x, "x")
    p = static_p(p)
    mode = check_mode(mode)
    shape = check_noise_shape(noise_shape, tuple(x.shape))
    if check_flag(inplace, "inplace"):
        raise TypeError(
            "inplace=True on a JAX array: JAX arrays are immutable; use the returned array"
        )
    training = _static_training(training)
    relu = check_flag(relu, "relu")
    return_mask = check_return_mask(return_mask)
    if not training or p == 0.0:
        factor = 1.0 if training else eval_factor(p, mode)
        zero = jnp.zeros((), dtype=x.dtype)
        y = x if factor == 1.0 else x * jnp.asarray(factor, dtype=x.dtype)
        if relu:
            y = jnp.where(_relu_keep(x), y, zero)
        return (y, returned_mask(jnp.ones(shape, dtype=bool), return_mask)) if return_mask else y
    threshold = _FULL if p == 1.0 else keep_threshold(p)
    scale = 0.0 if p == 1.0 else train_scale(p, mode)
    _check_scale(x, scale, p)
    # p = 1 draws nothing (like the core)
    words = jnp.zeros(4, dtype=jnp.uint32) if p == 1.0 else _words_array(rng)
    if return_mask:
        mask = keep_mask(words, shape, threshold)
        keep = mask & _relu_keep(x) if relu else mask
        return _apply(x, keep, scale), returned_mask(mask, return_mask)
    return _drop(x, words, shape, threshold, scale, relu)


def dropout_backward(
    grad: Any,
    p: Any,
    *,
    noise_shape: tuple[int | None, ...] | None = None,
    mask: Any = None,
    rng: JaxRNGLike = None,
    training: bool = True,
    mode: str = "inverted",
) -> Any:
    """Gradient of :func:`dropout`; see :func:`dropkit.dropout_backward`."""
    _check_array(grad, "grad")
    p = static_p(p)
    mode = check_mode(mode)
    shape = check_noise_shape(noise_shape, tuple(grad.shape))
    training = _static_training(training)
    if not training or p == 0.0:
        factor = 1.0 if training else eval_factor(p, mode)
        return grad if factor == 1.0 else grad * jnp.asarray(factor, dtype=grad.dtype)
    if p == 1.0:
        return jnp.zeros_like(grad)
    check_backward_source(mask, rng)
    threshold, scale = keep_threshold(p), train_scale(p, mode)
    _check_scale(grad, scale, p)
    if mask is None:
        return _drop(grad, _words_array(rng), shape, threshold, scale, False)
    if isinstance(mask, PackedMask):
        mask = unpack_mask(mask)
    if not isinstance(mask, jax.Array):
        library = type(mask).__module__.partition(".")[0]
        raise TypeError(
            f"grad and mask come from different array libraries (jax and {library}); "
            "convert one of them"
        )
    if mask.dtype != bool:
        raise TypeError(f"mask must be a boolean array (True = kept), got dtype {mask.dtype}")
    check_noise_shape(tuple(mask.shape), tuple(grad.shape))
    return _apply(grad, mask, scale)


def relu_dropout_backward(
    grad: Any, h: Any, p: Any, *, training: bool = True, mode: str = "inverted"
) -> Any:
    """Gradient of ReLU-dropout from its output ``h``; see :func:`dropkit.relu_dropout_backward`."""
    _check_array(grad, "grad")
    if not isinstance(h, jax.Array):
        library = type(h).__module__.partition(".")[0]
        raise TypeError(
            f"grad and h come from different array libraries (jax and {library}); "
            "convert one of them"
        )
    training = _static_training(training)
    p = static_p(p)
    scale = relu_backward_factor(grad, h, p, training=training, mode=mode)
    if scale is None:
        return jnp.zeros_like(grad)
    _check_scale(grad, scale, p)
    return _apply(grad, _relu_keep(h), scale)


def family_bits(rng: JaxRNGLike, x: Any, n: int) -> Any:
    """The ``n`` words of one draw for the dropout family's ops (the backend's hook).

    ``rng`` is a JAX key (traced under ``jax.jit``), a
    :class:`~dropkit_jax.keys.Draw` or an int seed, mapped as for
    :func:`dropout` (:mod:`dropkit_jax.keys`); the words equal every other
    backend's for that draw.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from dropkit import get_backend
    >>> w = family_bits(jax.random.PRNGKey(5), jnp.ones(3), 6)
    >>> bool(np.array_equal(np.asarray(w), get_backend("numpy").random_bits(5, 0, 6)))
    True
    """
    return _family_words(jnp.stack(seed_words(rng)), int(n))


@partial(jax.jit, static_argnums=(1,))
def _family_words(words: Any, n: int) -> Any:
    # jitted: one compilation per n (eagerly, each of Philox's array operations
    # would be dispatched, and compiled per shape, on its own)
    return random_bits_words(jnp, (words[0], words[1]), (words[2], words[3]), n)
