"""Every distribution of the workspace is ready to publish, read from its ``pyproject.toml``.

Fast checks without a build (``test_wheels.py`` builds and installs): one
LICENSE text everywhere, a README and ``py.typed`` per distribution, the
version in one file per distribution and the same in all (they are released
together), and each backend bound to the core's minor version, because it
imports the core's private modules.
"""

import importlib.metadata
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import dropkit

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = [ROOT, *sorted(ROOT.glob("backends/*")), *sorted(ROOT.glob("plugins/*"))]
CORE = Version(dropkit.__version__)
NEXT_MINOR = f"{CORE.major}.{CORE.minor + 1}"


def _pyproject(project):
    return tomllib.loads((project / "pyproject.toml").read_text())


def _package(project):
    (package,) = _pyproject(project)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return package


def _id(project):
    return project.relative_to(ROOT).as_posix() if project != ROOT else "root"


@pytest.fixture(params=PROJECTS, ids=_id)
def project(request):
    return request.param


def test_the_workspace_has_every_distribution():
    names = {_pyproject(p)["project"]["name"] for p in PROJECTS}
    assert {"dropkit", "dropkit-numpy", "dropkit-torch", "dropkit-jax", "dropkit-plots"} <= names
    assert len(names) == len(PROJECTS) == 8


def test_license_readme_and_py_typed(project):
    meta = _pyproject(project)["project"]
    assert meta["license"] == "BSD-3-Clause" and meta["license-files"] == ["LICENSE"]
    assert (project / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert "Copyright (c) 2026, the dropkit developers" in (ROOT / "LICENSE").read_text()
    assert meta["readme"] == "README.md"
    assert (project / "README.md").read_text().startswith(f"# {meta['name']}\n")
    assert (project / _package(project) / "py.typed").is_file()


def test_metadata_fields(project):
    meta = _pyproject(project)["project"]
    assert meta["authors"] == [{"name": "dropkit developers"}]
    assert meta["requires-python"] == ">=3.11"
    assert "Typing :: Typed" in meta["classifiers"]
    assert "Programming Language :: Python :: 3.11" in meta["classifiers"]
    # PEP 639: the license expression replaces license classifiers (tools refuse both)
    assert not [c for c in meta["classifiers"] if c.startswith("License ::")]
    assert meta["keywords"] and meta["description"]


def test_the_version_has_one_source_per_distribution_and_all_agree(project):
    pyproject = _pyproject(project)
    assert "version" not in pyproject["project"] and pyproject["project"]["dynamic"] == ["version"]
    path = pyproject["tool"]["hatch"]["version"]["path"]
    assert path == f"{_package(project)}/_version.py"
    found = re.findall(r'^__version__ = "([^"]+)"$', (project / path).read_text(), re.MULTILINE)
    assert found == [dropkit.__version__]


def test_the_installed_core_reports_the_same_version():
    assert importlib.metadata.version("dropkit") == dropkit.__version__


def test_backends_require_the_cores_minor_version(project):
    requirements = [Requirement(r) for r in _pyproject(project)["project"]["dependencies"]]
    ours = [r for r in requirements if r.name.startswith("dropkit")]
    if project == ROOT:  # `pip install dropkit` brings the NumPy backend
        assert [r.name for r in ours] == ["dropkit-numpy"]
    else:
        assert "dropkit" in [r.name for r in ours]
    for r in ours:
        assert r.specifier == f">={CORE.major}.{CORE.minor},<{NEXT_MINOR}", str(r)
        assert CORE in r.specifier and Version(NEXT_MINOR) not in r.specifier


def test_the_sdist_holds_only_what_builds_the_wheel(project):
    targets = _pyproject(project)["tool"]["hatch"]["build"]["targets"]
    included = set(targets["sdist"]["only-include"])
    assert {_package(project), "README.md", "LICENSE"} <= included
    assert included <= {_package(project), "README.md", "LICENSE", "CHANGELOG.md"}


def test_the_changelog_keeps_an_unreleased_section():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n") and "Keep a Changelog" in text
    assert "\n## [Unreleased]\n" in text


def test_no_scratch_folders_are_committed():
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing committed to check")
    files = subprocess.run(
        [git, "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert not [f for f in files if re.match(r"tmp[^/]*/", f)]


# The libraries each README's Python examples need (the others skip where missing).
README_NEEDS = {
    "backends/numpy": (),
    "backends/strict": ("array_api_strict",),
    "backends/dask": ("dask",),
    "backends/jax": ("jax",),
    "backends/torch": ("torch",),
    "backends/cupy": ("cupy",),
}


@pytest.mark.parametrize("folder", sorted(README_NEEDS))
def test_a_backends_readme_examples_run(folder):
    for module in README_NEEDS[folder]:
        pytest.importorskip(module)
    if folder == "backends/cupy":
        info = {b.name: b for b in dropkit.list_backends()}["cupy"]
        if not info.available:
            pytest.skip(f"the cupy backend is unavailable here: {info.reason}")
    text = (ROOT / folder / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, f"{folder}/README.md", "exec"), {})
