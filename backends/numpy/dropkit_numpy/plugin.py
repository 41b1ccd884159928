"""Entry point ``dropkit: numpy``, registered exactly as a third-party plugin would be."""

from __future__ import annotations

from dropkit import Backend, BackendRecord, hookimpl


def _load() -> Backend:
    from .backend import NumpyBackend

    return NumpyBackend()


@hookimpl
def dropkit_backends() -> list[BackendRecord]:
    """The NumPy backend (CPU)."""
    return [
        BackendRecord(
            name="numpy",
            summary="NumPy on the CPU; Philox words from Numba kernels (pure NumPy fallback)",
            load=_load,
            namespaces=("numpy",),
        )
    ]
