"""The loaded JAX backend.

JAX without x64 has no 64-bit integers; the core's reference Philox needs none
(16-bit limbs in uint32, large constants entered as uint32 arrays), so this
backend uses it as is. JAX arrays are immutable: ``inplace=True`` is refused,
and the training loop takes the functional path. The ops run in JAX's own
form (:mod:`dropkit_jax.functional`): JAX keys, traced under ``jit``, and a
``custom_jvp`` whose backward regenerates the mask.
"""

from __future__ import annotations

from typing import Any

try:
    import jax
    import jax.numpy as jnp
except ImportError as exc:  # pragma: no cover - depends on the machine
    raise ImportError("JAX is not installed: pip install 'jax[cpu]'") from exc

from dropkit.backend import ArrayAPIBackend

from . import bits, functional

__all__ = ["JaxBackend"]


class JaxBackend(ArrayAPIBackend):
    """JAX arrays on the devices JAX sees.

    Examples
    --------
    >>> int(JaxBackend().random_bits(0, 0, 1)[0]) == 0x6627E8D5
    True
    """

    dropout_native = staticmethod(functional.dropout)
    dropout_backward_native = staticmethod(functional.dropout_backward)
    relu_dropout_backward_native = staticmethod(functional.relu_dropout_backward)
    family_bits = staticmethod(functional.family_bits)

    def __init__(self) -> None:
        super().__init__("jax", jnp)

    def devices(self) -> list[Any]:
        """JAX's devices."""
        return list(jax.devices())

    def random_bits(
        self, key: int, counter: int, n: int, *, offset: int = 0, device: Any = None
    ) -> Any:
        """The reference words, computed by one computation compiled per size class.

        See :mod:`dropkit_jax.bits`; the reference where that path does not apply.
        """
        words = bits.random_bits(key, counter, n, offset=offset)
        if words is None:
            return super().random_bits(key, counter, n, offset=offset, device=device)
        return words if device is None else jax.device_put(words, device)
