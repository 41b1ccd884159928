"""Deprecated private alias of :mod:`dropkit.checks` (kept for the application's imports)."""

from .checks import *  # noqa: F403
from .checks import __all__ as __all__
