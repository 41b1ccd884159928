"""Build every distribution and install dropkit from the wheels as a new user would.

``uv build --all-packages`` builds each distribution's sdist and then its wheel
from that sdist (so an sdist that lacks a file fails here); a fresh virtual
environment outside the repository gets only ``dropkit[testing]`` from those
wheels (third-party packages from the index, through uv's cache); then, from a
folder outside the repository, the library, the ``dropkit`` command and the
shipped conformance suite must work.

uv is tried offline first (its cache from an earlier run), then with the
network. Marked slow: 37-56 s on 2 cores with the cache warm (2026-12-04).
"""

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
UV = os.environ.get("UV") or shutil.which("uv")
# Distribution name -> its package (what a wheel holds beside its .dist-info).
PACKAGES = {
    "dropkit": "dropkit",
    "dropkit_numpy": "dropkit_numpy",
    "dropkit_array_api_strict": "dropkit_array_api_strict",
    "dropkit_cupy": "dropkit_cupy",
    "dropkit_dask": "dropkit_dask",
    "dropkit_jax": "dropkit_jax",
    "dropkit_torch": "dropkit_torch",
    "dropkit_plots": "dropkit_plots",
}
# What an sdist may hold beside its package (PKG-INFO and .gitignore are hatchling's).
SDIST_FILES = {"pyproject.toml", "PKG-INFO", ".gitignore", "README.md", "LICENSE", "CHANGELOG.md"}
JUNK = {"tests", "benchmarks", "docs", "examples", ".venv", ".git", "__pycache__", "runs"}


def _env():
    """The environment without the repository's virtual environment or pytest's variables."""
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT", "DROPKIT_BACKEND"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST_")}


def _run(cmd, cwd, timeout=900):
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def _uv(args, cwd):
    """``uv ARGS``: offline first (the cache), then with the network; fails with uv's output."""
    for offline in (["--offline"], []):
        result = _run([UV, *args, *offline], cwd)
        if result.returncode == 0:
            return result
    pytest.fail(f"`uv {' '.join(map(str, args))}` failed:\n{result.stdout}\n{result.stderr}")


def _bin(venv, name):
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """Every sdist and wheel of the workspace, freshly built."""
    if UV is None:
        pytest.skip("uv is not installed (pip install uv): it builds and installs the wheels")
    out = tmp_path_factory.mktemp("dist")
    _uv(["build", "--all-packages", "--out-dir", out], cwd=ROOT)
    return out


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory):
    """A fresh virtual environment with only ``dropkit[testing]`` installed from the wheels."""
    home = tmp_path_factory.mktemp("user")
    venv = home / "venv"
    _uv(["venv", "--python", sys.executable, venv], cwd=home)
    python = _bin(venv, "python")
    _uv(["pip", "install", "--python", python, "--find-links", dist, "dropkit[testing]"], home)
    return venv


@pytest.fixture
def outside(tmp_path):
    """A working directory outside the repository (nothing of it importable from there)."""
    assert ROOT not in tmp_path.parents
    return tmp_path


def _wheels(dist):
    wheels = {w.name.split("-")[0]: w for w in dist.glob("*.whl")}
    assert set(wheels) == set(PACKAGES), sorted(wheels)
    return wheels


def test_every_wheel_holds_its_package_license_and_py_typed_only(dist):
    for name, wheel in _wheels(dist).items():
        package = PACKAGES[name]
        files = zipfile.ZipFile(wheel).namelist()
        info = next(f.split("/")[0] for f in files if ".dist-info/" in f)
        assert {f.split("/")[0] for f in files} == {package, info}, wheel.name
        assert f"{info}/licenses/LICENSE" in files, wheel.name
        assert f"{package}/py.typed" in files, wheel.name
        assert f"{package}/_version.py" in files, wheel.name
        assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")], wheel.name
    core = zipfile.ZipFile(_wheels(dist)["dropkit"]).namelist()
    assert "dropkit/testing/plugin.py" in core and "dropkit/experiment/cli.py" in core
    # the CUDA C source: one copy, package data of the core, read by dropkit-cupy and
    # dropkit-torch (torch users on CUDA need no dropkit-cupy)
    assert "dropkit/_cuda/kernels.cu" in core
    cupy = zipfile.ZipFile(_wheels(dist)["dropkit_cupy"]).namelist()
    assert not [f for f in cupy if f.endswith(".cu")]


def test_every_sdist_holds_what_builds_the_wheel_and_no_repository_junk(dist):
    sdists = list(dist.glob("*.tar.gz"))
    assert len(sdists) == len(PACKAGES)
    for sdist in sdists:
        name = sdist.name.split("-")[0]
        with tarfile.open(sdist) as tar:
            parts = [m.name.split("/")[1:] for m in tar.getmembers() if m.isfile()]
        top = {p[0] for p in parts}
        assert top == {PACKAGES[name]} | (SDIST_FILES & top), sdist.name
        assert {"pyproject.toml", "README.md", "LICENSE", "PKG-INFO"} <= top, sdist.name
        for path in parts:
            assert not JUNK & set(path), (sdist.name, "/".join(path))
            assert not any(p.startswith("tmp") for p in path[:-1]), (sdist.name, "/".join(path))


def test_only_dropkit_and_its_numpy_backend_come_from_the_wheels(venv, dist, outside):
    code = (
        "import importlib.metadata as m\n"
        "for d in m.distributions():\n"
        "    if d.metadata['Name'].startswith('dropkit'):\n"
        "        print(d.metadata['Name'], d.read_text('METADATA') == open(d.metadata['Name']"
        "+ '.METADATA').read())\n"
    )
    for name in ("dropkit", "dropkit_numpy"):
        with zipfile.ZipFile(_wheels(dist)[name]) as wheel:
            metadata = next(f for f in wheel.namelist() if f.endswith(".dist-info/METADATA"))
            (outside / f"{name.replace('_', '-')}.METADATA").write_bytes(wheel.read(metadata))
    result = _run([_bin(venv, "python"), "-c", code], outside)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == ["dropkit True", "dropkit-numpy True"]


def test_the_library_works_outside_the_repository(venv, outside):
    code = (
        "import dropkit, numpy\n"
        "y = dropkit.dropout(numpy.ones(4), .5, rng=0)\n"
        "assert set(y.tolist()) <= {0.0, 2.0}, y\n"
        "print(dropkit.__file__)\n"
    )
    result = _run([_bin(venv, "python"), "-c", code], outside)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(venv)


def test_the_command_lists_the_numpy_backend(venv, outside):
    result = _run([_bin(venv, "dropkit"), "backends"], outside)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert rows["numpy"][1:4] == ["dropkit-numpy", rows["numpy"][2], "available"]
    assert set(rows) == {"numpy"}  # no other backend is installed with dropkit


def test_the_shipped_suite_passes(venv, outside):
    suite = ["-m", "pytest", "--pyargs", "dropkit.testing", "-q", "-p", "no:cacheprovider"]
    result = _run([_bin(venv, "python"), *suite], outside)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
