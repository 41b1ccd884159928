"""The test tree itself: folders by subject, module names unique, markers registered."""

import tomllib
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
SUBJECTS = {"core", "backends", "experiment", "reliability", "packaging"}


def test_test_modules_live_in_a_subject_folder_with_a_unique_name():
    # The folders have no __init__.py (pytest's default import mode imports each test
    # module by its file name): two files of one name in two folders would collide.
    modules = sorted(TESTS.rglob("test_*.py"))
    assert {p.parent.name for p in modules} <= SUBJECTS, [str(p) for p in modules]
    assert not list(TESTS.rglob("__init__.py"))
    names = Counter(p.name for p in modules)
    assert [n for n, c in names.items() if c > 1] == []


def test_the_markers_are_registered_and_slow_is_off_by_default():
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    registered = {m.split(":")[0] for m in ini["markers"]}
    assert {"slow", "torch"} <= registered
    assert "--strict-markers" in ini["addopts"]
    assert "-m 'not slow'" in ini["addopts"]
    assert "--hypothesis-profile=dropkit" in ini["addopts"].split()
