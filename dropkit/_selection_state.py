"""What backend selection remembers: loaded backends, ``$DROPKIT_BACKEND`` (read once).

The loaded backends by name, array type and array library are plain dicts, so
compilers that trace the ops (torch Dynamo) follow them.
:mod:`dropkit.registry` fills them when it loads a backend and
:mod:`dropkit.selection`, which builds on the registry, reads them on every
call: the state sits below both, so neither imports the other back.
"""

from __future__ import annotations

import os
from typing import Any

from .backend import Capabilities

__all__ = [
    "BY_LIBRARY",
    "BY_NAME",
    "BY_TYPE",
    "DEFAULT_BACKEND",
    "ENV_VAR",
    "environment_backend",
    "reread_environment",
]

ENV_VAR = "DROPKIT_BACKEND"
DEFAULT_BACKEND = "numpy"

#: Array library (top-level module name) -> the loaded backend serving its arrays.
BY_LIBRARY: dict[str, Capabilities] = {}
#: Array type -> the backend serving it: what the registry answered for that type.
BY_TYPE: dict[type, Capabilities] = {}
#: Backend name -> the loaded backend (a plain dict: compilers follow it).
BY_NAME: dict[str, Capabilities] = {}
_UNREAD = object()
_ENV: list[Any] = [_UNREAD]


def reread_environment() -> str | None:
    """Read ``$DROPKIT_BACKEND`` again (it is read once, at the first selection).

    Returns the name now in effect (None when unset or empty).

    Examples
    --------
    >>> import os
    >>> old = os.environ.pop("DROPKIT_BACKEND", None)
    >>> reread_environment() is None
    True
    >>> if old is not None:  # put the caller's variable back
    ...     os.environ["DROPKIT_BACKEND"] = old
    ...     _ = reread_environment()
    """
    value = os.environ.get(ENV_VAR, "").strip() or None
    _ENV[0] = value
    return value


def environment_backend() -> str | None:
    """The backend ``$DROPKIT_BACKEND`` names (read once per process), or None."""
    value = _ENV[0]
    if value is _UNREAD:
        return reread_environment()
    return value
