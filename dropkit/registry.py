"""The plugin manager and backend selection.

Plugins are loaded from the entry-point group ``dropkit``. A plugin that fails
to import, or whose hook raises, is reported with a warning and listed as
unavailable with the reason: it never breaks listing or the other backends.

Selection order (:func:`get_backend`): an explicit name, then the
``DROPKIT_BACKEND`` environment variable, then the library of the arrays passed
in, then ``numpy``.

Examples
--------
>>> names = [b.name for b in list_backends()]
>>> "numpy" in names
True
>>> get_backend("numpy").name
'numpy'
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .backend import ArrayAPIBackend, Backend, BackendInfo, BackendRecord

__all__ = [
    "ENV_VAR",
    "Registry",
    "get_backend",
    "get_plugin_manager",
    "get_registry",
    "list_backends",
    "native_backend",
    "register_native",
]

ENV_VAR = "DROPKIT_BACKEND"
DEFAULT_BACKEND = "numpy"

#: Array library (top-level module name) -> loaded backend with the ops in that
#: framework's own form (``dropout_native``, e.g. a registered torch custom op).
_NATIVE: dict[str, Backend] = {}


def register_native(library: str, backend: Backend) -> None:
    """Route the ops on arrays of ``library`` to ``backend``'s ``dropout_native`` & co.

    Called when such a backend loads; a framework integration may call it at
    import (``import dropkit_torch`` does) so that the ops resolve without the
    plugin registry, e.g. while ``torch.compile`` traces them.
    """
    _NATIVE[library] = backend


def native_backend(x: Any, name: str | None = None) -> Backend | None:
    """The registered native backend for ``x``'s library, if selection allows it.

    Plain lookups only (no entry points, no imports), so that a tracing
    compiler can follow it. Returns None when no native backend is registered
    for the library, or when ``name`` or ``$DROPKIT_BACKEND`` selects another
    backend.

    Examples
    --------
    >>> import numpy as np
    >>> native_backend(np.ones(2)) is None
    True
    """
    if not _NATIVE:
        return None
    backend = _NATIVE.get(type(x).__module__.partition(".")[0])
    if backend is None:
        return None
    chosen = name or os.environ.get(ENV_VAR) or backend.name
    return backend if chosen == backend.name else None


@dataclass
class _Entry:
    record: BackendRecord | None
    distribution: str
    version: str
    error: str | None = None  # plugin-level failure (import or hook)


@dataclass
class Registry:
    """Loaded plugins and their backend records.

    Attributes
    ----------
    manager : pluggy.PluginManager
        The plugin manager (other hooks are called through it).
    entries : dict
        Backend name -> entry, including broken plugins.
    """

    manager: pluggy.PluginManager
    entries: dict[str, _Entry] = field(default_factory=dict)
    _loaded: dict[str, Backend] = field(default_factory=dict)
    _failed: dict[str, str] = field(default_factory=dict)

    def load(self, name: str) -> Backend:
        """Load (once) and return the backend called ``name``."""
        if name in self._loaded:
            return self._loaded[name]
        entry = self.entries.get(name)
        if entry is None:
            installed = ", ".join(sorted(self.entries)) or "none"
            raise ValueError(
                f"unknown backend {name!r}; installed backends: {installed}. "
                "Install a backend distribution (e.g. dropkit-numpy) or fix the name."
            )
        if entry.record is None:
            raise RuntimeError(f"backend plugin {name!r} is broken: {entry.error}")
        if name in self._failed:
            raise RuntimeError(f"backend {name!r} is unavailable: {self._failed[name]}")
        try:
            backend = entry.record.load()
        except Exception as exc:  # a missing library or device
            self._failed[name] = f"{type(exc).__name__}: {exc}"
            raise RuntimeError(f"backend {name!r} is unavailable: {self._failed[name]}") from exc
        self._loaded[name] = backend
        if hasattr(backend, "dropout_native"):
            for library in entry.record.namespaces:
                _NATIVE.setdefault(library, backend)
        return backend

    def info(self) -> list[BackendInfo]:
        """Every registered backend with its availability, sorted by name."""
        infos = []
        for name, entry in sorted(self.entries.items()):
            reason = entry.error
            if reason is None:
                try:
                    self.load(name)
                except RuntimeError:
                    reason = self._failed.get(name, "failed to load")
            summary = entry.record.summary if entry.record else "(plugin failed to load)"
            infos.append(
                BackendInfo(
                    name, summary, entry.distribution, entry.version, reason is None, reason
                )
            )
        return infos

    def name_for_array(self, x: Any) -> str | None:
        """The backend registered for the library of array ``x``, if any."""
        library = type(x).__module__.partition(".")[0]
        for name, entry in sorted(self.entries.items()):
            if entry.record is not None and library in entry.record.namespaces:
                return name
        return None


def _register_entry_point(registry: Registry, ep: Any) -> None:
    dist = getattr(ep, "dist", None)
    dist_name = dist.name if dist is not None else "?"
    version = dist.version if dist is not None else "?"
    try:
        plugin = ep.load()
        registry.manager.register(plugin, name=ep.name)
    except Exception as exc:
        message = f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}"
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        registry.entries.setdefault(ep.name, _Entry(None, dist_name, version, message))
        return
    impls = [
        impl
        for impl in registry.manager.hook.dropkit_backends.get_hookimpls()
        if impl.plugin is plugin
    ]
    for impl in impls:
        try:
            records = list(impl.function())
        except Exception as exc:
            message = f"plugin {ep.name!r}: dropkit_backends raised {type(exc).__name__}: {exc}"
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            registry.entries.setdefault(ep.name, _Entry(None, dist_name, version, message))
            continue
        for record in records:
            if record.name in registry.entries:
                other = registry.entries[record.name].distribution
                warnings.warn(
                    f"backend {record.name!r} from {dist_name} ignored: already registered by "
                    f"{other}",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            registry.entries[record.name] = _Entry(record, dist_name, version)


@functools.cache
def get_registry() -> Registry:
    """The process-wide registry, built on first use from entry points.

    Examples
    --------
    >>> get_registry() is get_registry()
    True
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    registry = Registry(manager)
    for ep in sorted(entry_points(group=hookspecs.PROJECT), key=lambda e: e.name):
        _register_entry_point(registry, ep)
    return registry


