"""Isolation of plugin code: every call into a plugin goes through here.

A plugin is someone else's code run inside dropkit: its import, its hooks and
its backends' loaders may raise anything (``SystemExit`` included), return
anything, or be interrupted by the user. The helpers below turn each failure
into a message that names the plugin and its distribution, validate what
plugins return, and wrap the training hooks so that a failing observer is
reported once and switched off instead of stopping a run.

``KeyboardInterrupt`` is never swallowed: it propagates, carrying what was
being done (``while loading backend 'x' (dist 1.0)``), so that the command
line stops with a message that fits.

Examples
--------
>>> short(["a" * 100])
"['aaaaaaaaa...aaaaaaaaaa']"
>>> record_problem("oops")
"'oops' (str) is not a BackendRecord"
"""

from __future__ import annotations

import copy
import functools
import itertools
import re
import reprlib
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ._plugin_policy import plugin_warning
from .backend import BackendRecord

__all__ = [
    "MAX_RECORDS",
    "PluginError",
    "backend_problem",
    "call_plugin",
    "describe_exception",
    "guarded_plugin",
    "record_problem",
    "short",
    "take_records",
]

T = TypeVar("T")

#: The most records one ``dropkit_backends`` call may return.
MAX_RECORDS = 1000
#: A backend name: what ``--backend`` and ``$DROPKIT_BACKEND`` can spell.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 24
_repr.maxlist = _repr.maxtuple = 4


class PluginError(Exception):
    """A plugin's code failed or returned something unusable (the message says what)."""


