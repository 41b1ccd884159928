"""The version of dropkit-numpy: its one source, read by hatchling at build time."""

__version__ = "0.1.0"
