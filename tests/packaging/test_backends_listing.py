"""``dropkit backends`` lists the backends without importing their libraries.

Loading every backend imported JAX, Dask, Numba, ... (4-14 s); the listing now
asks ``importlib.util.find_spec`` whether a backend's array libraries are
installed, and loads only a backend with one missing (which fails at its first
import, with the plugin's own reason). ``--load`` still loads every backend.
Each case runs in a fresh process: the registry and ``sys.modules`` are
process-wide.
"""

import json
import os
import subprocess
import sys

import pytest

# Modules a backend imports when it loads, never while listing.
HEAVY = ("jax", "dask", "torch", "cupy", "numba", "array_api_strict", "array_api_compat.numpy")

LIST = """
import json, sys
from dropkit.experiment.cli import main
status = main(["backends", *sys.argv[1:]])
loaded = sorted(m for m in HEAVY if sys.modules.get(m) is not None)
print(json.dumps({"status": status, "loaded": loaded}))
"""


def _run(*args, site=None):
    env = {k: v for k, v in os.environ.items() if k != "DROPKIT_BACKEND"}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    code = f"HEAVY = {HEAVY!r}\n{LIST}"
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    *table, summary = result.stdout.splitlines()
    rows = {line.split()[0]: line for line in table[1:]}
    return rows, json.loads(summary)


def test_listing_imports_no_backend_library():
    rows, summary = _run()
    assert summary == {"status": 0, "loaded": []}
    assert rows["numpy"].split()[:4] == ["numpy", "dropkit-numpy", "0.1.0", "available"]
    assert rows["array_api_strict"].split()[3] == "available"


def test_a_backend_whose_library_is_missing_shows_the_plugins_reason(tmp_path):
    # array_api_strict is installed here; hide it as an uninstalled library looks.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nsys.modules['array_api_strict'] = None\n"
    )
    rows, summary = _run(site=tmp_path)
    line = rows["array_api_strict"]
    assert line.split()[3] == "unavailable"
    assert "array_api_strict" in line.split(None, 4)[4] and "dropkit-array-api-strict" in line
    assert rows["numpy"].split()[3] == "available"
    assert summary["loaded"] == []


@pytest.mark.parametrize("name", ["jax", "dask"])
@pytest.mark.slow  # several processes or a training: seconds
def test_load_checks_by_loading(name):
    pytest.importorskip(name)
    rows, summary = _run("--load")
    assert name in summary["loaded"]
    assert rows[name].split()[3] == "available"


def test_the_cheap_listing_agrees_with_loading_here():
    code = (
        "import dropkit, json\n"
        "cheap = [(b.name, b.available) for b in dropkit.list_backends(load=False)]\n"
        "full = [(b.name, b.available) for b in dropkit.list_backends()]\n"
        "print(json.dumps([cheap, full]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    cheap, full = json.loads(out)
    assert cheap == full