def get_plugin_manager() -> pluggy.PluginManager:
    """The pluggy plugin manager with every ``dropkit`` entry point registered."""
    return get_registry().manager


def list_backends() -> list[BackendInfo]:
    """List the installed backends, available or not, with the reason.

    Examples
    --------
    >>> info = {b.name: b for b in list_backends()}
    >>> info["numpy"].available
    True
    """
    return get_registry().info()


def get_backend(name: str | None = None, *arrays: Any) -> Backend:
    """Select and load a backend.

    Parameters
    ----------
    name : str, optional
        An explicit backend name. If omitted: ``$DROPKIT_BACKEND``, then the
        backend registered for the library of ``arrays``, then ``numpy``.
    *arrays
        Arrays the backend is for (embedded use).

    Returns
    -------
    Backend

    Raises
    ------
    ValueError
        For an unknown name (the message lists the installed backends).

    Examples
    --------
    >>> import numpy as np
    >>> get_backend(None, np.ones(3)).name
    'numpy'
    >>> get_backend("no-such")
    Traceback (most recent call last):
    ...
    ValueError: unknown backend 'no-such'; installed backends: ...
    """
    registry = get_registry()
    if name is None:
        name = os.environ.get(ENV_VAR) or None
    if name is None and arrays:
        name = registry.name_for_array(arrays[0])
        if name is None:
            # An array library no plugin registered: the array-API reference
            # path works on any conforming namespace.
            from ._arrays import namespace_of

            xp = namespace_of(arrays[0], "x")
            return ArrayAPIBackend(f"array-api:{xp.__name__}", xp)
    return registry.load(name or DEFAULT_BACKEND)
