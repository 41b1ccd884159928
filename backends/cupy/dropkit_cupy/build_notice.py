"""The one-line notice that the CUDA kernels are being compiled (CuPy's disk cache is cold).

CuPy compiles a ``RawModule`` with NVRTC at its first ``get_function`` and
keeps the binary in its on-disk kernel cache (``$CUPY_CACHE_DIR``, by default
``~/.cupy/kernel_cache``); later processes on the machine load it from there.
The first build on a machine takes seconds, during which nothing else is
printed: this module says so on stderr, once per process, before that build.

Whether the build will be a cold one cannot be read from CuPy (its cache key
includes the NVRTC output of an empty program), so dropkit keeps its own
marker beside CuPy's files: ``dropkit-<hash>.built``, the hash of the kernel
source, the options, the CuPy and NVRTC versions and the device's compute
capability, written after a build succeeds. No marker: the notice. With
``CUPY_CACHE_IN_MEMORY=1`` CuPy compiles in every process, and the notice says
so every time.

Examples
--------
>>> import io, tempfile, types
>>> cupy = types.SimpleNamespace(__version__="14.0")
>>> with tempfile.TemporaryDirectory() as d:
...     err = io.StringIO()
...     marker = before_build(cupy, "src", ("-O3",), cache=d, stream=err, told=[False])
...     after_build(marker)
...     again = before_build(cupy, "src", ("-O3",), cache=d, stream=err, told=[False])
>>> err.getvalue().startswith("dropkit-cupy: compiling"), again is None
(True, True)
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any, TextIO

__all__ = ["after_build", "before_build", "cache_dir"]

#: Whether this process printed the notice (one line per process at most).
_TOLD = [False]


def cache_dir() -> Path:
    """CuPy's on-disk kernel cache: ``$CUPY_CACHE_DIR``, else ``~/.cupy/kernel_cache``."""
    return Path(os.environ.get("CUPY_CACHE_DIR") or Path.home() / ".cupy" / "kernel_cache")


def _in_memory() -> bool:
    return os.environ.get("CUPY_CACHE_IN_MEMORY", "") not in ("", "0")


def _describe(cupy: Any) -> str:
    """CuPy's version, NVRTC's and the current device's compute capability (what is known)."""
    parts = [str(getattr(cupy, "__version__", "?"))]
    for read in (
        lambda: cupy.cuda.nvrtc.getVersion(),
        lambda: cupy.cuda.Device().compute_capability,
    ):
        try:
            parts.append(str(read()))
        except Exception:  # an older or newer CuPy without it: the key is coarser
            parts.append("?")
    return " ".join(parts)


def _marker(cupy: Any, source: str, options: tuple[str, ...], cache: Path) -> Path:
    key = "\0".join((_describe(cupy), *options, source)).encode("utf-8")
    return cache / f"dropkit-{hashlib.sha1(key, usedforsecurity=False).hexdigest()[:24]}.built"


def before_build(
    cupy: Any,
    source: str,
    options: tuple[str, ...],
    *,
    cache: str | Path | None = None,
    stream: TextIO | None = None,
    told: list[bool] | None = None,
) -> Path | None:
    """Print the notice if this build will compile; the marker to write after it (or None).

    ``cache`` defaults to :func:`cache_dir`, ``stream`` to ``sys.stderr``;
    ``told`` is the once-per-process flag (the module's by default).
    """
    if told is None:
        told = _TOLD
    folder = Path(cache) if cache is not None else cache_dir()
    if _in_memory():
        where, marker = "CUPY_CACHE_IN_MEMORY is set: every process compiles", None
    else:
        marker = _marker(cupy, source, options, folder)
        if marker.exists():
            return None
        where = f"once per machine and CuPy version: the binary is cached in {folder}"
    if not told[0]:
        told[0] = True
        out = stream if stream is not None else sys.stderr
        print(f"dropkit-cupy: compiling the CUDA kernels with NVRTC ({where}) ...", file=out)
        out.flush()
    return marker


def after_build(marker: Path | None) -> None:
    """Record that the build succeeded (nothing if the cache folder cannot be written)."""
    if marker is None:
        return
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:  # a read-only cache: CuPy cannot keep its binary there either
        pass
