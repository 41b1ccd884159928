"""What a run was made with: the ``"environment"`` entry of a run folder's ``config.json``.

The backend actually used (``config.backend`` stays what was asked for; null
means the default), the versions of dropkit and the libraries the numbers depend
on, the git commit when dropkit runs from a git checkout, the command line, and
the BLAS/OpenMP thread pools (:func:`threadpoolctl.threadpool_info`) and Numba's
thread count in effect when the command starts (``"threads_at_start"``: a limit
the training loop applies while it runs is recorded by the loop, not here).
Every part is best effort: a missing library or ``git`` gives ``None``, never an
error.

Examples
--------
>>> from dropkit.selection import get_backend
>>> env = environment(get_backend("numpy"), ["dropkit", "train"])
>>> env["backend"], env["command_line"]
('numpy', 'dropkit train')
>>> sorted(env["versions"])
['array-api-compat', 'backend library', 'dropkit', 'numba', 'numpy', 'python']
"""

from __future__ import annotations

import importlib.metadata
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["environment", "git_commit", "thread_pools"]

_LIBRARIES = ("dropkit", "numpy", "numba", "array-api-compat")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _library(xp: Any) -> str:
    """The array library under a namespace: ``array_api_compat.torch`` -> ``torch``."""
    parts = str(getattr(xp, "__name__", "")).split(".")
    return parts[1] if parts[0] == "array_api_compat" and len(parts) > 1 else parts[0]


def _backend_library(backend: Any) -> dict[str, str | None]:
    name = _library(backend.xp)
    module = sys.modules.get(name)
    version = _version(name.replace("_", "-")) or _version(name)
    if version is None and module is not None:
        version = getattr(module, "__version__", None)
    return {"name": name, "version": version}


def git_commit(where: str | Path | None = None) -> dict[str, Any] | None:
    """The commit (and whether the tree has changes) of the git checkout holding ``where``.

    ``where`` defaults to the folder of the dropkit package. None outside a git
    checkout, or when ``git`` is missing or slow.

    Examples
    --------
    >>> import tempfile
    >>> git_commit(tempfile.mkdtemp()) is None
    True
    """
    folder = Path(where) if where is not None else Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(folder), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    changes = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "modified": None if changes is None else bool(changes)}


def thread_pools() -> list[dict[str, Any]]:
    """The loaded BLAS/OpenMP pools and their thread counts (threadpoolctl, a dependency)."""
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "num_threads", "version", "prefix")
    return [{k: pool.get(k) for k in keep} for pool in threadpool_info()]


def _numba_threads() -> int | None:
    numba = sys.modules.get("numba")  # only if loaded: importing it takes a second
    if numba is None:
        return None
    try:
        return int(numba.get_num_threads())
    except Exception:  # a broken numba must not stop the run
        return None


def environment(backend: Any, argv: Sequence[str]) -> dict[str, Any]:
    """The ``"environment"`` entry of ``config.json`` for a run on ``backend``.

    Parameters
    ----------
    backend : Backend
        The loaded backend the run uses.
    argv : sequence of str
        The command line, program name first.
    """
    versions: dict[str, Any] = {lib: _version(lib) for lib in _LIBRARIES}
    versions["python"] = platform.python_version()
    versions["backend library"] = _backend_library(backend)
    return {
        "backend": backend.name,
        "versions": versions,
        "git": git_commit(),
        "command_line": shlex.join(argv),
        "threads_at_start": {"blas_openmp": thread_pools(), "numba": _numba_threads()},
        "platform": platform.platform(),
    }
