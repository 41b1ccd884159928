"""dropkit for PyTorch: the ops on tensors as a custom op, and ``torch.nn`` layers.

- ``dropkit.dropout(tensor, p, ...)`` (and the channel, ReLU and backward ops)
  reduce to this backend's primitive, the registered custom op
  ``dropkit::dropout``: autograd regenerates the
  mask instead of saving it, ``torch.compile(fullgraph=True)`` keeps it in one
  graph, and one dropkit key gives the same mask as on every other backend.
- :mod:`dropkit_torch.nn`: ``Dropout``, ``Dropout1d``, ``Dropout2d``,
  ``Dropout3d`` as ``torch.nn.Module``.
- :mod:`dropkit_torch.keys`: how ``rng=None`` / a ``torch.Generator`` map to a
  dropkit key.

- :mod:`dropkit_torch.cuda`: the CUDA path of the op.
- :func:`dropkit_torch.swap_dropout` (:mod:`dropkit_torch.swap`): torch's
  dropout modules in a model replaced by dropkit's, with a report of the
  dropout it could not replace.

This package is also the ``torch`` entry point of dropkit's plugin registry,
which must list backends without importing their libraries: importing it
imports nothing else (the backend loads on first use, or with
``dropkit.get_backend("torch")``, which compiled code needs done once before
``torch.compile`` traces a dropkit op).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .swap import SwapReport, swap_dropout

__all__ = ["SwapReport", "cuda", "functional", "keys", "nn", "swap_dropout"]
_FROM_MODULE = {"SwapReport": "swap", "swap_dropout": "swap"}


def __getattr__(name: str) -> Any:
    if name in _FROM_MODULE:
        return getattr(importlib.import_module(f"{__name__}.{_FROM_MODULE[name]}"), name)
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
