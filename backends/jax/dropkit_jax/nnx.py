"""dropkit dropout as a Flax NNX module (``pip install 'dropkit-jax[flax]'``).

:class:`Dropout` is a drop-in replacement for ``flax.nnx.Dropout`` (a
subclass: the same constructor, ``rngs`` handling, ``.train()``/``.eval()``,
``deterministic`` and ``nnx.view``) whose mask is dropkit's: the key drawn
from the ``dropout`` stream maps to dropkit's key as documented in
:mod:`dropkit_jax.keys`, so the mask equals the NumPy backend's for that key,
and the backward regenerates it instead of storing it.

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

from . import functional
from ._shapes import noise_shape
from .keys import is_traced

__all__ = ["Dropout"]


def _check_rate(rate: Any) -> float:
    try:
        return functional.static_p(rate)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"Dropout's rate: {exc}") from None


class Dropout(nnx.Dropout):
    """``flax.nnx.Dropout`` with dropkit's portable, regenerated mask.

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
                "Dropout has no deterministic flag: pass deterministic=True/False to the "
                "constructor or the call, or use .train() / .eval()"
            )
        if is_traced(deterministic):
            raise TypeError(
                "deterministic is a traced value; it must be a static Python bool (set it "
                "with .train() / .eval(), or mark it static in jax.jit)"
            )
        rate = _check_rate(self.rate)
        if deterministic or rate == 0.0:  # as in Flax: the input as is, no key drawn
            return inputs
        if rate == 1.0:  # no key drawn either (Flax's stream count stays the same)
            return functional.dropout(inputs, rate, rng=None)
        source = self.rngs if rngs is None else rngs
        if source is None:
            raise ValueError(
                "Dropout is training (deterministic=False) but has no key source: pass "
                "rngs=nnx.Rngs(dropout=seed) to the constructor, or rngs= to the call"
            )
        if isinstance(source, nnx.Rngs):
            key = source[self.rng_collection]()
        elif isinstance(source, nnx.RngStream):
            key = source()
        elif isinstance(source, jax.Array):
            key = source
        else:
            raise TypeError(
                f"rngs must be an nnx.Rngs, an nnx.RngStream or a JAX key, got "
                f"{type(source).__name__}; for a fixed seed pass jax.random.key(seed)"
            )
        noise = noise_shape(tuple(inputs.shape), self.broadcast_dims)
        return functional.dropout(inputs, self.rate, noise_shape=noise, rng=key)
