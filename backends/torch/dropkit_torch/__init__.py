"""dropkit for PyTorch: the ops on tensors as a custom op, and ``torch.nn`` layers.

- ``dropkit.dropout(tensor, p, ...)`` (and the channel, ReLU and backward ops)
  run the registered custom op ``dropkit::dropout``: autograd regenerates the
  mask instead of saving it, ``torch.compile(fullgraph=True)`` keeps it in one
  graph, and one dropkit key gives the same mask as on every other backend.
- :mod:`dropkit_torch.nn`: ``Dropout``, ``Dropout1d``, ``Dropout2d``,
  ``Dropout3d`` as ``torch.nn.Module``.
- :mod:`dropkit_torch.keys`: how ``rng=None`` / a ``torch.Generator`` map to a
  dropkit key.

This package is also the ``torch`` entry point of dropkit's plugin registry,
which must list backends without importing their libraries: torch is imported
here only if the process has already imported it (then the ops are registered
with the core at once, so ``torch.compile`` never meets the registry);
otherwise on first use.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from typing import Any

__all__ = ["functional", "keys", "nn"]

if "torch" in sys.modules:
    # a broken torch install is reported on first use, not while listing backends
    with contextlib.suppress(ImportError):
        from . import backend as _backend  # noqa: F401  (registers the ops with the core)


def __getattr__(name: str) -> Any:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
