"""The loaded JAX backend.

JAX without x64 has no 64-bit integers; Philox needs none: the core's
reference uses 16-bit limbs in uint32, and this backend's block function
(:func:`dropkit_jax.bits.philox4x32`, the same words) JAX's wrapping uint32
multiply. JAX arrays are immutable: ``inplace=True`` is refused, and the
training loop takes the functional path. The ops reduce, in the core, to this
backend's ``draw`` (JAX keys, traced under ``jit``) and ``mask_scale`` (a
``custom_jvp`` whose backward keeps the mask packed, or regenerates it above a
size), in :mod:`dropkit_jax.functional`.
"""

from __future__ import annotations

from typing import Any

try:
    import jax
    import jax.numpy as jnp
except ImportError as exc:  # pragma: no cover - depends on the machine
    raise ImportError("JAX is not installed: pip install 'jax[cpu]'") from exc

from . import functional

__all__ = ["JaxBackend"]


class JaxBackend:
    """JAX arrays on the devices JAX sees.

    Examples
    --------
    >>> int(JaxBackend().random_bits((0, 0), 1)[0]) == 0x6627E8D5
    True
    """

    name = "jax"
    xp = jnp

    draw = staticmethod(functional.draw)
    random_bits = staticmethod(functional.random_bits)
    mask_scale = staticmethod(functional.mask_scale)

    def devices(self) -> list[Any]:
        """JAX's devices."""
        return list(jax.devices())

    def __repr__(self) -> str:
        return f"<dropkit backend 'jax' (jax {jax.__version__})>"
