"""The version of dropkit-dask: its one source, read by hatchling at build time."""

__version__ = "0.1.0"
