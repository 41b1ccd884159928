"""The application's plugin managers: one per command or run, never a global one.

:func:`new_plugin_manager` builds a new pluggy manager of the application's hooks
(:mod:`dropkit.experiment.hookspecs`) holding the installed plugins (the
entry-point group ``dropkit.experiment``) and the plugins a caller passes (the
command line's progress display and metrics file). Two commands in one
process have two managers: a reporter of one never sees the other's events.

An installed plugin is someone else's code: one that fails to import, that
misspells a hook or declares a hook wrapper is reported with a warning naming
its distribution, and left out or partly out; a hook of it that raises
(anything but ``KeyboardInterrupt``) warns once and switches that plugin's
hooks off for the rest of the manager's life: the run goes on.

Examples
--------
>>> pm = new_plugin_manager(installed=False)
>>> pm.get_plugins()
set()
>>> pm.hook.dropkit_sgd_kernel(xp=None) is None
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

import pluggy

from .._plugin_guard import describe_exception, guarded_plugin
from .._plugin_policy import plugin_warning, refused_by_policy
from . import hookspecs

__all__ = ["HOOKS", "new_plugin_manager", "sgd_kernel"]

#: The names of the application's hooks.
HOOKS = frozenset(n for n in dir(hookspecs) if n.startswith("dropkit_"))


def new_plugin_manager(*plugins: object, installed: bool = True) -> pluggy.PluginManager:
    """A new plugin manager of the application's hooks.

    Parameters
    ----------
    *plugins
        Registered as they are, after the installed ones (e.g. reporters).
    installed : bool, default True
        Load and register the installed plugins: every entry point of the
        group ``dropkit.experiment``, each guarded (see the module's description).
        Without them there is no fast optimiser kernel either (the array-API
        update gives the same bits) and no plots.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    if installed:
        found = entry_points(group=hookspecs.GROUP)
        for ep in sorted(found, key=lambda e: (e.name, _dist_of(e))):
            _register_installed(manager, ep)
    for plugin in plugins:
        manager.register(plugin)
    return manager


def sgd_kernel(pm: pluggy.PluginManager, xp: Any) -> hookspecs.SGDKernel | None:
    """The fused SGD kernel ``pm``'s plugins offer for namespace ``xp``, or None.

    A kernel that is not callable is reported (a warning) and not used.

    Examples
    --------
    >>> import array_api_compat.numpy as xp
    >>> sgd_kernel(new_plugin_manager(installed=False), xp) is None
    True
    """
    kernel = pm.hook.dropkit_sgd_kernel(xp=xp)
    if kernel is None or callable(kernel):
        return kernel
    plugin_warning(
        f"a dropkit_sgd_kernel hook returned {kernel!r:.60}, not a callable kernel: ignored "
        "(the array-API update is used, with the same results)",
        stacklevel=2,
    )
    return None


def _dist_of(ep: Any) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    version = getattr(dist, "version", None) if dist is not None else None
    return (name or "unknown distribution", version or "?")


def _warn(message: str) -> None:
    plugin_warning(message, stacklevel=4)


def _register_installed(manager: pluggy.PluginManager, ep: Any) -> None:
    """Import one entry point and register its hooks, guarded; any failure is a warning."""
    dist, version = _dist_of(ep)
    label = f"plugin {ep.name!r} ({ep.value}, from {dist} {version})"
    if refused_by_policy(dist) is not None:  # the user's choice (DROPKIT_PLUGINS)
        return
    try:
        plugin = ep.load()
        hooks = _hook_functions(manager, plugin, label)
    except KeyboardInterrupt as exc:
        raise KeyboardInterrupt(f"while importing plugin {ep.name!r} (from {dist})") from exc
    except BaseException as exc:  # SystemExit included: the plugin's failure
        _warn(f"{label} failed to load: {describe_exception(exc)}; the command goes on without it")
        return
    proxy = guarded_plugin(
        hooks, label, proxy_name=f"dropkit-experiment-plugin:{dist}:{ep.name}", lifetime="command"
    )
    try:
        manager.register(proxy, name=f"{dist}:{ep.name}")
    except Exception as exc:  # pluggy's validation: unknown arguments, ...
        _warn(f"{label} failed to load: {describe_exception(exc)}; the command goes on without it")


def _hook_functions(
    manager: pluggy.PluginManager, plugin: Any, label: str
) -> dict[str, Callable[..., Any]]:
    """Attribute name -> hook implementation of ``plugin``; misspelt hooks and wrappers warn."""
    hooks = {}
    for attr in dir(plugin):
        opts: Mapping[str, Any] | None = manager.parse_hookimpl_opts(plugin, attr)
        if opts is None:
            continue
        hook = opts.get("specname") or attr
        if hook not in HOOKS:
            _warn(
                f"{label}: {hook!r} is not a hook of the dropkit application (typo?), so it is "
                f"never called; the hooks are {', '.join(sorted(HOOKS))}"
            )
        elif opts.get("hookwrapper") or opts.get("wrapper"):
            _warn(f"{label}: {hook!r} is a hook wrapper, which dropkit does not run: ignored")
        else:
            hooks[attr] = getattr(plugin, attr)
    return hooks
