"""dropkit dropout as a Flax NNX module (``pip install 'dropkit-jax[flax]'``).

:class:`Dropout` is a drop-in replacement for ``flax.nnx.Dropout`` (a
subclass: the same constructor, ``rngs`` handling, ``.train()``/``.eval()``,
``deterministic`` and ``nnx.view``) whose mask is dropkit's: the key drawn
from the ``dropout`` stream maps to dropkit's key as documented in
:mod:`dropkit_jax.keys`, so the mask equals the NumPy backend's for that key,
and the backward keeps it as packed bits (``n / 8`` bytes) or, above
:data:`dropkit_jax.keep.KEEP_PACKED_MAX` elements, regenerates it.

The dropout family has the same form (the same ``rngs``, ``deterministic``,
``.train()`` / ``.eval()``): :class:`GaussianDropout`, :class:`GaussianNoise`,
:class:`AlphaDropout`, :class:`FeatureAlphaDropout`, :class:`DropPath` and
:class:`DropBlock2d` run the core's ops (:mod:`dropkit`) with the key drawn
from the stream, so their noise equals the NumPy backend's for that key.

Examples
--------
>>> import jax.numpy as jnp
>>> from flax import nnx
>>> from dropkit_jax.nnx import Dropout
>>> layer = Dropout(0.5, rngs=nnx.Rngs(dropout=0))
>>> y = layer(jnp.ones((2, 4)))
>>> sorted({float(v) for v in y.ravel()}) in ([0.0, 2.0], [0.0], [2.0])
True
>>> layer.eval()
>>> layer(jnp.ones(3)).tolist()
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from flax import nnx
except ImportError as exc:  # pragma: no cover - depends on the machine
    raise ImportError("dropkit_jax.nnx needs Flax: pip install 'dropkit-jax[flax]'") from exc

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
from dropkit.checks import check_stddev
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


def _check_rate(rate: Any) -> float:
    try:
        return functional.static_p(rate)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"Dropout's rate: {exc}") from None


class Dropout(nnx.Dropout):
    """``flax.nnx.Dropout`` with dropkit's portable mask.

    Parameters
    ----------
    rate : float
        The DROP probability, in [0, 1] (a static Python float).
    broadcast_dims : sequence of int, optional
        Axes that share one mask (e.g. ``(1,)`` for locked dropout over time).
    deterministic : bool or None, optional
        True disables dropout; ``.eval()`` and ``.train()`` set it.
    rng_collection : str, optional
        The ``nnx.Rngs`` stream the keys come from (``"dropout"``).
    rngs : nnx.Rngs or nnx.RngStream, optional
        Where keys come from; a call may pass its own.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, numpy as np, dropkit
    >>> from flax import nnx
    >>> layer = Dropout(0.3)
    >>> key = jax.random.key(7)
    >>> y = layer(jnp.ones(8), rngs=key)
    >>> bool(np.all(np.asarray(y) == dropkit.dropout(np.ones(8, np.float32), 0.3, rng=7)))
    True
    """

    def __init__(
        self,
        rate: float,
        *,
        broadcast_dims: Sequence[int] = (),
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs | nnx.RngStream | None = None,
    ) -> None:
        super().__init__(
            _check_rate(rate),
            broadcast_dims=broadcast_dims,
            deterministic=deterministic,
            rng_collection=rng_collection,
            rngs=rngs,
        )

    def __call__(
        self,
        inputs: Any,
        *,
        deterministic: bool | None = None,
        rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
    ) -> jax.Array:
        """Apply dropout (inverted: kept units scaled by 1 / (1 - rate)).

        Parameters
        ----------
        inputs : jax.Array
            A floating array.
        deterministic : bool or None, optional
            Overrides the module's flag for this call.
        rngs : nnx.Rngs, nnx.RngStream or JAX key, optional
            Overrides the module's stream for this call.

        Raises
        ------
        ValueError
            No ``deterministic`` anywhere, or no key source while training.
        TypeError
            A traced ``deterministic`` or ``rate`` (pass static Python values).
        """
        if deterministic is None:
            deterministic = self.deterministic
        if deterministic is None:
            raise ValueError(
                f"{type(self).__name__} has no deterministic flag: pass deterministic=True/False "
                "to the constructor or the call, or use .train() / .eval()"
            )
        if is_traced(deterministic):
            raise TypeError(
                "deterministic is a traced value; it must be a static Python bool (set it "
                "with .train() / .eval(), or mark it static in jax.jit)"
            )
        if deterministic or self._inactive():  # as in Flax: the input as is, no key drawn
            return inputs
        if self._keyless():  # no key drawn either (Flax's stream count stays the same)
            return self._apply(inputs, None)
        return self._apply(inputs, self._key(rngs))

    def _inactive(self) -> bool:
        return _check_rate(self.rate) == 0.0

    def _keyless(self) -> bool:
        return _check_rate(self.rate) == 1.0

    def _key(self, rngs: Any) -> jax.Array:
        source = self.rngs if rngs is None else rngs
        if source is None:
            raise ValueError(
                f"{type(self).__name__} is training (deterministic=False) but has no key "
                "source: pass rngs=nnx.Rngs(dropout=seed) to the constructor, or rngs= to the call"
            )
        if isinstance(source, nnx.Rngs):
            return source[self.rng_collection]()
        if isinstance(source, nnx.RngStream):
            return source()
        if isinstance(source, jax.Array):
            return source
        raise TypeError(
            f"rngs must be an nnx.Rngs, an nnx.RngStream or a JAX key, got "
            f"{type(source).__name__}; for a fixed seed pass jax.random.key(seed)"
        )

    def _apply(self, inputs: Any, key: Any) -> jax.Array:
        if key is None:
            return dropout(inputs, self.rate, rng=None)
        noise = noise_shape(tuple(inputs.shape), self.broadcast_dims)
        return dropout(inputs, self.rate, noise_shape=noise, rng=key)


class _Family(Dropout):
    """A module of the dropout family: :class:`Dropout`'s keys and flags, another op.

    The op is the core's (:mod:`dropkit`), written once against the array API:
    on JAX arrays it takes the key as a traced argument under ``jax.jit`` and
    ``jax.grad`` differentiates it.
    """

    def __init__(
        self,
        rate: float,
        *,
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs | nnx.RngStream | None = None,
    ) -> None:
        super().__init__(
            rate, deterministic=deterministic, rng_collection=rng_collection, rngs=rngs
        )


class GaussianDropout(_Family):
    """Multiplicative Gaussian noise of mean 1, variance ``rate / (1 - rate)``.

    See :func:`dropkit.gaussian_dropout`; ``rate = 1`` is refused (infinite variance).

    Examples
    --------
    >>> import jax, jax.numpy as jnp, numpy as np, dropkit
    >>> y = GaussianDropout(0.2)(jnp.ones(4), rngs=jax.random.key(3))
    >>> bool(np.allclose(y, dropkit.gaussian_dropout(np.ones(4), 0.2, rng=3), rtol=1e-5))
    True
    """

    def __init__(self, rate: float, **kwargs: Any) -> None:
        gaussian_dropout_stddev(_check_rate(rate))
        super().__init__(rate, **kwargs)

    def _apply(self, inputs: Any, key: Any) -> jax.Array:
        return gaussian_dropout(inputs, self.rate, rng=key)


class GaussianNoise(_Family):
    """Additive Gaussian noise of standard deviation ``stddev`` in training.

    See :func:`dropkit.gaussian_noise`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> layer = GaussianNoise(0.1, deterministic=True)
    >>> layer(jnp.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, stddev: float, **kwargs: Any) -> None:
        super().__init__(0.0, **kwargs)
        self.stddev = check_stddev(stddev)

    def _inactive(self) -> bool:
        return check_stddev(self.stddev) == 0.0

    def _keyless(self) -> bool:
        return False

    def _apply(self, inputs: Any, key: Any) -> jax.Array:
        return gaussian_noise(inputs, self.stddev, rng=key)


