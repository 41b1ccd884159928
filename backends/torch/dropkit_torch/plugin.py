"""Entry point ``dropkit: torch``. Nothing here imports torch."""

from __future__ import annotations

from dropkit import Backend, BackendRecord, hookimpl


def _load() -> Backend:
    from .backend import TorchBackend

    return TorchBackend()


@hookimpl
def dropkit_backends() -> list[BackendRecord]:
    """The PyTorch backend (CPU, and CUDA where present)."""
    return [
        BackendRecord(
            name="torch",
            summary="PyTorch tensors (CPU, CUDA) through a registered custom op; torch.nn layers",
            load=_load,
            namespaces=("torch",),
        )
    ]
