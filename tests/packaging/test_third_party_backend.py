"""A throwaway third-party backend distribution, installed into a temporary target folder,
checked by the shipped suite exactly as its authors would: the good backend passes, the
deliberately broken ones fail (so the suite can fail).

Slow (a real wheel build and install, then the suite in subprocesses): ``-m slow``."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "thirdparty_backend"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example installed (a real wheel build and install) into its own folder."""
    src = tmp_path_factory.mktemp("src") / "thirdparty_backend"
    shutil.copytree(EXAMPLE, src)
    target = tmp_path_factory.mktemp("site")
    uv = shutil.which("uv")
    cmd = (
        [uv, "pip", "install", "--python", sys.executable]
        if uv
        else [sys.executable, "-m", "pip", "install"]
    )
    result = subprocess.run(
        [*cmd, "--no-deps", "--target", str(target), str(src)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"could not build the example distribution here: {result.stderr[-500:]}")
    assert list(target.glob("dropkit_thirdparty_demo-*.dist-info"))
    return target


def _suite(site, name, *extra):
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "dropkit.testing",
            "--dropkit-backend",
            name,
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=site,
    )


def test_the_installed_plugin_is_discovered(site):
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-m", "dropkit.experiment.cli", "backends"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "demo " in out and "dropkit-thirdparty-demo" in out


def test_a_correct_third_party_backend_passes_the_suite(site):
    result = _suite(site, "demo")
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and " failed" not in result.stdout


@pytest.mark.parametrize(
    ("name", "caught_by"),
    [
        (
            "demo_noscale",
            {
                "test_mask_scale_equals_the_reference",
                "test_mean_output_converges_to_evaluation_output",
            },
        ),
        (
            "demo_samemask",
            {"test_successive_draws_differ", "test_generator_advances_once_per_draw"},
        ),
    ],
)
def test_a_broken_backend_is_caught(site, name, caught_by):
    # Only the tests that must catch it, without shrinking: a minimal counterexample
    # (seconds to minutes per failing property) proves nothing more here.
    k = " or ".join(sorted(caught_by))
    result = _suite(site, name, "-k", k, "--hypothesis-profile=dropkit-no-shrink")
    assert result.returncode == 1, result.stdout[-3000:]
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    for test in caught_by:
        assert any(test in line for line in failed), "\n".join(failed)
