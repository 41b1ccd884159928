"""The suite's Hypothesis settings in a third party's project: the same examples on every
machine, deeper only on request, and no change to anyone else's Hypothesis tests."""

import os
import subprocess
import sys

import pytest

PROPERTY = """
import os

from hypothesis import given, strategies as st

from dropkit.testing.profiles import suite_settings


@suite_settings(max_examples=20)
@given(st.lists(st.integers(), max_size=3))
def test_draws(xs):
    with open(os.environ["DRAWS"], "a") as f:
        f.write(f"{xs}\\n")
"""

OTHERS = """
import pytest
from hypothesis import settings
from hypothesis.errors import InvalidArgument


def test_the_dropkit_plugin_leaves_hypothesis_alone():
    assert settings.get_current_profile_name() == "default"
    assert not settings.default.derandomize
    with pytest.raises(InvalidArgument):
        settings.get_profile("dropkit")
"""


def _pytest(folder, *args, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTHONHASHSEED")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**base, **env},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _draws(tmp_path, name, *args, **env):
    project = tmp_path / name
    project.mkdir()
    out = project / "draws.txt"
    (project / "test_property.py").write_text(PROPERTY)  # the same source: the same seed
    _pytest(project, *args, DRAWS=str(out), **env)
    return out.read_text().splitlines()


@pytest.mark.slow  # several processes or a training: seconds
def test_every_machine_draws_the_same_examples(tmp_path):
    ci = _draws(tmp_path, "ci", CI="true", PYTHONHASHSEED="1")
    newcomer = _draws(tmp_path, "newcomer", PYTHONHASHSEED="2")
    # a project whose own profile is randomized with a database: the suite stays fixed
    own = _draws(tmp_path, "own", "--hypothesis-seed=12345")
    assert len(ci) >= 20
    assert ci == newcomer == own


@pytest.mark.slow  # several processes or a training: seconds
def test_the_deep_profile_draws_ten_times_as_many_random_examples(tmp_path):
    fixed = _draws(tmp_path, "fixed")
    deep = _draws(tmp_path, "deep", "--hypothesis-profile=dropkit-deep")
    again = _draws(tmp_path, "again", "--hypothesis-profile=dropkit-deep")
    assert len(deep) >= 10 * 20 > len(fixed)
    assert deep != again  # random: 200 draws equal twice has no real chance


def test_other_projects_hypothesis_tests_are_untouched(tmp_path):
    (tmp_path / "test_other.py").write_text(OTHERS)
    result = _pytest(tmp_path)
    assert "1 passed" in result.stdout
