"""Hook specification of the library (pluggy project and entry-point group ``dropkit``).

The library has one hook, the backends a plugin provides. A distribution
declares ``[project.entry-points.dropkit] name = "module"`` and the module
implements it with :data:`hookimpl`. The application's hooks (training
events, reporters, the optimiser kernel) are not here: they are
:mod:`dropkit.experiment.hookspecs`, with their own entry-point group
``dropkit.experiment``, which the library never loads.

Examples
--------
A complete backend plugin module:

>>> from dropkit import hookimpl
>>> from dropkit.backend import ArrayAPIBackend, BackendRecord
>>> @hookimpl
... def dropkit_backends():
...     import array_api_strict
...     return [BackendRecord(
...         name="mine", summary="my arrays", namespaces=("array_api_strict",),
...         load=lambda: ArrayAPIBackend("mine", array_api_strict))]
>>> [r.name for r in dropkit_backends()]
['mine']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .backend import BackendRecord

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "dropkit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def dropkit_backends() -> Iterable[BackendRecord]:
    """Return the backends this plugin provides.

    Each :class:`~dropkit.backend.BackendRecord` names a backend, summarises
    it, lists the array libraries it serves (top-level module names, matched
    against the arrays passed to the ops) and carries a *lazy* loader: listing
    backends must work on a machine that lacks the backend's library or
    device, so import the library inside ``load``, not at module level.
    """
    raise NotImplementedError  # a specification: pluggy calls the implementations, never this
