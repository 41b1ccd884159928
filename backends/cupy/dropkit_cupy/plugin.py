"""Entry point ``dropkit: cupy``. Nothing here imports CuPy."""

from __future__ import annotations

from dropkit import Backend, BackendRecord, hookimpl


def _load() -> Backend:
    from .backend import CupyBackend

    return CupyBackend()


@hookimpl
def dropkit_backends() -> list[BackendRecord]:
    """The CuPy backend (CUDA GPUs)."""
    return [
        BackendRecord(
            name="cupy",
            summary="CuPy on CUDA GPUs; fused Philox dropout kernels",
            load=_load,
            namespaces=("cupy",),
        )
    ]
