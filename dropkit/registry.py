"""The registry of backends: the plugin manager, loading, listing.

Plugins are loaded from the entry-point group ``dropkit``. A plugin that fails
to import, or whose hook raises, is reported with a warning and listed as
unavailable with the reason: it never breaks listing or the other backends.

Selection (:func:`dropkit.get_backend`, :mod:`dropkit.selection`) builds on it: an explicit
name, then :func:`dropkit.use_backend`, then the ``DROPKIT_BACKEND``
environment variable (read once), then the library of the arrays passed in,
then ``numpy``.

A name belongs to the distribution ``dropkit-<name>`` (``_`` and ``-`` alike):
``numpy`` to dropkit-numpy, ``array_api_strict`` to dropkit-array-api-strict.
A plugin of another distribution registering that name is listed as a
duplicate and never selected. The backends shipped with dropkit follow this
rule like any other; there is no table of them.

Examples
--------
>>> names = [b.name for b in list_backends()]
>>> "numpy" in names
True
>>> get_registry().load("numpy").name
'numpy'
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from ._plugin_guard import (
    PluginError,
    backend_problem,
    call_plugin,
    short,
)
from ._selection_state import (
    BY_LIBRARY,
    BY_NAME,
    BY_TYPE,
    DEFAULT_BACKEND,
    ENV_VAR,
    environment_backend,
)
from .backend import Backend, BackendInfo, Capabilities, capabilities
from .discovery import Entry, dist_of, installed, owns, register_entry_point, resolve

__all__ = [
    "DEFAULT_BACKEND",
    "ENV_VAR",
    "Registry",
    "get_plugin_manager",
    "get_registry",
    "list_backends",
    "load_capabilities",
]


@dataclass
class Registry:
    """Loaded plugins and their backend records.

    Attributes
    ----------
    manager : pluggy.PluginManager
        The plugin manager (other hooks are called through it; an entry-point
        plugin's hooks are guarded: one that fails is reported and switched off).
    entries : dict
        Backend name -> entry, including broken plugins (by entry-point name).
    rejected : list
        ``(name, entry)`` listed but never selected: a duplicate of a built-in
        backend's name, a second registration of an ambiguous name, a broken
        plugin whose entry-point name a backend already has.
    """

    manager: pluggy.PluginManager
    entries: dict[str, Entry] = field(default_factory=dict)
    rejected: list[tuple[str, Entry]] = field(default_factory=list)
    _loaded: dict[str, Backend] = field(default_factory=dict)
    _failed: dict[str, str] = field(default_factory=dict)

    def load(self, name: str, *, source: str = "") -> Backend:
        """Load (once) and return the backend called ``name``.

        ``source`` says where the name came from, for the message of an unknown
        name (e.g. ``" (from $DROPKIT_BACKEND)"``).
        """
        if name in self._loaded:
            return self._loaded[name]
        entry = self.entries.get(name)
        if entry is None:
            raise ValueError(self._unknown(name, source))
        if entry.error is not None:
            raise RuntimeError(f"backend {name!r} is unavailable: {entry.error}")
        if name in self._failed:
            raise RuntimeError(f"backend {name!r} is unavailable: {self._failed[name]}")
        record = entry.record
        assert record is not None  # an entry without error has its record
        try:
            backend = call_plugin(
                record.load, f"loading backend {name!r} ({entry.distribution} {entry.version})"
            )
            problem = backend_problem(backend, name)
            if problem is not None:
                raise PluginError(problem)
        except PluginError as exc:  # a missing library or device, or a plugin bug
            self._failed[name] = f"{exc} [{entry.label}]"
            raise RuntimeError(f"backend {name!r} is unavailable: {self._failed[name]}") from exc
        self._loaded[name] = backend
        return backend

    def _unknown(self, name: str, source: str) -> str:
        names = sorted(self.entries)
        close = [n for n in names if n.lower() == name.lower()]
        close = close or difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        return (
            f"unknown backend {name!r}{source}; installed backends: "
            f"{', '.join(names) or 'none'}{hint} Install a backend distribution (e.g. "
            "dropkit-numpy) or fix the name."
        )

    def info(self, *, load: bool = True) -> list[BackendInfo]:
        """Every registered backend with its availability, sorted by name.

        A rejected duplicate is listed just before the entry that holds its
        name, so that ``{b.name: b for b in info()}`` keeps the one in use.
        With ``load=False`` a backend whose array libraries are all installed
        is listed as available without being loaded (see :func:`list_backends`).
        """
        rows = [(name, 1, entry) for name, entry in self.entries.items()]
        rows += [(name, 0, entry) for name, entry in self.rejected]
        infos = []
        for name, _, entry in sorted(rows, key=lambda r: (r[0], r[1])):
            reason = entry.error
            if reason is None and name in self._failed:
                reason = self._failed[name]
            elif reason is None and name not in self._loaded and (load or not installed(entry)):
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

    def claimants(self, library: str) -> list[str]:
        """The selectable backends whose records name array library ``library``."""
        return [
            name
            for name, entry in sorted(self.entries.items())
            if entry.error is None
            and entry.record is not None
            and library in entry.record.namespaces
        ]

    def _claimant(self, library: str) -> str | None:
        """The backend for arrays of ``library``: the only claimant, or the built-in one."""
        names = self.claimants(library)
        if len(names) > 1:
            builtin = [n for n in names if owns(n, self.entries[n].distribution)]
            if len(builtin) == 1:
                return builtin[0]
            who = ", ".join(f"{n!r} ({self.entries[n].distribution})" for n in names)
            raise RuntimeError(
                f"{library} arrays are claimed by several backends: {who}; choose one with "
                f"backend=... or ${ENV_VAR}"
            )
        return names[0] if names else None

    def name_for_array(self, x: Any) -> str | None:
        """The backend registered for the library of array ``x``, if any.

        The library is that of ``x``'s type, else of the nearest base class
        whose library is claimed: a user's subclass of ``torch.Tensor`` (defined
        in ``__main__``) is torch's. When several backends claim the library, a
        built-in backend's claim wins; between third-party ones there is no
        choice (RuntimeError).
        """
        for cls in type(x).__mro__[:-1]:  # (not object)
            found = self._claimant(cls.__module__.partition(".")[0])
            if found is not None:
                return found
        return None


def _build_registry() -> Registry:
    """Build the registry from the entry points (see :func:`get_registry`)."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    registry = Registry(manager)
    candidates: dict[str, list[Entry]] = {}
    broken: list[Entry] = []
    eps = sorted(entry_points(group=hookspecs.PROJECT), key=lambda e: (e.name, dist_of(e)))
    for ep in eps:
        register_entry_point(registry, ep, candidates, broken)
    resolve(registry, candidates, broken)
    return registry


