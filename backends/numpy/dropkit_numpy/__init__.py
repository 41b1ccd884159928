"""NumPy (CPU) backend for dropkit.

Supplies the array namespace (``array_api_compat.numpy``) and the Philox4x32-10
words from compiled Numba kernels (a vectorised pure-NumPy path is the fallback
where Numba is missing), bit-identical to the array-API reference.

:class:`NumpyBackend` is imported on first access: this package is also the
``numpy`` entry point of dropkit's plugin registry, and listing backends must
not pay for ``array_api_compat.numpy`` (a third of a second).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import NumpyBackend

__all__ = ["NumpyBackend"]


def __getattr__(name: str) -> Any:
    if name == "NumpyBackend":
        from .backend import NumpyBackend

        return NumpyBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
