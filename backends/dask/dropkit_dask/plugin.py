"""Entry point ``dropkit: dask``. Nothing here imports dask."""

from __future__ import annotations

from dropkit import Backend, BackendRecord, hookimpl


def _load() -> Backend:
    from .backend import DaskBackend

    return DaskBackend()


@hookimpl
def dropkit_backends() -> list[BackendRecord]:
    """The Dask backend (lazy, chunked NumPy arrays, local or distributed)."""
    return [
        BackendRecord(
            name="dask",
            summary="Dask arrays: lazy, chunk by chunk; the mask does not depend on the chunking",
            load=_load,
            namespaces=("dask",),
        )
    ]
