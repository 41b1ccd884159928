"""Entry point ``dropkit: array_api_strict``; bits from the array-API reference."""

from __future__ import annotations

from dropkit import ArrayAPIBackend, BackendRecord, hookimpl


def _load() -> ArrayAPIBackend:
    import array_api_strict

    return ArrayAPIBackend("array_api_strict", array_api_strict)


@hookimpl
def dropkit_backends() -> list[BackendRecord]:
    """The array_api_strict backend (CPU; for testing conformance)."""
    return [
        BackendRecord(
            name="array_api_strict",
            summary="array_api_strict: the strict reference namespace, for conformance tests",
            load=_load,
            namespaces=("array_api_strict",),
        )
    ]
