"""What a person reads: the progress line, messages, usage errors, config.json, finished runs."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from dk_helpers import no_plots

import dropkit.experiment.reporters.progress as progress_module
from dropkit.experiment.cli import main
from dropkit.experiment.hookspecs import hookimpl
from dropkit.experiment.provenance import environment, git_commit
from dropkit.experiment.reporters import Progress
from dropkit.experiment.reporters.progress import CLEAR_LINE
from dropkit.experiment.train import TrainConfig
from dropkit.selection import get_backend

TINY = ["--epochs", "2", "--train-size", "200", "--hidden", "8"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def _no_plots():
    """In-process runs without the plots plugin (a second per run; tests/experiment/test_figures
    checks the figures)."""
    with no_plots():
        yield


def _run(epochs, start=0):
    config = TrainConfig(epochs=epochs, hidden=(8,))
    return SimpleNamespace(
        name="train",
        config=config,
        history=[],
        start_epoch=start,
        n_train=200,
        n_test=100,
        backend="numpy",
    )


def _record(epoch, ms):
    return {
        "epoch": epoch,
        "loss": 0.5,
        "train_acc": 0.5,
        "test_acc": 0.25,
        "lr": 0.05,
        "seconds": ms / 1e3,
    }


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder`` (but the lock) with a hash of its bytes and its mtime."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".dropkit.lock"]
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in files
    }


# ---- the progress line -----------------------------------------------------------------------


def test_a_live_line_is_erased_before_each_rewrite_and_closed_before_a_message(monkeypatch):
    import io

    monkeypatch.setenv("COLUMNS", "200")  # a StringIO has no terminal size of its own
    stream = io.StringIO()
    p = Progress(stream, live=True)
    run = _run(3)
    for epoch, ms in ((1, 1477), (2, 477)):  # the second line is shorter than the first
        run.history.append(_record(epoch, ms))
        p.dropkit_epoch_end(run, run.history[-1])
    text = stream.getvalue()
    rewrites = text.split(CLEAR_LINE)
    assert rewrites[0] == "" and len(rewrites) == 3, text  # every write starts by erasing
    assert rewrites[2].endswith("477 ms/epoch") and "\n" not in text
    p.close()  # what the command does before it prints "interrupted"
    assert stream.getvalue() == text + "\n"
    p.close()  # only an open line is ended
    assert stream.getvalue() == text + "\n"


def test_a_live_line_is_cut_to_the_terminal_width(monkeypatch):
    import io

    monkeypatch.setenv("COLUMNS", "60")  # a wrapped line could not be erased by ESC[K
    stream = io.StringIO()
    p = Progress(stream, live=True)
    run = _run(3)
    run.history.append(_record(1, 5))
    p.dropkit_epoch_end(run, run.history[-1])
    line = stream.getvalue().removeprefix(CLEAR_LINE)
    assert line.startswith("[train] epoch 1/3  loss 0.5000") and len(line) == 59


def test_without_a_terminal_there_is_no_carriage_return_and_a_line_every_tenth():
    import io

    stream = io.StringIO()
    p = Progress(stream)
    assert not p.live
    run = _run(20)
    for epoch in range(1, 21):
        run.history.append(_record(epoch, 5))
        p.dropkit_epoch_end(run, run.history[-1])
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    epochs = [int(line.split("epoch ")[1].split("/")[0]) for line in text.splitlines()]
    assert epochs == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]


def test_the_validation_accuracy_is_shown_when_the_record_has_it():
    import io

    stream = io.StringIO()
    p = Progress(stream)
    run = _run(1)
    run.history.append(_record(1, 5))
    p.dropkit_epoch_end(run, run.history[-1])  # an old record: no val_acc
    run.history[-1]["val_acc"] = 0.375
    p.dropkit_epoch_end(run, run.history[-1])
    run.history.append({**_record(2, 5), "val_acc": 0.25, "test_acc": 0.75})
    p.dropkit_epoch_end(run, run.history[-1])
    old, new, later = stream.getvalue().splitlines()
    assert "val" not in old and "test 25.00% (best 25.00%)" in old
    assert "train 50.00%  val 37.50% (best 37.50% at epoch 1)  test 25.00%  lr" in new
    # with a split, the best shown is chosen on validation: no "best" test accuracy appears
    assert "val 25.00% (best 37.50% at epoch 1)  test 75.00%  lr" in later


def test_a_resumed_complete_run_is_announced_as_complete():
    import io

    stream = io.StringIO()
    Progress(stream).dropkit_train_start(_run(5, start=5))
    assert "[train] already complete (5/5 epochs)" in stream.getvalue()


def test_the_interrupt_message_starts_on_a_fresh_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "is_terminal", lambda stream: True)

    class CtrlC:
        @hookimpl
        def dropkit_epoch_end(self, run, record):
            if record["epoch"] == 2:
                raise KeyboardInterrupt

    status = main(
        ["train", *TINY[:1], "5", *TINY[2:], "--out", str(tmp_path / "r")], plugins=[CtrlC()]
    )
    err = capsys.readouterr().err
    assert status == 130
    lines = err.split("\n")
    message = [line for line in lines if "interrupted" in line]
    assert message and message[0].startswith("dropkit: interrupted; every finished epoch"), err
    assert CLEAR_LINE + "[train] epoch 2/5" in err  # the live line was there, and was ended


# ---- usage errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["compare", "--epochs", "many"], "see 'dropkit compare --help'"),
        (["train", "--no-such-flag"], "see 'dropkit train --help'"),
        (["sweep", "--activation", "tanh"], "see 'dropkit sweep --help'"),
        ([], "see 'dropkit --help'"),
        (["fly"], "see 'dropkit --help'"),
    ],
)
def test_a_usage_error_is_one_line_with_a_hint(capsys, argv, hint):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("dropkit: error: ") and lines[0].endswith(hint)
    assert "usage:" not in captured.err


# ---- config.json -----------------------------------------------------------------------------


def test_config_json_records_the_backend_versions_commit_command_and_threads(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", *TINY, "--quiet", "--out", str(out)]
    assert main(argv) == 0
    doc = json.loads((out / "config.json").read_text())
    assert doc["config"]["backend"] is None  # what was asked for: the default
    env = doc["environment"]
    assert env["backend"] == "numpy"  # what was used
    import array_api_compat
    import numpy

    import dropkit

    versions = env["versions"]
    assert versions["dropkit"] == dropkit.__version__
    assert versions["numpy"] == numpy.__version__
    assert versions["array-api-compat"] == array_api_compat.__version__
    assert versions["backend library"] == {"name": "numpy", "version": numpy.__version__}
    assert env["command_line"] == "dropkit " + " ".join(argv)
    pools = env["threads_at_start"]["blas_openmp"]
    if pools is not None:  # threadpoolctl is installed
        assert all(isinstance(p["num_threads"], int) and p["num_threads"] >= 1 for p in pools)
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode == 0:  # a git checkout
        assert env["git"]["commit"] == head.stdout.strip()
    else:
        assert env["git"] is None


def test_no_git_checkout_gives_no_commit_and_no_error(tmp_path):
    assert git_commit(tmp_path) is None
    assert git_commit(tmp_path / "missing") is None


def test_the_backend_library_of_another_backend_is_named():
    env = environment(get_backend("array_api_strict"), ["dropkit", "train"])
    assert env["backend"] == "array_api_strict"
    assert env["versions"]["backend library"]["name"] == "array_api_strict"
    assert env["versions"]["backend library"]["version"]


def test_a_resume_keeps_how_the_run_was_started(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--quiet", "--out", str(out)]) == 0
    first = json.loads((out / "config.json").read_text())["environment"]
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 0
    doc = json.loads((out / "config.json").read_text())
    assert doc["config"]["epochs"] == 3
    assert doc["environment"] == first


def test_a_damaged_environment_entry_is_refused_by_name(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--quiet", "--out", str(out)]) == 0
    doc = json.loads((out / "config.json").read_text())
    doc["environment"] = "numpy"
    (out / "config.json").write_text(json.dumps(doc))
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 2
    assert "'environment' must be an object" in capsys.readouterr().err


# ---- resuming a finished run -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "extra", "says"),
    [
        ("train", [], "run in {out} is already complete (2/2 epochs); nothing to do"),
        (
            "compare",
            [],
            "comparison in {out} is already complete (standard 2/2, dropout 2/2 epochs); "
            "nothing to do",
        ),
        (
            "compare",
            ["--seeds", "2", "--jobs", "1"],
            "study in {out} is already complete (4/4 runs, 2/2 epochs each); nothing to do",
        ),
        (
            "sweep",
            ["--train-size", "100,200", "--jobs", "1"],
            "sweep in {out} is already complete (4/4 runs, 2/2 epochs each); nothing to do",
        ),
    ],
)
def test_resuming_a_finished_run_says_so_and_changes_nothing(
    tmp_path, capsys, command, extra, says
):
    out = tmp_path / command
    tiny = TINY if command != "sweep" else [a for a in TINY if a not in ("--train-size", "200")]
    assert main([command, *tiny, *extra, "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    before = _snapshot(out)
    assert main([command, "--resume", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == says.format(out=out) + " (give --epochs N to train it longer)"
    assert captured.err == ""
    assert _snapshot(out) == before


@pytest.mark.slow  # several processes or a training: seconds
def test_a_finished_study_without_its_summary_writes_it(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["compare", *TINY, "--seeds", "2", "--jobs", "1", "--out", str(out)]) == 0
    (out / "summary.json").unlink()
    assert main(["compare", "--resume", str(out)]) == 0
    captured = capsys.readouterr()
    assert "nothing to do" not in captured.out and (out / "summary.json").is_file()
    assert "seed-0/standard: already complete (2/2 epochs)" in captured.err


# ---- a closed output -------------------------------------------------------------------------


@pytest.mark.slow  # several processes or a training: seconds
def test_a_closed_output_ends_quietly_with_141(tmp_path):
    code = "import sys; from dropkit.experiment.cli import main; sys.exit(main(sys.argv[1:]))"
    reader = subprocess.Popen(["head", "-c", "0"], stdin=subprocess.PIPE)
    proc = subprocess.run(
        [sys.executable, "-c", code, "train", *TINY, "--quiet", "--out", str(tmp_path / "p")],
        stdout=reader.stdin,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
    )
    reader.stdin.close()
    reader.wait()
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""  # no message, no traceback, no "Exception ignored"
    assert (tmp_path / "p" / "checkpoint.npz").is_file()
