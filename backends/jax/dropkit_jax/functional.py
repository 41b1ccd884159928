"""The JAX backend's primitive and key handling: traced keys, ``custom_jvp``, a packed mask.

The core owns the ops' semantics (validation, modes, evaluation, ``p = 0`` and
``p = 1``, returned masks, which mask a backward uses) and reduces them to
these members of the JAX backend:

- :func:`draw`: a JAX key, a :class:`~dropkit_jax.keys.Draw` or an int seed to
  four ``uint32`` words (:mod:`dropkit_jax.keys`), so under ``jax.jit`` the
  key is an argument: one compilation for every key;
- :func:`mask_scale`: a ``jax.custom_jvp`` (so forward mode works too). The
  mask is computed as 1-bit packed words (:mod:`dropkit_jax.keep`); reverse
  mode keeps those words (``n / 8`` bytes) up to
  :data:`~dropkit_jax.keep.KEEP_PACKED_MAX` elements and above that only the
  16-byte draw, regenerating the mask (the ReLU variant keeps its output, which
  the next layer holds anyway);
- :func:`random_bits`: the words of a draw, jitted (traceable).

``p``, ``training``, ``mode`` and ``noise_shape`` are static Python values (the
core refuses a traced ``p`` with the fix in the message).

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

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dropkit import philox
from dropkit.checks import check_p
from dropkit.packed import PackedMask
from dropkit.philox import random_bits_elementwise

from . import bits
from .keep import keeps_packed, packed_keep, packs, unpack
from .keys import JaxRNGLike, is_traced, seed_words

__all__ = ["draw", "keep_mask", "mask_scale", "random_bits", "static_p"]

_FULL = 1 << 32

# A packed mask is a pytree (its bits the leaf, its shape static), so it can be
# returned from jit, vmap and scan. Under vmap the bits gain the batch axis while
# the shape stays the per-call one: unpack it inside the vmapped function.
jax.tree_util.register_pytree_node(
    PackedMask,
    lambda m: ((m.bits,), m.shape),
    lambda shape, leaves: PackedMask(leaves[0], shape),
)


def static_p(p: Any) -> float:
    """``p`` as a checked Python float; a traced ``p`` is refused with the fix."""
    return check_p(p)


def draw(rng: JaxRNGLike, like: Any) -> Any:
    """The draw of ``rng`` as ``uint32[4]`` (traceable; see :mod:`dropkit_jax.keys`).

    Examples
    --------
    >>> [int(w) for w in draw(jax.random.PRNGKey(7), None)]
    [7, 0, 0, 0]

    Raises
    ------
    ValueError
        ``rng`` (a key) and ``like`` (the input) both committed to devices, other ones
        (JAX would refuse to combine them, naming dropkit's internals).
    """
    if isinstance(rng, jax.Array) and isinstance(like, jax.Array):
        _check_devices(rng, like)
    return jnp.stack(seed_words(rng))


def _check_devices(key: jax.Array, x: jax.Array) -> None:
    if is_traced(key, x) or not (key.committed and x.committed):
        return  # traced: JAX places them; uncommitted: JAX moves the key to the input
    if key.devices() != x.devices():
        where = ", ".join(sorted(str(d) for d in key.devices()))
        there = ", ".join(sorted(str(d) for d in x.devices()))
        raise ValueError(
            f"the key is on {where} but the input is on {there}: put the key where the input "
            "is (jax.device_put(key, x.sharding)), or make it there (nnx.Rngs / "
            "jax.random.key under jax.default_device)"
        )


@partial(jax.jit, static_argnums=(1,))
def _words(words: Any, n: int) -> Any:
    # jitted: one compilation per n (eagerly, each of Philox's array operations
    # would be dispatched, and compiled per shape, on its own). Element-wise: the
    # four-word interleave of random_bits_words is a transpose XLA's CPU code runs
    # slowly, and under vmap it took 15.7 s to compile (this form: 0.2 s).
    return random_bits_elementwise(jnp, (words[0], words[1]), (words[2], words[3]), (n,))


def random_bits(draw: Any, n: int, *, offset: int = 0, device: Any = None) -> Any:
    """Philox words of elements ``offset .. offset + n - 1`` (uint32) of a draw.

    ``draw`` is ``(key, counter)`` (Python ints) or the ``uint32[4]`` words of
    :func:`draw` (possibly traced).

    Examples
    --------
    >>> import numpy as np
    >>> from dropkit import get_backend
    >>> w = random_bits(draw(jax.random.PRNGKey(5), None), 6)
    >>> bool(np.array_equal(np.asarray(w), get_backend("numpy").random_bits((5, 0), 6)))
    True
    """
    if isinstance(draw, tuple) and len(draw) == 2:
        key, counter = draw
        words = bits.random_bits(key, counter, n, offset=offset)  # compiled per size class
        if words is None:
            return philox.random_bits(jnp, key, counter, n, offset=offset, device=device)
        return words if device is None else jax.device_put(words, device)
    if offset:
        return _words(jnp.asarray(draw), int(n) + int(offset))[int(offset) :]
    return _words(jnp.asarray(draw), int(n))


@partial(jax.jit, static_argnums=(1,))
def _keep(words: Any, shape: tuple[int, ...], threshold: Any) -> Any:
    # the threshold is an argument, not a constant: eagerly, a new p compiles nothing
    bits = random_bits_elementwise(jnp, (words[0], words[1]), (words[2], words[3]), shape)
    return bits >= threshold


def _threshold(threshold: int) -> Any:
    return jnp.asarray(int(threshold), dtype=jnp.uint32)


def keep_mask(words: Any, shape: tuple[int, ...], threshold: int) -> Any:
    """The boolean keep-mask of ``shape`` for the draw ``words`` (``uint32[4]``, traceable).

    Jitted, so eager calls are fused too. A known size up to ``2**32`` elements:
    from packed words, each Philox block computed once (:mod:`dropkit_jax.keep`);
    a symbolic or larger one: one element-wise loop, every element computing its
    own block (:func:`dropkit.philox.random_bits_elementwise`).

    Examples
    --------
    >>> words = jnp.asarray([5, 0, 0, 0], dtype=jnp.uint32)
    >>> [bool(k) for k in keep_mask(words, (6,), 2**31)]
    [True, False, True, True, False, False]
    """
    if threshold >= _FULL:
        return jnp.zeros(shape, dtype=bool)
    words = jnp.asarray(words)
    if packs(shape):
        return unpack(packed_keep(words, math.prod(shape), _threshold(threshold)), tuple(shape))
    return _keep(words, tuple(shape), _threshold(threshold))


def _relu_keep(x: Any) -> Any:
    """Where ReLU passes ``x``: not ``x <= 0``, so NaN passes (as ``jax.nn.relu``)."""
    return jnp.logical_not(x <= 0)


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
    # tangent, with what reverse mode (its transpose) keeps chosen here:
    # - the ReLU form: its output h (which the next layer holds anyway);
    # - a mask of up to KEEP_PACKED_MAX elements: its packed words (n / 8 bytes),
    #   computed once for y and the tangent (unpacked inside a remat, so the
    #   packed words, not a boolean mask, are the residual);
    # - otherwise the 16-byte draw: a remat that saves nothing regenerates the mask.
    # Forward mode (jvp, jacfwd, hessian) works in each.
    x, words = primals
    dx, _ = tangents
    if relu:
        y = _drop(x, words, shape, threshold, scale, relu)
        return y, _REMAT(lambda t, h: _apply(t, _relu_keep(h), scale))(dx, y)
    if threshold < _FULL and keeps_packed(shape):
        packed = packed_keep(jnp.asarray(words), math.prod(shape), _threshold(threshold))
        y = _apply(x, unpack(packed, shape), scale)
        return y, _REMAT(lambda t, m: _apply(t, unpack(m, shape), scale))(dx, packed)
    y = _drop(x, words, shape, threshold, scale, relu)
    return y, _REMAT(lambda t, w: _apply(t, keep_mask(w, shape, threshold), scale))(dx, words)


def mask_scale(
    x: Any,
    draw: Any,
    *,
    noise_shape: tuple[int, ...],
    threshold: int,
    scale: float,
    relu: Any = False,
    out: Any = None,
) -> Any:
    """The primitive as the ``custom_jvp`` (see :class:`dropkit.MasksAndScales`); None to decline.

    Declines the backward's gate on ``h`` and calls without a draw: the core's
    reference (``jnp`` operations) serves them. (JAX arrays are immutable: the
    core never asks for ``out``.)

    Examples
    --------
    >>> y = mask_scale(jnp.ones(4), (0, 0), noise_shape=(4,), threshold=2**31, scale=2.0)
    >>> [float(v) for v in y]
    [0.0, 2.0, 2.0, 2.0]
    """
    if draw is None or out is not None or not isinstance(relu, bool):
        return None
    if isinstance(draw, tuple):
        draw = jnp.asarray([*philox.split64(draw[0]), *philox.split64(draw[1])], dtype=jnp.uint32)
    shape = tuple(_dim(n) for n in noise_shape)
    return _drop(x, draw, shape, int(threshold), float(scale), relu)


def _dim(n: Any) -> Any:
    """A dimension as an int; a symbolic one (``jax.export``) as it is."""
    return int(n) if isinstance(n, (int, np.integer)) else n
