"""NumPy (CPU) backend for dropkit.

Supplies the array namespace (``array_api_compat.numpy``) and the Philox4x32-10
words from compiled Numba kernels (a vectorised pure-NumPy path is the fallback
where Numba is missing), bit-identical to the array-API reference.
"""

from .backend import NumpyBackend

__all__ = ["NumpyBackend"]
