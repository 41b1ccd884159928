"""Helpers shared by dropkit's own tests (imported as ``dk_helpers``; ``tests/conftest.py``
puts this folder on ``sys.path``). Fixtures live in ``tests/conftest.py``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pluggy
import pytest

from dropkit import hookspecs
from dropkit.testing.plugin import skip_here
from dropkit.testing.strategies import float_dtypes


def plugin_manager(*plugins: Any) -> pluggy.PluginManager:
    """A fresh dropkit plugin manager with only ``plugins`` registered (no entry points)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for plugin in plugins:
        pm.register(plugin)
    return pm


def strip_seconds(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run's history without its wall-clock column (the rest is deterministic)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with a hash of its bytes."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


def needs_float64(backend: Any) -> None:
    """Skip (one folded reason per backend) where ``backend`` has no float64 here."""
    if "float64" not in float_dtypes(backend.xp):
        skip_here(f"backend {backend.name!r} has no float64 here")


def key_of(jax_key: Any) -> int:
    """dropkit's key for a JAX key: d1 + 2**32 d0 (the documented mapping)."""
    import jax

    d0, d1 = (int(w) for w in jax.random.key_data(jax_key))
    return d1 + (d0 << 32)


def importorskip(module: str, reason: str) -> Any:
    """``pytest.importorskip`` with one folded summary line per missing module."""
    try:
        return pytest.importorskip(module)
    except pytest.skip.Exception:
        skip_here(reason)
