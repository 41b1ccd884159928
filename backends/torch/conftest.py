"""Collect the torch backend's modules (their doctests) only where what they import is installed.

torch is an optional, machine-specific install (CPU or CUDA build), never a
locked dependency; Numba and CuPy are optional too. A module that imports a
missing one at its top level, itself or through a sibling module, cannot be
imported, so it is not collected (the tests in ``tests/`` skip with the
reason). The list is read from the modules' own imports, not kept by hand: a
new module cannot be forgotten.
"""

import ast
import importlib.util
from pathlib import Path

_PACKAGE = Path(__file__).parent / "dropkit_torch"
# What each optional top-level import needs installed.
_NEEDS = {"torch": "torch", "array_api_compat.torch": "torch", "numba": "numba", "cupy": "cupy"}


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """Return (absolute module names, sibling modules) imported at the top level of `path`."""
    absolute: set[str] = set()
    siblings: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            absolute.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            absolute.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [a.name for a in node.names]
            siblings.update(n.split(".")[0] for n in names)
    return absolute, siblings


def _needs(name: str, seen: set[str]) -> set[str]:
    path = _PACKAGE / f"{name}.py"
    if name in seen or not path.exists():
        return set()
    seen.add(name)
    absolute, siblings = _imports(path)
    found = {
        need
        for module in absolute
        for prefix, need in _NEEDS.items()
        if module == prefix or module.startswith(prefix + ".")
    }
    for sibling in siblings:
        found |= _needs(sibling, seen)
    return found


_missing = {need for need in set(_NEEDS.values()) if importlib.util.find_spec(need) is None}
collect_ignore = [
    f"dropkit_torch/{module.name}"
    for module in sorted(_PACKAGE.glob("*.py"))
    if _needs(module.stem, set()) & _missing
]
