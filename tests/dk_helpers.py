"""Helpers shared by dropkit's own tests (imported as ``dk_helpers``; ``tests/conftest.py``
puts this folder on ``sys.path``). Fixtures live in ``tests/conftest.py``."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pluggy
import pytest

from dropkit.testing.plugin import skip_here, skip_unavailable
from dropkit.testing.strategies import float_dtypes


def plugin_manager(*plugins: Any) -> pluggy.PluginManager:
    """A new application plugin manager with only ``plugins`` registered (no entry points)."""
    from dropkit.experiment.plugins import new_plugin_manager

    return new_plugin_manager(*plugins, installed=False)


@contextlib.contextmanager
def no_plots() -> Iterator[None]:
    """The application's plugin managers made meanwhile leave out the plots plugin (a second
    a figure; tests/experiment/test_figures checks the figures)."""
    from dropkit.experiment import plugins

    def without_plots(group: str) -> list[Any]:
        return [ep for ep in entry_points(group=group) if ep.name != "plots"]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plugins, "entry_points", without_plots)
        yield


@contextlib.contextmanager
def fast_runs() -> Iterator[None]:
    """In-process runs without the plots plugin and with each dataset made once.

    The plots take a second a run and MNIST-1D is generated afresh on each load;
    tests that train in subprocesses keep both.
    """
    import dropkit.experiment.data

    real, cache = dropkit.experiment.data.load_dataset, {}

    def cached(name: str = "mnist1d", **kwargs: Any) -> Any:
        key = (name, *sorted(kwargs.items()))
        if key not in cache:
            cache[key] = real(name, **kwargs)
        return cache[key]

    dropkit.experiment.data.load_dataset = cached
    try:
        with no_plots():
            yield
    finally:
        dropkit.experiment.data.load_dataset = real


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


TORCH_MISSING = "torch is not installed (optional: its CPU wheel, see the README's Quickstart)"


def importorskip(module: str, reason: str, *, module_level: bool = False) -> Any:
    """``pytest.importorskip`` with one folded summary line per missing module."""
    try:
        return pytest.importorskip(module)
    except pytest.skip.Exception:
        skip_here(reason, allow_module_level=module_level)


def torch_or_skip(*, module_level: bool = False) -> Any:
    """torch, or a skip with the one reason every torch test gives."""
    return importorskip("torch", TORCH_MISSING, module_level=module_level)


def backend_or_skip(name: str) -> Any:
    """The loaded backend ``name``, or the skip the ``backend`` fixture gives (one line each)."""
    import dropkit

    info = {b.name: b for b in dropkit.list_backends()}.get(name)
    if info is None or not info.available:
        skip_unavailable(name, info.reason if info else "not installed")
    return dropkit.get_backend(name)
