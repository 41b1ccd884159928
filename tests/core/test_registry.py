import subprocess
import sys
import types
from importlib.metadata import EntryPoint

import array_api_strict
import numpy as np
import pytest

import dropkit
from dropkit import BackendRecord, hookimpl, registry, selection


def _plugin_module(name, records_fn):
    mod = types.ModuleType(name)
    mod.dropkit_backends = hookimpl(records_fn)
    sys.modules[name] = mod
    return mod


@pytest.fixture
def fake_registry(monkeypatch):
    """A registry built from fake entry points: good, broken import, broken hook, no library."""

    def missing_library():
        raise ImportError("No module named 'imaginary_gpu_lib'")

    _plugin_module(
        "fake_good",
        lambda: [
            BackendRecord(
                "good",
                "works",
                lambda: dropkit.ArrayAPIBackend("good", array_api_strict),
                ("array_api_strict",),
            )
        ],
    )
    _plugin_module("fake_nolib", lambda: [BackendRecord("gpu", "needs a GPU", missing_library)])

    def raising():
        raise RuntimeError("hook exploded")

    _plugin_module("fake_hook", raising)
    eps = [
        EntryPoint("good", "fake_good", "dropkit"),
        EntryPoint("gpu", "fake_nolib", "dropkit"),
        EntryPoint("hook", "fake_hook", "dropkit"),
        EntryPoint("broken", "fake_does_not_exist_xyz", "dropkit"),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    registry.get_registry.cache_clear()
    yield
    registry.get_registry.cache_clear()


def test_broken_plugins_warn_and_are_listed_never_fatal(fake_registry):
    with pytest.warns(RuntimeWarning, match="failed to load|raised"):
        infos = {b.name: b for b in dropkit.list_backends()}
    assert set(infos) == {"good", "gpu", "hook", "broken"}
    assert infos["good"].available and infos["good"].reason is None
    assert not infos["gpu"].available and "imaginary_gpu_lib" in infos["gpu"].reason
    assert not infos["hook"].available and "hook exploded" in infos["hook"].reason
    assert not infos["broken"].available and "fake_does_not_exist_xyz" in infos["broken"].reason
    with pytest.raises(RuntimeError, match="backend 'gpu' is unavailable: ImportError"):
        dropkit.get_backend("gpu")


@pytest.fixture
def environment(monkeypatch):
    """Set $DROPKIT_BACKEND (or unset it with None) and have dropkit read it again."""

    def set_to(value):
        if value is None:
            monkeypatch.delenv("DROPKIT_BACKEND", raising=False)
        else:
            monkeypatch.setenv("DROPKIT_BACKEND", value)
        selection.reread_environment()

    yield set_to
    monkeypatch.undo()
    selection.reread_environment()


def test_selection_order(environment):
    x = array_api_strict.ones(3)
    environment(None)
    assert dropkit.get_backend().name == "numpy"  # the default
    assert dropkit.get_backend(None, x).name == "array_api_strict"  # from the arrays
    environment("array_api_strict")
    assert dropkit.get_backend().name == "array_api_strict"  # the environment
    assert dropkit.get_backend("numpy").name == "numpy"  # explicit wins
    with dropkit.use_backend("numpy"):  # the context wins over the environment
        assert dropkit.get_backend().name == "numpy"
        assert dropkit.get_backend("array_api_strict").name == "array_api_strict"


def test_environment_backend_that_does_not_serve_the_array(environment):
    environment("array_api_strict")
    with pytest.raises(TypeError, match=r"x is an array of .*numpy.*'array_api_strict'"):
        dropkit.dropout(np.ones(3), 0.5, rng=0)


def test_explicit_backend_must_match_the_array():
    with pytest.raises(TypeError, match="selected backend 'numpy'"):
        dropkit.dropout(array_api_strict.ones(3), 0.5, rng=0, backend="numpy")


def test_unknown_backend_lists_installed():
    with pytest.raises(ValueError, match=r"installed backends: array_api_strict, .*numpy"):
        dropkit.get_backend("cuda-magic")


def test_backends_command_lists_distribution_version_and_status():
    out = subprocess.run(
        [sys.executable, "-m", "dropkit.experiment.cli", "backends"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "dropkit-numpy" in lines["numpy"] and "available" in lines["numpy"]
    assert "dropkit-array-api-strict" in lines["array_api_strict"]
    assert "0.1.0" in lines["numpy"]


def test_the_per_type_lookup_follows_the_environment_and_the_registry(environment):
    # dropout remembers array type -> backend; a change of the variable (read again)
    # or a rebuilt registry must not be hidden by an earlier call.
    environment(None)
    x = np.ones(8, np.float32)
    dropkit.dropout(x, 0.5, rng=0)  # remembered: numpy
    environment("array_api_strict")
    with pytest.raises(TypeError, match="serves array_api_strict"):
        dropkit.dropout(x, 0.5, rng=0)
    environment(None)
    first = selection.select(x, "x", None).backend
    registry.get_registry.cache_clear()
    try:
        again = selection.select(x, "x", None).backend
        assert again is not first  # loaded from the new registry, not the stale entry
        assert again is dropkit.get_backend("numpy")
    finally:
        registry.get_registry.cache_clear()
