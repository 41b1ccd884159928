"""Installing dropkit changes no one else's test run: its pytest plugin is inert."""

import subprocess
import sys

CONFTEST = """
import pytest


@pytest.fixture
def backend():
    return "mine"
"""

TEST = """
import os

BEFORE = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def test_my_own_backend_fixture(backend, request):
    assert backend == "mine"
    assert request.config.pluginmanager.has_plugin("dropkit")  # dropkit's plugin is loaded
    assert not [n for n in request.fixturenames if n.startswith("dropkit")]  # nothing autouse
    now = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    assert now == BEFORE  # and nothing written to the environment (but pytest's own)
"""


def test_a_project_with_its_own_backend_fixture_passes_with_dropkit_installed(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_mine.py").write_text(TEST)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout
