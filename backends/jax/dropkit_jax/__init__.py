"""JAX backend for dropkit; JAX is imported only when the backend is loaded."""