class _RegistryCache:
    """:func:`get_registry`: built once; ``cache_clear()`` forgets it and what selection knew."""

    def __init__(self) -> None:
        self._registry: Registry | None = None

    def __call__(self) -> Registry:
        """The process-wide registry, built on first use from entry points.

        Every plugin is isolated: one that fails to import, whose hook raises or
        returns junk, or that calls ``sys.exit`` is listed as unavailable with the
        reason and its distribution, and never breaks the others.

        Examples
        --------
        >>> get_registry() is get_registry()
        True
        """
        if self._registry is None:
            self._registry = _build_registry()
        return self._registry

    def cache_clear(self) -> None:
        """Forget the registry and every backend selection remembered from it."""
        self._registry = None
        for memo in (BY_LIBRARY, BY_NAME, BY_TYPE):
            memo.clear()


get_registry = _RegistryCache()


def get_plugin_manager() -> pluggy.PluginManager:
    """The pluggy plugin manager with every ``dropkit`` entry point registered."""
    return get_registry().manager


def list_backends(*, load: bool = True) -> list[BackendInfo]:
    """List the installed backends, available or not, with the reason.

    Parameters
    ----------
    load : bool, default True
        Load every backend to find out whether it works here (this imports
        each backend's library: JAX, Dask, PyTorch, CuPy ... take seconds).
        With ``load=False`` the listing is cheap: a backend not loaded yet
        whose array libraries (its record's ``namespaces``) are all installed
        is listed as available without importing them, so a missing device
        (CuPy without a GPU) shows only when it is loaded; a backend with a
        library missing, or whose record names none, is loaded to find out
        (that fails at its first import, with the plugin's own reason).

    Examples
    --------
    >>> info = {b.name: b for b in list_backends()}
    >>> info["numpy"].available
    True
    >>> "numpy" in {b.name for b in list_backends(load=False)}
    True
    """
    return get_registry().info(load=load)


def load_capabilities(name: str, *, source: str = "") -> Capabilities:
    """Load the backend ``name`` (once) and find its capabilities (once).

    Remembers it for selection (:data:`dropkit.selection.BY_NAME`) and, for
    each array library its record names and that it serves (it is that
    library's only claimant, or the built-in one), in
    :data:`dropkit.selection.BY_LIBRARY`.
    """
    registry = get_registry()
    hit = BY_NAME.get(name)
    if hit is not None:
        return hit
    environment_backend()  # read once, here, eagerly (not in a compiler's trace)
    backend = registry.load(name, source=source)
    entry = registry.entries[name]
    libraries = entry.record.namespaces if entry.record is not None else ()
    caps = capabilities(backend, libraries)
    BY_NAME[name] = caps
    for library in libraries:
        try:
            claimant = registry._claimant(library)
        except RuntimeError:  # claimed by several third-party backends: no default
            continue
        if claimant == name:
            BY_LIBRARY.setdefault(library, caps)
    return caps


def check_name(name: Any) -> None:
    """Raise unless ``name`` is None or a non-empty string (a backend name)."""
    if name is None:
        return
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a string, got {short(name)} ({type(name).__name__})")
    if not name.strip():
        raise ValueError(
            "backend name is empty: pass an installed backend's name "
            f"({', '.join(sorted(get_registry().entries))}) or None for the default"
        )
