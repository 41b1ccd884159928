"""Entry point ``dropkit: jax``. Nothing here imports JAX."""

from __future__ import annotations

from dropkit import Backend, BackendRecord, hookimpl


def _load() -> Backend:
    from .backend import JaxBackend

    return JaxBackend()


@hookimpl
def dropkit_backends() -> list[BackendRecord]:
    """The JAX backend (CPU here; whatever devices JAX sees)."""
    return [
        BackendRecord(
            name="jax",
            summary="JAX arrays (immutable); reference Philox in uint32, no x64 needed",
            load=_load,
            namespaces=("jax", "jaxlib"),
        )
    ]
