"""dropkit dropout as an Equinox module (``pip install 'dropkit-jax[equinox]'``).

:class:`Dropout` has the interface of ``equinox.nn.Dropout``:
``Dropout(p, inference=False)``, ``__call__(x, *, key=None, inference=None)``,
and ``equinox.nn.inference_mode`` switches it off. The mask is dropkit's: a
JAX key maps to dropkit's key as documented in :mod:`dropkit_jax.keys` (the
mask equals the NumPy backend's for that key); the backward keeps it as packed
bits (``n / 8`` bytes) or, above :data:`dropkit_jax.keep.KEEP_PACKED_MAX`
elements, regenerates it.

The dropout family has the same interface: :class:`GaussianDropout`,
:class:`GaussianNoise`, :class:`AlphaDropout`, :class:`FeatureAlphaDropout`,
:class:`DropPath` and :class:`DropBlock2d` run the core's ops (:mod:`dropkit`)
with the key given to the call.

Examples
--------
>>> import jax, jax.numpy as jnp, equinox as eqx
>>> from dropkit_jax.equinox import Dropout
>>> layer = Dropout(0.5)
>>> y = layer(jnp.ones(4), key=jax.random.key(0))
>>> eqx.nn.inference_mode(layer)(jnp.ones(3)).tolist()
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    import equinox as eqx
except ImportError as exc:  # pragma: no cover - depends on the machine
    raise ImportError(
        "dropkit_jax.equinox needs Equinox: pip install 'dropkit-jax[equinox]'"
    ) from exc

import jax

from dropkit import (
    alpha_dropout,
    drop_path,
    dropblock2d,
    dropout,
    feature_alpha_dropout,
    gaussian_dropout,
    gaussian_noise,
)
from dropkit.checks import check_flag, check_stddev
from dropkit.gaussian import gaussian_dropout_stddev
from dropkit.structured import check_block_size

from . import functional
from ._shapes import noise_shape
from .keys import is_traced

__all__ = [
    "AlphaDropout",
    "DropBlock2d",
    "DropPath",
    "Dropout",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
]

_STATIC_FIX = (
    "it must be a Python {kind}: under jax.jit use eqx.filter_jit instead (it keeps "
    "Python floats and bools static), and do not pass it as a JAX array"
)


class Dropout(eqx.Module):
    """``equinox.nn.Dropout`` with dropkit's portable mask.

    Parameters
    ----------
    p : float
        The DROP probability, in [0, 1] (a Python float: static under
        ``eqx.filter_jit``).
    inference : bool, optional
        True disables dropout; ``eqx.nn.inference_mode`` sets it.
    broadcast_dims : sequence of int, optional
        Axes that share one mask (e.g. ``(0,)`` for one mask over time).

    Examples
    --------
    >>> import jax, jax.numpy as jnp, numpy as np, dropkit
    >>> y = Dropout(0.3)(jnp.ones(8), key=jax.random.PRNGKey(7))
    >>> bool(np.all(np.asarray(y) == dropkit.dropout(np.ones(8, np.float32), 0.3, rng=7)))
    True
    """

    p: float = 0.5
    inference: bool = False
    broadcast_dims: tuple[int, ...] = eqx.field(static=True, default=())

    def __init__(
        self, p: float = 0.5, inference: bool = False, *, broadcast_dims: Sequence[int] = ()
    ) -> None:
        self.p = functional.static_p(p)
        self.inference = check_flag(inference, "inference")
        self.broadcast_dims = tuple(broadcast_dims)

    def __call__(
        self, x: Any, *, key: jax.Array | None = None, inference: bool | None = None
    ) -> jax.Array:
        """Apply dropout (inverted: kept units scaled by 1 / (1 - p)).

        Parameters
        ----------
        x : jax.Array
            A floating array.
        key : JAX key, optional
            Required when dropout is active.
        inference : bool or None, optional
            Overrides the module's flag for this call.

        Raises
        ------
        TypeError
            A traced ``p`` or ``inference`` (under ``jax.jit``), or a bad key.
        RuntimeError
            No key while dropout is active.
        """
        if inference is None:
            inference = self.inference
        if is_traced(inference) or is_traced(self.p):
            name, kind = ("inference", "bool") if is_traced(inference) else ("p", "float")
            raise TypeError(f"Dropout's {name} is a traced value; {_STATIC_FIX.format(kind=kind)}")
        inference = check_flag(inference, "inference")
        p = functional.static_p(self.p)
        if inference or p == 0.0:  # as in Equinox: the input as is
            return x
        if key is None:
            raise RuntimeError(
                "Dropout requires a key when running in non-inference mode: pass key=..., "
                "or switch it off with eqx.nn.inference_mode"
            )
        noise = noise_shape(tuple(x.shape), self.broadcast_dims)
        return dropout(x, p, noise_shape=noise, rng=key)


def _active(module: Any, inference: Any, value: float, key: Any, *, drops: bool = True) -> bool:
    """Whether the op runs: the flags checked as :class:`Dropout` checks them.

    A dropping op (``drops``) with ``p = 1`` runs without a key (its output is 0).
    """
    if inference is None:
        inference = module.inference
    if is_traced(inference) or is_traced(value):
        name, kind = ("inference", "bool") if is_traced(inference) else ("p", "float")
        raise TypeError(
            f"{type(module).__name__}'s {name} is a traced value; {_STATIC_FIX.format(kind=kind)}"
        )
    if check_flag(inference, "inference") or value == 0.0:
        return False
    if key is None and not (drops and value == 1.0):
        raise RuntimeError(
            f"{type(module).__name__} requires a key when running in non-inference mode: pass "
            "key=..., or switch it off with eqx.nn.inference_mode"
        )
    return True


class GaussianDropout(eqx.Module):
    """Multiplicative Gaussian noise of mean 1, variance ``p / (1 - p)``; see :func:`dropkit.gaussian_dropout`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, numpy as np, dropkit
    >>> y = GaussianDropout(0.2)(jnp.ones(4), key=jax.random.key(3))
    >>> bool(np.allclose(y, dropkit.gaussian_dropout(np.ones(4), 0.2, rng=3), rtol=1e-5))
    True
    """  # noqa: E501

    p: float = 0.5
    inference: bool = False

    def __init__(self, p: float = 0.5, inference: bool = False) -> None:
        self.p = functional.static_p(p)
        gaussian_dropout_stddev(self.p)
        self.inference = check_flag(inference, "inference")

    def __call__(
        self, x: Any, *, key: jax.Array | None = None, inference: bool | None = None
    ) -> jax.Array:
        """Apply the noise (training), or return ``x`` (inference)."""
        if not _active(self, inference, self.p, key, drops=False):
            return x
        return gaussian_dropout(x, functional.static_p(self.p), rng=key)


class GaussianNoise(eqx.Module):
    """Additive Gaussian noise of standard deviation ``stddev``; see :func:`dropkit.gaussian_noise`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, equinox as eqx
    >>> layer = GaussianNoise(0.1)
    >>> eqx.nn.inference_mode(layer)(jnp.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    stddev: float = 0.1
    inference: bool = False

    def __init__(self, stddev: float = 0.1, inference: bool = False) -> None:
        self.stddev = check_stddev(stddev)
        self.inference = check_flag(inference, "inference")

    def __call__(
        self, x: Any, *, key: jax.Array | None = None, inference: bool | None = None
    ) -> jax.Array:
        """Add the noise (training), or return ``x`` (inference)."""
        if not _active(self, inference, self.stddev, key, drops=False):
            return x
        return gaussian_noise(x, self.stddev, rng=key)


class AlphaDropout(eqx.Module):
    """Alpha dropout for SELU networks; see :func:`dropkit.alpha_dropout`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, numpy as np, dropkit
    >>> y = AlphaDropout(0.2)(jnp.ones(6), key=jax.random.key(3))
    >>> bool(np.allclose(y, dropkit.alpha_dropout(np.ones(6), 0.2, rng=3), rtol=1e-6))
    True
    """

    p: float = 0.5
    inference: bool = False

    def __init__(self, p: float = 0.5, inference: bool = False) -> None:
        self.p = functional.static_p(p)
        self.inference = check_flag(inference, "inference")

    def __call__(
        self, x: Any, *, key: jax.Array | None = None, inference: bool | None = None
    ) -> jax.Array:
        """Apply alpha dropout (training), or return ``x`` (inference)."""
        if not _active(self, inference, self.p, key):
            return x
        return alpha_dropout(x, self.p, rng=key)


class FeatureAlphaDropout(eqx.Module):
    """Alpha dropout of whole channels; see :func:`dropkit.feature_alpha_dropout`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> y = FeatureAlphaDropout(0.5)(jnp.ones((2, 4, 5)), key=jax.random.key(0))
    >>> bool(jnp.all(y.min(axis=2) == y.max(axis=2)))
    True
    """

    p: float = 0.5
    inference: bool = False
    channel_axis: int = eqx.field(static=True, default=1)

    def __init__(self, p: float = 0.5, inference: bool = False, *, channel_axis: int = 1) -> None:
        self.p = functional.static_p(p)
        self.inference = check_flag(inference, "inference")
        self.channel_axis = channel_axis

    def __call__(
        self, x: Any, *, key: jax.Array | None = None, inference: bool | None = None
    ) -> jax.Array:
        """Apply feature alpha dropout (training), or return ``x`` (inference)."""
        if not _active(self, inference, self.p, key):
            return x
        return feature_alpha_dropout(x, self.p, channel_axis=self.channel_axis, rng=key)


class DropPath(eqx.Module):
    """Stochastic depth: whole samples (axis 0) dropped; see :func:`dropkit.drop_path`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> y = DropPath(0.5)(jnp.ones((6, 3)), key=jax.random.key(0))
    >>> bool(jnp.all(y.min(axis=1) == y.max(axis=1)))
    True
    """

    p: float = 0.5
    inference: bool = False

    def __init__(self, p: float = 0.5, inference: bool = False) -> None:
        self.p = functional.static_p(p)
        self.inference = check_flag(inference, "inference")

    def __call__(
        self, x: Any, *, key: jax.Array | None = None, inference: bool | None = None
    ) -> jax.Array:
        """Drop whole samples (training), or return ``x`` (inference)."""
        if not _active(self, inference, self.p, key):
            return x
        return drop_path(x, self.p, rng=key)


class DropBlock2d(eqx.Module):
    """DropBlock of (N, C, H, W) inputs; see :func:`dropkit.dropblock2d`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> y = DropBlock2d(0.2, block_size=3)(jnp.ones((2, 3, 8, 8)), key=jax.random.key(1))
    >>> y.shape
    (2, 3, 8, 8)
    """

    p: float = 0.1
    inference: bool = False
    block_size: int = eqx.field(static=True, default=3)
    channel_axis: int = eqx.field(static=True, default=1)

    def __init__(
        self,
        p: float = 0.1,
        inference: bool = False,
        *,
        block_size: int,
        channel_axis: int = 1,
    ) -> None:
        self.p = functional.static_p(p)
        self.inference = check_flag(inference, "inference")
        self.block_size = check_block_size(block_size)
        self.channel_axis = channel_axis

    def __call__(
        self, x: Any, *, key: jax.Array | None = None, inference: bool | None = None
    ) -> jax.Array:
        """Drop blocks (training), or return ``x`` (inference)."""
        if not _active(self, inference, self.p, key):
            return x
        return dropblock2d(
            x, self.p, block_size=self.block_size, channel_axis=self.channel_axis, rng=key
        )
