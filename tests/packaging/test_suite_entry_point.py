"""The shipped suite runs through ``pytest --pyargs`` exactly as a third party would run it."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("name", ["numpy", "array_api_strict"])
@pytest.mark.slow  # several processes or a training: seconds
def test_pyargs_runs_the_suite_on_a_named_backend(name, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "dropkit.testing",
            "--dropkit-backend",
            name,
            "-k",
            "known_answers or kept_count",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"[{name}-" in result.stdout or "passed" in result.stdout
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_pyargs_with_an_unknown_backend_fails_loudly(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "dropkit.testing",
            "--dropkit-backend",
            "nope",
            "-k",
            "kept_count",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "unknown backend 'nope'" in result.stdout
