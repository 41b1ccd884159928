"""A real training process killed with SIGKILL, then resumed, ends bit-identical."""

import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dropkit.experiment.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # a real process killed and resumed: -m slow

ARGS = ["train", "--epochs", "60", "--train-size", "1000", "--lr-every", "20", "--quiet"]


def _run(*extra):
    return subprocess.run(
        [sys.executable, "-m", "dropkit.experiment.cli", *ARGS, *extra],
        capture_output=True,
        text=True,
        check=True,
    )


def _final(folder):
    arrays, meta = load_checkpoint(folder / "checkpoint.npz")
    return arrays, [{k: v for k, v in r.items() if k != "seconds"} for r in meta["history"]]


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    victim = tmp_path / "victim"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dropkit.experiment.cli", *ARGS, "--out", str(victim)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (victim / "checkpoint.npz").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    delay = random.Random(20261126).uniform(0.05, 0.6)  # an arbitrary moment, reproducible
    time.sleep(delay)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    _, partial = _final(victim)
    assert 1 <= len(partial) < 60, "killed mid-run"

    _run("--resume", str(victim))
    reference = tmp_path / "reference"
    _run("--out", str(reference))

    got_arrays, got_history = _final(victim)
    want_arrays, want_history = _final(reference)
    assert got_history == want_history
    assert len(got_history) == 60
    assert sorted(got_arrays) == sorted(want_arrays)
    for name, want in want_arrays.items():
        np.testing.assert_array_equal(got_arrays[name], want, err_msg=name)
    # the metrics file has each epoch exactly once despite the kill
    lines = (victim / "metrics.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(1, 61))