class AlphaDropout(_Family):
    """Alpha dropout for SELU networks; see :func:`dropkit.alpha_dropout`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, numpy as np, dropkit
    >>> y = AlphaDropout(0.2)(jnp.ones(6), rngs=jax.random.key(3))
    >>> bool(np.allclose(y, dropkit.alpha_dropout(np.ones(6), 0.2, rng=3), rtol=1e-6))
    True
    """

    def _apply(self, inputs: Any, key: Any) -> jax.Array:
        return alpha_dropout(inputs, self.rate, rng=key)


class FeatureAlphaDropout(_Family):
    """Alpha dropout of whole channels; see :func:`dropkit.feature_alpha_dropout`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> y = FeatureAlphaDropout(0.5)(jnp.ones((2, 4, 5)), rngs=jax.random.key(0))
    >>> bool(jnp.all(y.min(axis=2) == y.max(axis=2)))
    True
    """

    def __init__(self, rate: float, *, channel_axis: int = 1, **kwargs: Any) -> None:
        super().__init__(rate, **kwargs)
        self.channel_axis = channel_axis

    def _apply(self, inputs: Any, key: Any) -> jax.Array:
        return feature_alpha_dropout(inputs, self.rate, channel_axis=self.channel_axis, rng=key)


class DropPath(_Family):
    """Stochastic depth: whole samples (axis 0) dropped; see :func:`dropkit.drop_path`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> y = DropPath(0.5)(jnp.ones((6, 3)), rngs=jax.random.key(0))
    >>> bool(jnp.all(y.min(axis=1) == y.max(axis=1)))
    True
    """

    def _apply(self, inputs: Any, key: Any) -> jax.Array:
        return drop_path(inputs, self.rate, rng=key)


class DropBlock2d(_Family):
    """DropBlock of (N, C, H, W) inputs (or (N, H, W, C) with ``channel_axis=-1``).

    See :func:`dropkit.dropblock2d`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, numpy as np, dropkit
    >>> x = jnp.ones((2, 3, 8, 8))
    >>> y = DropBlock2d(0.2, block_size=3)(x, rngs=jax.random.key(1))
    >>> bool(np.all(np.asarray(y) == dropkit.dropblock2d(np.ones((2, 3, 8, 8), np.float32), 0.2, block_size=3, rng=1)))
    True
    """  # noqa: E501

    def __init__(
        self, rate: float, *, block_size: int, channel_axis: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(rate, **kwargs)
        self.block_size = check_block_size(block_size)
        self.channel_axis = channel_axis

    def _apply(self, inputs: Any, key: Any) -> jax.Array:
        return dropblock2d(
            inputs, self.rate, block_size=self.block_size, channel_axis=self.channel_axis, rng=key
        )
