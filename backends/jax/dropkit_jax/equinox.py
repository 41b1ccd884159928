"""dropkit dropout as an Equinox module (``pip install 'dropkit-jax[equinox]'``).

:class:`Dropout` has the interface of ``equinox.nn.Dropout``:
``Dropout(p, inference=False)``, ``__call__(x, *, key=None, inference=None)``,
and ``equinox.nn.inference_mode`` switches it off. The mask is dropkit's: a
JAX key maps to dropkit's key as documented in :mod:`dropkit_jax.keys` (the
mask equals the NumPy backend's for that key) and the backward regenerates it.

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

from dropkit._arrays import check_flag

from . import functional
from ._shapes import noise_shape
from .keys import is_traced

__all__ = ["Dropout"]

_STATIC_FIX = (
    "it must be a Python {kind}: under jax.jit use eqx.filter_jit instead (it keeps "
    "Python floats and bools static), and do not pass it as a JAX array"
)


class Dropout(eqx.Module):
    """``equinox.nn.Dropout`` with dropkit's portable, regenerated mask.

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
        return functional.dropout(x, p, noise_shape=noise, rng=key)
