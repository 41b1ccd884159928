"""The progress of studies and sweeps: runs done / running / waiting, per-run epochs, an ETA."""

import io
import re

import pytest
from dk_helpers import no_plots

from dropkit.experiment.data import load_dataset
from dropkit.experiment.reporters import StudyProgress
from dropkit.experiment.study import StudyPlan, run_study
from dropkit.experiment.sweep import run_sweep
from dropkit.experiment.train import TrainConfig


@pytest.fixture(autouse=True, scope="module")
def _no_plots():
    with no_plots():
        yield


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_status_counts_runs_and_epochs_and_the_eta_follows_the_rate():
    clock = Clock()
    out = io.StringIO()
    p = StudyProgress({"a": 10, "b": 10, "c": 10}, out, live=False, clock=clock)
    clock.now = 5.0  # the workers took 5 s to start: not counted in the rate
    p.event(("start", "a", 0, 10))
    p.event(("start", "b", 4, 10))  # resumed: 4 epochs done before, not speed
    for epoch in range(1, 6):
        clock.now += 1.0
        p.event(("epoch", "a", epoch, 10))
    # 5 epochs in 5 s since the first start: 1 epoch/s; 30 - (5 + 4) = 21 epochs left
    assert p.status() == ("study 0/3 runs done, 2 running, 1 waiting; 9/30 epochs; 10s, ETA 21s")
    p.finished("b", "[1/3] b: done")
    assert p.status().startswith("study 1/3 runs done, 1 running, 1 waiting; 15/30 epochs")
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text  # not a terminal: plain lines
    assert text.splitlines() == [
        "  started a (epoch 0/10)",
        "  started b (resuming after epoch 4/10)",
        "  a: epoch 1/10; study 0/3 runs done, 2 running, 1 waiting; 5/30 epochs; 6s, ETA 25s",
        "  a: epoch 2/10; study 0/3 runs done, 2 running, 1 waiting; 6/30 epochs; 7s, ETA 24s",
        "  a: epoch 3/10; study 0/3 runs done, 2 running, 1 waiting; 7/30 epochs; 8s, ETA 23s",
        "  a: epoch 4/10; study 0/3 runs done, 2 running, 1 waiting; 8/30 epochs; 9s, ETA 22s",
        "  a: epoch 5/10; study 0/3 runs done, 2 running, 1 waiting; 9/30 epochs; 10s, ETA 21s",
        "[1/3] b: done",
    ]


def test_a_live_block_is_erased_line_by_line_and_lines_that_stay_go_above_it():
    clock = Clock()
    out = io.StringIO()
    p = StudyProgress({"a": 4, "b": 4}, out, live=True, clock=clock)
    p.event(("start", "a", 0, 4))
    first = out.getvalue()
    assert first == (
        "  started a (epoch 0/4)\n"
        "study 0/2 runs done, 1 running, 1 waiting; 0/8 epochs; 0s, ETA --\n"
        "  a  epoch 0/4"
    )
    p.event(("start", "b", 0, 4))  # a 2-line block is erased: up 1 line, erase to the end
    assert out.getvalue()[len(first) :].startswith("\r\x1b[1A\x1b[J  started b (epoch 0/4)\n")
    mark = len(out.getvalue())
    p.event(("epoch", "a", 1, 4))  # within 0.1 s of the last draw: not redrawn
    assert len(out.getvalue()) == mark
    clock.now = 1.0
    p.event(("epoch", "a", 2, 4))
    redrawn = out.getvalue()[mark:]
    assert redrawn.startswith("\r\x1b[2A\x1b[J") and redrawn.endswith("  b  epoch 0/4")
    assert "  a  epoch 2/4" in redrawn
    p.finished("a", "[1/2] a: done")
    p.finished("b", "[2/2] b: done")
    p.close()
    # replay the text on a tiny screen model: what stays is the permanent lines only
    assert _screen(out.getvalue()) == [
        "  started a (epoch 0/4)",
        "  started b (epoch 0/4)",
        "[1/2] a: done",
        "[2/2] b: done",
    ]


def _screen(text: str) -> list[str]:
    """The lines a terminal shows after ``text`` (handles \\r, \\n, ESC[nA, ESC[J)."""
    lines, row, col, i = [""], 0, 0, 0
    while i < len(text):
        m = re.match(r"\x1b\[(\d*)A", text[i:])
        if m:
            row = max(0, row - int(m.group(1) or 1))
            i += m.end()
            continue
        if text.startswith("\x1b[J", i):
            lines[row] = lines[row][:col]
            del lines[row + 1 :]
            i += 3
            continue
        ch = text[i]
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        else:
            line = lines[row]
            lines[row] = line[:col] + ch + line[col + 1 :]
            col += 1
        i += 1
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def test_a_study_in_process_shows_each_run_and_keeps_the_finished_line(tmp_path):
    plan = StudyPlan(TrainConfig(epochs=10, hidden=(8,)), ("standard", "dropout"), (0,))
    out = io.StringIO()
    run_study(plan, load_dataset(train_size=200), tmp_path, jobs=1, progress=out)
    text = out.getvalue()
    assert "  started seed-0/standard (epoch 0/10)" in text
    assert "  seed-0/dropout: epoch 5/10; study 1/2 runs done, 1 running, 0 waiting" in text
    assert re.search(r"\[1/2\] seed-0/standard: test acc at best val [\d.]+% \(epoch \d+\)", text)
    assert re.search(r"\[2/2\] seed-0/dropout: test acc at best val", text)
    # resumed: every run is complete, and each says so
    again = io.StringIO()
    run_study(plan, load_dataset(train_size=200), tmp_path, jobs=1, progress=again)
    assert "  seed-0/standard: already complete (10/10 epochs), read back" in again.getvalue()


@pytest.mark.slow
def test_a_sweep_in_worker_processes_reports_their_epochs(tmp_path):
    plan = StudyPlan(TrainConfig(epochs=10, hidden=(8,)), ("standard",), (0,))
    data = {n: load_dataset(train_size=n) for n in (100, 200)}
    out = io.StringIO()
    run_sweep(plan, data, tmp_path, jobs=2, progress=out)
    text = out.getvalue()
    for name in ("size-100/seed-0/standard", "size-200/seed-0/standard"):
        assert f"  started {name} (epoch 0/10)" in text  # events crossed the process boundary
        assert f"  {name}: epoch 5/10; study " in text
        assert re.search(rf"\[[12]/2\] {name}: test acc at best val", text)