def short(value: Any) -> str:
    """A short repr of ``value`` for messages (plugins may return anything).

    Examples
    --------
    >>> short(42)
    '42'
    """
    try:
        return _repr.repr(value)
    except BaseException:  # a hostile __repr__
        return f"<{type(value).__name__} object>"


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` for an exception, in one line; sys.exit is named as such.

    Examples
    --------
    >>> describe_exception(SystemExit(3))
    'SystemExit: the plugin called sys.exit(3)'
    >>> describe_exception(ValueError("bad   value"))
    'ValueError: bad value'
    """
    if isinstance(exc, SystemExit):
        return f"SystemExit: the plugin called sys.exit({short(exc.code)})"
    try:
        text = " ".join(str(exc).split())
    except BaseException:
        text = "<unprintable>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def call_plugin(fn: Callable[[], T], doing: str) -> T:
    """Call plugin code ``fn()``; any failure becomes :class:`PluginError`.

    ``KeyboardInterrupt`` propagates as a ``KeyboardInterrupt`` whose message
    says ``while {doing}``; every other exception, ``SystemExit`` included, is
    the plugin's failure.

    Examples
    --------
    >>> call_plugin(lambda: 1 / 0, "dividing")
    Traceback (most recent call last):
    ...
    dropkit._plugin_guard.PluginError: ZeroDivisionError: division by zero
    """
    try:
        return fn()
    except PluginError:
        raise
    except KeyboardInterrupt as exc:
        raise KeyboardInterrupt(f"while {doing}") from exc
    except BaseException as exc:
        raise PluginError(describe_exception(exc)) from exc


def take_records(result: Any) -> list[Any]:
    """The items a ``dropkit_backends`` implementation returned, at most ``MAX_RECORDS``.

    Raises :class:`PluginError` for a result that is not a list (or other
    iterable) of records; iterating it is plugin code (a generator), so call
    this inside :func:`call_plugin`.

    Examples
    --------
    >>> take_records((r for r in [1, 2]))
    [1, 2]
    >>> take_records(None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dropkit._plugin_guard.PluginError: dropkit_backends must return a list ..., got None (NoneType)
    """
    if isinstance(result, str | bytes | Mapping) or not isinstance(result, Iterable):
        raise PluginError(
            "dropkit_backends must return a list of BackendRecord, got "
            f"{short(result)} ({type(result).__name__})"
        )
    items = list(itertools.islice(iter(result), MAX_RECORDS + 1))
    if len(items) > MAX_RECORDS:
        raise PluginError(f"dropkit_backends returned more than {MAX_RECORDS} records")
    return items


def record_problem(record: Any) -> str | None:
    """What is wrong with one returned record, or None when it is valid.

    Examples
    --------
    >>> record_problem(BackendRecord("two words", "s", list))
    "name 'two words' is not a valid backend name (letters, digits, '_', '.', '+', '-'; ...)"
    """
    if not isinstance(record, BackendRecord):
        return f"{short(record)} ({type(record).__name__}) is not a BackendRecord"
    name = record.name
    if not isinstance(name, str):
        return f"name must be a string, got {short(name)} ({type(name).__name__})"
    if NAME_PATTERN.fullmatch(name) is None:
        return (
            f"name {short(name)} is not a valid backend name (letters, digits, '_', '.', '+', "
            "'-'; at most 64 characters)"
        )
    if not isinstance(record.summary, str):
        return (
            f"backend {name!r}: summary must be a string, got {short(record.summary)} "
            f"({type(record.summary).__name__})"
        )
    if not callable(record.load):
        return f"backend {name!r}: load must be callable, got {short(record.load)}"
    spaces = record.namespaces
    if isinstance(spaces, str):
        return (
            f"backend {name!r}: namespaces must be a tuple of module names, got the string "
            f"{spaces!r}: write ({spaces!r},)"
        )
    if not isinstance(spaces, tuple | list) or not all(isinstance(n, str) for n in spaces):
        return (
            f"backend {name!r}: namespaces must be a tuple of module names (str), got "
            f"{short(spaces)}"
        )
    return None


def backend_problem(backend: Any, name: str) -> str | None:
    """What is wrong with the object a record's ``load()`` returned, or None.

    Examples
    --------
    >>> backend_problem(42, "x")
    'load() returned 42 (int), not a backend: a backend has name, xp, devices() and random_bits()'
    """
    missing = [
        attr
        for attr in ("name", "xp", "devices", "random_bits")
        if not _has(backend, attr)
        or (attr in ("devices", "random_bits") and not callable(getattr(backend, attr)))
    ]
    what = f"load() returned {short(backend)} ({type(backend).__name__})"
    if len(missing) == 4:
        return f"{what}, not a backend: a backend has name, xp, devices() and random_bits()"
    if missing:
        return f"{what}, not a backend: it lacks {', '.join(missing)}"
    got = backend.name
    if not isinstance(got, str):
        return (
            f"load() returned a backend whose name is {short(got)} ({type(got).__name__}), "
            "not a string"
        )
    if got != name:
        return f"load() returned a backend named {got!r} for the record {name!r}"
    if not callable(getattr(backend.xp, "asarray", None)):
        return (
            f"load() returned a backend whose xp {short(backend.xp)} "
            f"({type(backend.xp).__name__}) is not an array namespace"
        )
    return None


def _has(obj: Any, attr: str) -> bool:
    try:
        getattr(obj, attr)
    except Exception:
        return False
    return True


class _Switch:
    """Whether a plugin's hooks still run (off after its first failure)."""

    on = True


def guarded_plugin(
    functions: dict[str, Callable[..., Any]],
    label: str,
    *,
    proxy_name: str,
    lifetime: str = "process",
) -> types.ModuleType:
    """A stand-in module with ``functions`` (hook name -> implementation) guarded.

    A guarded hook that raises (anything but ``KeyboardInterrupt``) warns once,
    naming ``label`` (the plugin and its distribution), and switches every hook
    of the plugin off for the rest of the ``lifetime`` (the process for the
    library's registry, a command for the application's plugin managers): the
    run goes on. Each hook receives deep copies of its arguments (modules
    excepted): a hook that edits a record, a history or a result changes only
    its own copy, never what dropkit prints, checkpoints or returns.
    """
    proxy = types.ModuleType(proxy_name)
    switch = _Switch()
    for attr, fn in functions.items():
        setattr(proxy, attr, _guard(fn, attr, label, switch, lifetime))
    return proxy


def _private_copy(value: Any) -> Any:
    """A deep copy of a hook's argument, so that a hook cannot edit what dropkit keeps.

    Modules (an array namespace) are passed as they are; so is a value that
    cannot be copied.
    """
    if isinstance(value, types.ModuleType):
        return value
    try:
        return copy.deepcopy(value)
    except Exception:
        return value


def _guard(
    fn: Callable[..., Any], hook: str, label: str, switch: _Switch, lifetime: str
) -> Callable[..., Any]:
    @functools.wraps(fn)
    def guarded(*args: Any) -> Any:
        if not switch.on:
            return None
        try:
            return fn(*map(_private_copy, args))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            switch.on = False
            plugin_warning(
                f"{label}: its {hook} hook failed ({describe_exception(exc)}); its hooks are "
                f"switched off for the rest of this {lifetime} (the run goes on)",
                stacklevel=2,
            )
            return None

    return guarded
