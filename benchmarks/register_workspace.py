"""Make the workspace's distributions visible to importlib.metadata without installing them.

For offline machines without a build backend (the GPU check): for each
``pyproject.toml`` of the workspace, write ``<name>-<version>.dist-info`` with
its metadata and entry points into FOLDER. With FOLDER and the source folders
on PYTHONPATH, plugin discovery (``dropkit`` and ``pytest11`` entry points)
works as after an install.

Usage:  python benchmarks/register_workspace.py FOLDER
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _version(project: Path, pyproject: dict) -> str:
    """The static version, or the one in the file ``[tool.hatch.version] path`` names."""
    if "version" in pyproject["project"]:
        return pyproject["project"]["version"]
    path = project / pyproject["tool"]["hatch"]["version"]["path"]
    found = re.search(r'^__version__ = "([^"]+)"', path.read_text(), re.MULTILINE)
    if found is None:
        raise SystemExit(f'{path}: no line __version__ = "..."')
    return found.group(1)


def register(folder: Path) -> list[str]:
    names = []
    for project in [ROOT, *sorted(ROOT.glob("backends/*")), *sorted(ROOT.glob("plugins/*"))]:
        pyproject = tomllib.loads((project / "pyproject.toml").read_text())
        meta = pyproject["project"]
        name, version = meta["name"], _version(project, pyproject)
        info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = []
        for group, entries in meta.get("entry-points", {}).items():
            lines.append(f"[{group}]")
            lines += [f"{k} = {v}" for k, v in entries.items()]
        for k, v in meta.get("scripts", {}).items():
            lines += ["[console_scripts]", f"{k} = {v}"]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        names.append(name)
    return names


if __name__ == "__main__":
    print("registered:", ", ".join(register(Path(sys.argv[1]))))
