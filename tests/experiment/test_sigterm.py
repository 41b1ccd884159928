"""SIGTERM (what SLURM and Kubernetes send) stops a run as Ctrl-C does, with exit status 143.

A real process is sent SIGTERM mid-run: it saves its last finished epoch, says how
to continue, exits 143; ``--resume`` then ends bit-identical to an uninterrupted run.
"""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dropkit.experiment.checkpoint import load_checkpoint
from dropkit.experiment.cli import main

ARGS = ["train", "--epochs", "30", "--train-size", "200", "--hidden", "8", "--lr-every", "10"]
# the victim sleeps 50 ms after each epoch, so the signal surely lands mid-run
SLOW = """
import sys, time
from dropkit.experiment.hookspecs import hookimpl
from dropkit.experiment.cli import main

class Slow:
    @hookimpl
    def dropkit_epoch_end(self, run, record):
        time.sleep(0.05)

sys.exit(main(sys.argv[1:], plugins=[Slow()]))
"""


def _final(folder):
    arrays, meta = load_checkpoint(folder / "checkpoint.npz")
    return arrays, [{k: v for k, v in r.items() if k != "seconds"} for r in meta["history"]]


def _rows(folder):
    try:
        return (folder / "metrics.csv").read_text().count("\n") - 1
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_sigterm_saves_exits_143_and_resume_is_bit_identical(tmp_path, capsys):
    victim = tmp_path / "victim"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW, *ARGS, "--quiet", "--out", str(victim)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _rows(victim) < 3:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no third epoch within 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip() == (
        f"dropkit: terminated (SIGTERM); every finished epoch is saved: continue with "
        f"--resume {victim}"
    )
    _, partial = _final(victim)
    assert 3 <= len(partial) < 30, "stopped mid-run, the epochs it had finished saved"

    assert main(["train", "--resume", str(victim), "--quiet"]) == 0
    reference = tmp_path / "reference"
    assert main([*ARGS, "--quiet", "--out", str(reference)]) == 0
    capsys.readouterr()

    got_arrays, got_history = _final(victim)
    want_arrays, want_history = _final(reference)
    assert len(got_history) == 30 and got_history == want_history
    assert sorted(got_arrays) == sorted(want_arrays)
    for name, want in want_arrays.items():
        np.testing.assert_array_equal(got_arrays[name], want, err_msg=name)
    lines = (victim / "metrics.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(1, 31))


def test_sigterm_in_process_is_143_and_ctrl_c_stays_130(tmp_path, capsys):
    import os

    from dropkit.experiment.hookspecs import hookimpl

    class Stop:
        def __init__(self, how):
            self.how = how

        @hookimpl
        def dropkit_epoch_end(self, run, record):
            if record["epoch"] == 2:
                if self.how == "term":
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)  # the handler raises here
                raise KeyboardInterrupt

    before = signal.getsignal(signal.SIGTERM)
    for how, status, word in (("term", 143, "terminated (SIGTERM)"), ("int", 130, "interrupted")):
        out = tmp_path / how
        got = main([*ARGS[:2], "4", *ARGS[3:], "--quiet", "--out", str(out)], plugins=[Stop(how)])
        err = capsys.readouterr().err
        assert got == status and err.startswith(f"dropkit: {word}; every finished epoch"), err
        assert len(_final(out)[1]) == 2
    assert signal.getsignal(signal.SIGTERM) == before  # main leaves the handler as it was


def _epochs_saved(folder):
    return len(load_checkpoint(folder / "checkpoint.npz")[1]["history"])


@pytest.mark.slow
def test_sigterm_stops_a_study_and_its_workers_save_their_last_epoch(tmp_path):
    out = tmp_path / "study"
    args = [
        "--seeds",
        "2",
        "--jobs",
        "2",
        "--epochs",
        "5000",
        "--train-size",
        "500",
        "--hidden",
        "16",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dropkit.experiment.cli", "compare", *args, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = [out / "seed-0" / "standard", out / "seed-0" / "dropout"]
    deadline = time.monotonic() + 180
    while min(_rows(f) for f in running) < 20:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the workers trained no 20 epochs within 180 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)  # the parent and its workers end
    assert proc.returncode == 143, err
    assert err.splitlines()[-1] == (
        f"dropkit: terminated (SIGTERM); every finished epoch is saved: continue with "
        f"--resume {out}"
    )
    for folder in running:  # each worker saved the epochs it had reported (or one more)
        rows = _rows(folder)
        assert rows <= _epochs_saved(folder) <= rows + 1, folder
    # the queued runs did not start after the stop
    assert not (out / "seed-1" / "standard" / "checkpoint.npz").exists()
    assert not (out / "seed-1" / "dropout" / "checkpoint.npz").exists()
