"""Which backend a call uses: explicit, context, environment, array type, NumPy.

The order, for an op on the array ``x``:

1. ``backend=`` passed to the op;
2. the innermost :func:`use_backend` context (a :class:`contextvars.ContextVar`,
   so threads and asyncio tasks each have their own);
3. ``$DROPKIT_BACKEND``, read once, at the first selection of the process
   (:func:`reread_environment` reads it again after a change at run time);
4. the backend serving ``x``'s type: the registry's backend for the library
   of ``type(x).__module__`` (its record's ``namespaces``), remembered in a
   plain dict (:data:`BY_TYPE`) that compilers such as torch Dynamo follow;
5. ``numpy`` (for calls without arrays, e.g. :func:`dropkit.dropout_mask`).

:data:`BY_TYPE` is filled by the first eager call on an array of that type,
and :data:`BY_LIBRARY` (used while a compiler traces, whose arrays have tracer
types) when a backend is loaded, from its record's ``namespaces``. Both only
remember what the registry answers, so no import order changes which backend a
call uses; registering a backend is its plugin's ``dropkit_backends`` record.

Inside ``torch.compile`` the registry cannot be traced: load the backend once
before compiling (any eager dropkit call on a tensor, or
``dropkit.get_backend("torch")``). Dynamo cannot read context variables either:
inside compiled code a :func:`use_backend` context is not consulted (pass
``backend=`` there).

Examples
--------
>>> import numpy as np
>>> import dropkit
>>> with dropkit.use_backend("array_api_strict"):
...     select_by_name(None).name
'array_api_strict'
>>> select(np.ones(2), "x", None).name
'numpy'
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from ._selection_state import (
    _ENV,
    BY_LIBRARY,
    BY_NAME,
    BY_TYPE,
    DEFAULT_BACKEND,
    ENV_VAR,
    environment_backend,
    reread_environment,
)
from .backend import ArrayAPIBackend, Backend, Capabilities, capabilities
from .checks import namespace_of
from .registry import check_name, get_registry, load_capabilities

__all__ = [
    "BY_LIBRARY",
    "BY_NAME",
    "BY_TYPE",
    "ENV_VAR",
    "environment_backend",
    "get_backend",
    "library_of",
    "reread_environment",
    "select",
    "select_by_name",
    "use_backend",
]

#: ``(backend name, array type)`` -> whether the backend's namespace is the array's.
_SERVES: dict[tuple[str, type], bool] = {}

_CONTEXT: ContextVar[str | None] = ContextVar("dropkit_backend", default=None)
#: How many use_backend contexts are open in the process (any thread): when 0,
#: the context variable is not read (a plain global read, which Dynamo follows).
_OPEN = [0]


def _compiling() -> bool:
    """Whether torch Dynamo is tracing (looked up in ``sys.modules``: no framework import)."""
    torch = sys.modules.get("torch")
    return torch is not None and bool(torch.compiler.is_compiling())


def _context_backend() -> str | None:
    if not _OPEN[0] or _compiling():
        return None
    return _CONTEXT.get()


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[Capabilities]:
    """Select the backend ``name`` for the ops called inside the ``with`` block.

    An explicit ``backend=`` still wins; the block wins over
    ``$DROPKIT_BACKEND`` and over the arrays' library. The backend is loaded
    on entry, so a bad name fails there. Contexts nest, and each thread and
    asyncio task has its own (a :class:`contextvars.ContextVar`).

    Yields
    ------
    Capabilities
        The loaded backend.

    Examples
    --------
    >>> import numpy as np
    >>> import dropkit
    >>> with dropkit.use_backend("numpy") as b:
    ...     b.name
    'numpy'
    """
    caps = select_by_name(name)
    token = _CONTEXT.set(caps.name)
    _OPEN[0] += 1
    try:
        yield caps
    finally:
        _OPEN[0] -= 1
        _CONTEXT.reset(token)


def _refuse_inside_torch_compile(what: str) -> None:
    if _compiling():
        raise RuntimeError(
            f"dropkit reached its plugin registry inside torch.compile ({what}), which "
            "cannot be traced; load the backend before compiling: call any dropkit op "
            "eagerly on a tensor first, or dropkit.get_backend('torch')"
        )


def select_by_name(name: str | None, *, source: str = "") -> Capabilities:
    """The loaded backend called ``name`` (by the rules above when None: context, env, numpy)."""
    if name is None:
        name = _context_backend()
        if name is None:
            name = environment_backend()
            source = f" (from ${ENV_VAR})" if name is not None else ""
        if name is None:
            name = DEFAULT_BACKEND
    hit = BY_NAME.get(name) if isinstance(name, str) else None
    if hit is not None:
        return hit
    check_name(name)
    _refuse_inside_torch_compile(f"backend {name!r}")
    return load_capabilities(name, source=source)


def library_of(x: Any) -> str:
    """The top-level package of ``x``'s type (``numpy`` for ``numpy.ndarray``)."""
    return type(x).__module__.partition(".")[0]


