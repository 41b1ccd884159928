r"""What dropkit lets an installed plugin do: which ones load, what reaches the terminal.

The threat model (docs/reliability.md, "Plugins"): a plugin is code the user
installed; dropkit isolates its *mistakes* (an exception, a bad record, a
raising hook, a hook that edits what it is given) and does not pretend to
contain its *malice* (``os._exit``, a hang at import, monkey-patching dropkit).
Within that:

- ``$DROPKIT_PLUGINS`` chooses the plugins that load, for both the library's
  backends and the application's hooks: unset or ``all`` (every installed
  plugin), ``builtin`` (only this project's own distributions), or a comma
  list of distribution names, which may include ``builtin``. A plugin left out
  is still listed by ``dropkit backends``, with the reason.
- Text a plugin controls (its names, summaries, error messages) is made
  printable before it reaches a terminal (:func:`printable`).
- A plugin's warning never becomes a traceback, even under ``-W error``
  (:func:`plugin_warning`).

Examples
--------
>>> printable("red \x1b[31mtext")
'red \\x1b[31mtext'
>>> refused_by_policy("dropkit-numpy", "builtin") is None
True
>>> refused_by_policy("someone-elses-plugin", "builtin")
"left out by DROPKIT_PLUGINS='builtin' (only this project's own plugins)"
"""

from __future__ import annotations

import os
import re
import sys
import warnings

__all__ = ["BUILTIN", "ENV", "plugin_warning", "printable", "refused_by_policy"]

#: The environment variable that chooses the plugins that load.
ENV = "DROPKIT_PLUGINS"

#: This project's own distributions (what ``DROPKIT_PLUGINS=builtin`` keeps).
BUILTIN = frozenset(
    {
        "dropkit",
        "dropkit-numpy",
        "dropkit-cupy",
        "dropkit-torch",
        "dropkit-jax",
        "dropkit-dask",
        "dropkit-array-api-strict",
        "dropkit-plots",
    }
)

# C0 controls but tab, DEL, C1 controls, and the bidirectional overrides
_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    r"""``text`` with every control character (escape sequences included) spelt as ``\xNN``.

    Newlines too: one plugin message stays one line.

    Examples
    --------
    >>> printable("a\nb\x07")
    'a\\x0ab\\x07'
    """
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def _normal(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def refused_by_policy(dist: str, value: str | None = None) -> str | None:
    """Why ``$DROPKIT_PLUGINS`` leaves distribution ``dist`` out, or None if it loads.

    Parameters
    ----------
    dist : str
        The plugin's distribution name.
    value : str, optional
        The policy; default: the environment variable, read now.

    Raises
    ------
    ValueError
        If the policy names nothing (e.g. ``","``).
    """
    if value is None:
        value = os.environ.get(ENV)
    if value is None or value.strip().lower() in ("", "all"):
        return None
    names = {_normal(n.strip()) for n in value.split(",") if n.strip()}
    if not names:
        raise ValueError(
            f"{ENV}={value!r} names no plugin: use 'all' (the default), 'builtin' (only "
            "dropkit's own plugins) or a comma list of distribution names"
        )
    if _normal(dist) in names or ("builtin" in names and _normal(dist) in BUILTIN):
        return None
    if names == {"builtin"}:
        return f"left out by {ENV}={value!r} (only this project's own plugins)"
    return f"left out by {ENV}={value!r} (not among the distributions it names)"


def plugin_warning(message: str, stacklevel: int = 2) -> None:
    """Warn about a plugin (a RuntimeWarning), the message made printable.

    Under ``-W error`` (or ``PYTHONWARNINGS=error``) the warning would be raised
    and end the command with a traceback about someone else's plugin; it is
    written to stderr instead, and the command goes on.
    """
    text = printable(message)
    try:
        warnings.warn(text, RuntimeWarning, stacklevel=stacklevel + 1)
    except Warning:
        print(f"dropkit: warning: {text}", file=sys.stderr)
