"""Shared by every test of the repository: markers, the common fixtures, the helpers' folder.

Layout (by subject; module basenames are unique across folders, since the
folders have no ``__init__.py``): ``core/`` the library, ``backends/`` each
backend, ``experiment/`` the ``dropkit`` application, ``reliability/`` hostile
input (issue 11), ``packaging/`` layout, README, the shipped suite's entry point,
third-party backends. The conformance suite itself lives in ``dropkit/testing/``.

Markers (registered in ``pyproject.toml``):

- ``slow``: long fault-injection, kill/resume, study and build tests; not in the
  default run (``addopts``), run with ``-m slow`` (or everything: ``-m ""``).
- ``torch``: every test that involves torch, added here to every collected item
  whose node id names torch (the same items ``-k torch`` selects: torch's own
  modules, the ``[torch]`` parametrizations, backends/torch's doctests).
  This hook sees every item of the session (pytest calls it once with all items),
  so it also marks ``dropkit/`` and ``backends/`` items when ``tests/`` is collected.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # dk_helpers, in any import mode


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    torch = pytest.mark.torch
    for item in items:
        if "torch" in item.nodeid.lower():
            item.add_marker(torch)


@pytest.fixture(scope="module", autouse=True)
def _release_jax_compilations():
    """Drop JAX's compiled computations after each module (kept for the process otherwise).

    Every shape a test compiles stays cached; over the whole suite that is gigabytes.
    """
    yield
    jax = sys.modules.get("jax")
    if jax is not None:
        jax.clear_caches()


@pytest.fixture(scope="module")
def data():
    """MNIST-1D with 300 training examples (4 full batches of 64 and one of 44)."""
    from dropkit.experiment.data import load_dataset

    return load_dataset("mnist1d", train_size=300)


@pytest.fixture
def nnx():
    """Flax NNX, or a skip where Flax is not installed."""
    from dk_helpers import importorskip

    importorskip("flax", "Flax is not installed (dropkit-jax[flax])")
    from flax import nnx

    return nnx


@pytest.fixture
def eqx():
    """Equinox, or a skip where it is not installed."""
    from dk_helpers import importorskip

    return importorskip("equinox", "Equinox is not installed (dropkit-jax[equinox])")