def select(x: Any, name: str, backend: str | None) -> Capabilities:
    """The backend for an op on the array ``x`` (argument ``name``), by the rules above.

    Raises TypeError when ``x`` is not an array, or is one of another library
    than the selected backend's.
    """
    if backend is None:
        chosen = _context_backend()
        if chosen is None:
            chosen = environment_backend()
        if chosen is None:
            hit = BY_TYPE.get(type(x))
            if hit is None and _compiling():  # a tracer's type: the library's backend
                hit = BY_LIBRARY.get(library_of(x))
            return hit if hit is not None else _by_array(x, name)
        caps = select_by_name(chosen, source=f" (from ${ENV_VAR})" if chosen is _ENV[0] else "")
    else:
        caps = select_by_name(backend)
    served = _SERVES.get((caps.name, type(x)))
    if served is None:
        served = _SERVES[(caps.name, type(x))] = namespace_of(x, name) is caps.xp
    if not served:
        xp = namespace_of(x, name)
        raise TypeError(
            f"{name} is an array of {xp.__name__}, but the selected backend {caps.name!r} "
            f"serves {caps.xp.__name__}; pass backend= matching the array, or unset "
            f"{ENV_VAR} (or leave the use_backend block)"
        )
    return caps


def _by_array(x: Any, name: str) -> Capabilities:
    """The registry's backend for ``x``'s library (loading it); the reference for others."""
    _refuse_inside_torch_compile(f"arrays of {library_of(x)}")
    found = get_registry().name_for_array(x)  # (several third-party claimants: an error)
    xp = namespace_of(x, name)  # a clear TypeError for a non-array
    if found is None:
        # An array library no plugin registered: the array-API reference path works
        # on any conforming namespace.
        caps = capabilities(ArrayAPIBackend(f"array-api:{xp.__name__}", xp))
    else:
        caps = load_capabilities(found)
        if caps.xp is not xp:
            raise TypeError(
                f"{name} is an array of {xp.__name__}, but the backend {caps.name!r} registered "
                f"for {library_of(x)} arrays serves {caps.xp.__name__}; pass backend= explicitly"
            )
    if len(BY_TYPE) >= 256:  # a bound, for processes that see many array types
        BY_TYPE.clear()
    BY_TYPE[type(x)] = caps
    return caps


def get_backend(name: str | None = None, *arrays: Any) -> Backend:
    """Select and load a backend.

    Parameters
    ----------
    name : str, optional
        An explicit backend name. If omitted: the :func:`dropkit.use_backend`
        context, ``$DROPKIT_BACKEND`` (read once), then the backend registered
        for the library of ``arrays``, then ``numpy``.
    *arrays
        Arrays the backend is for (embedded use).

    Returns
    -------
    Backend

    Raises
    ------
    TypeError
        For a name that is not a string.
    ValueError
        For an empty or unknown name (the message lists the installed backends
        and says when the name came from ``$DROPKIT_BACKEND``).
    RuntimeError
        For a backend that cannot be loaded here (with the reason and the
        distribution), or arrays claimed by several third-party backends.

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
    check_name(name)
    if arrays:
        return select(arrays[0], "x", name).backend
    return select_by_name(name).backend
