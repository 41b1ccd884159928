"""Finding backend plugins: entry points, their records, and who owns a name.

Everything here runs or inspects plugin code, guarded by
:mod:`dropkit._plugin_guard`: a plugin that fails to import, whose hook raises
or returns bad records, is reported with a warning and kept as a broken entry
that listing shows with the reason. :mod:`dropkit.registry` builds its
:class:`~dropkit.registry.Registry` from what this module finds.

A name belongs to the distribution ``dropkit-<name>`` (``_`` and ``-`` alike):

>>> owns("array_api_strict", "dropkit_array-api-strict")
True
>>> owns("numpy", "someone-elses-numpy")
False
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from ._plugin_guard import (
    PluginError,
    call_plugin,
    describe_exception,
    guarded_plugin,
    record_problem,
    take_records,
)
from ._plugin_policy import plugin_warning, refused_by_policy
from .backend import BackendRecord

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["Entry", "dist_of", "installed", "owns", "register_entry_point", "resolve"]


def _owner(name: str) -> str:
    """The distribution that owns the backend name ``name``: ``dropkit-<name>``, normalised."""
    return _normal(f"dropkit-{name}")


@dataclass
class Entry:
    """One backend record as found: its distribution, and why it cannot be selected if so."""

    record: BackendRecord | None
    distribution: str
    version: str
    error: str | None = None  # why it cannot be selected (broken plugin, duplicate name)
    plugin: str = "?"  # the entry point's name

    @property
    def label(self) -> str:
        """The plugin as messages name it: entry point, distribution and version."""
        return f"plugin {self.plugin!r} ({self.distribution} {self.version})"


def installed(entry: Entry) -> bool:
    """Whether every array library ``entry``'s record names is installed (none imported).

    False when the record names no library (nothing to look for without
    loading it) or a name that is not a top-level module name.
    """
    names = entry.record.namespaces if entry.record is not None else ()
    if not names:
        return False
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            return False
        try:
            if importlib.util.find_spec(name) is None:
                return False
        except (ImportError, ValueError):  # a module set to None, a broken finder
            return False
    return True


def _normal(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def owns(name: str, dist: str) -> bool:
    """Whether ``dist`` owns the backend name ``name`` (it is ``dropkit-<name>``: built in)."""
    return _normal(dist) == _owner(name)


def dist_of(ep: Any) -> tuple[str, str]:
    """``(distribution, version)`` of an entry point, or placeholders when it has none."""
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    version = getattr(dist, "version", None) if dist is not None else None
    return (name or "unknown distribution", version or "?")


def _warn(message: str) -> None:
    plugin_warning(message, stacklevel=4)


def _records_of(hook: Any) -> list[Any]:
    """Call a ``dropkit_backends`` implementation and take its records (all plugin code)."""
    return take_records(hook())


def _hook_functions(manager: pluggy.PluginManager, plugin: Any) -> dict[str, Any]:
    """Attribute name -> hook implementation found on ``plugin`` (plugin code runs: guard)."""
    found = {}
    for attr in dir(plugin):
        if manager.parse_hookimpl_opts(plugin, attr) is not None:
            found[attr] = getattr(plugin, attr)
    return found


_HOOKS = frozenset(n for n in dir(hookspecs) if n.startswith(f"{hookspecs.PROJECT}_"))


def register_entry_point(
    registry: Registry, ep: Any, candidates: dict[str, list[Entry]], broken: list[Entry]
) -> None:
    """Import one entry point, register its guarded hooks, collect its backend records."""
    dist, version = dist_of(ep)
    label = f"plugin {ep.name!r} ({ep.value}, from {dist} {version})"

    def fail(message: str) -> None:
        _warn(message)
        broken.append(Entry(None, dist, version, message, ep.name))

    left_out = refused_by_policy(dist)
    if left_out is not None:  # the user's choice: listed with the reason, no warning
        broken.append(Entry(None, dist, version, f"{label} {left_out}", ep.name))
        return

    try:
        plugin = call_plugin(ep.load, f"importing plugin {ep.name!r} ({ep.value}, from {dist})")
        functions = call_plugin(
            lambda: _hook_functions(registry.manager, plugin), f"inspecting plugin {ep.name!r}"
        )
    except PluginError as exc:
        fail(f"{label} failed to load: {exc}")
        return
    hooks: dict[str, Any] = {}
    for attr, fn in functions.items():
        opts: Mapping[str, Any] = registry.manager.parse_hookimpl_opts(plugin, attr) or {}
        hook = opts.get("specname") or attr
        if hook not in _HOOKS:
            _warn(
                f"{label}: {hook!r} is not a dropkit hook (typo?), so it is never called; "
                f"the hooks are {', '.join(sorted(_HOOKS))} (the application's hooks, such as "
                "dropkit_epoch_end, belong to the entry-point group 'dropkit.experiment')"
            )
        elif opts.get("hookwrapper") or opts.get("wrapper"):
            _warn(f"{label}: {hook!r} is a hook wrapper, which dropkit does not run: ignored")
        else:
            hooks[attr] = fn
    proxy = guarded_plugin(hooks, label, proxy_name=f"dropkit-plugin:{dist}:{ep.name}")
    try:
        registry.manager.register(proxy, name=f"{dist}:{ep.name}")
    except Exception as exc:  # pluggy's validation: unknown arguments, ...
        fail(f"{label} failed to load: {describe_exception(exc)}")
        return
    bad = []
    for attr, fn in hooks.items():
        opts = registry.manager.parse_hookimpl_opts(plugin, attr) or {}
        if (opts.get("specname") or attr) != "dropkit_backends":
            continue
        try:
            items = call_plugin(functools.partial(_records_of, fn), f"calling {label}'s {attr}")
        except PluginError as exc:
            raised = "raised " if exc.__cause__ is not None else ""
            fail(f"{label}: dropkit_backends {raised}{exc}")
            return
        for item in items:
            problem = record_problem(item)
            if problem is None:
                candidates.setdefault(item.name, []).append(
                    Entry(item, dist, version, plugin=ep.name)
                )
            else:
                bad.append(problem)
    if bad:
        fail(
            f"{label}: dropkit_backends returned {len(bad)} invalid record(s) (valid ones are "
            f"kept): {'; '.join(bad)}"
        )


def resolve(registry: Registry, candidates: dict[str, list[Entry]], broken: list[Entry]) -> None:
    """Give each name to one entry; report duplicates, never prefer one by sort order."""
    for name, entries in sorted(candidates.items()):
        owner = _owner(name)
        keep = [e for e in entries if _normal(e.distribution) == owner]
        if len(entries) == 1:
            registry.entries[name] = entries[0]
        elif len(keep) == 1:
            registry.entries[name] = keep[0]
            for entry in entries:
                if entry is not keep[0]:
                    entry.error = (
                        f"{name!r} is the built-in backend of {owner}: this duplicate from "
                        f"{entry.label} is ignored; uninstall {entry.distribution} or ask its "
                        "authors to rename the backend"
                    )
                    _warn(f"backend {entry.error}")
                    registry.rejected.append((name, entry))
        else:
            who = ", ".join(e.label for e in entries)
            message = (
                f"backend {name!r} is registered by {len(entries)} plugins: {who}; dropkit "
                "does not choose between them: uninstall all but one"
            )
            _warn(message)
            for entry in entries:
                entry.error = message
            registry.entries[name] = entries[0]
            registry.rejected += [(name, e) for e in entries[1:]]
    for entry in broken:
        if entry.plugin in registry.entries:
            registry.rejected.append((entry.plugin, entry))
        else:
            registry.entries[entry.plugin] = entry
    for library in sorted(
        {
            n
            for e in registry.entries.values()
            if e.record is not None and e.error is None
            for n in e.record.namespaces
        }
    ):
        names = registry.claimants(library)
        builtin = [n for n in names if owns(n, registry.entries[n].distribution)]
        if len(names) > 1 and len(builtin) == 1:
            for other in names:
                if other != builtin[0]:
                    _warn(
                        f"backend {other!r} ({registry.entries[other].label}) also claims "
                        f"{library} arrays, which the built-in backend {builtin[0]!r} serves: "
                        "it is used for them only when selected by name"
                    )
