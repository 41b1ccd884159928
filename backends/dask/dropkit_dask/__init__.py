"""Dask backend for dropkit; dask is imported only when the backend is loaded."""
