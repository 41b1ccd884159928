"""Reliability, round two (issue 21): run folders, checkpoints, options per method, study files.

Each test is one case of the issue's audit; a comment above it says which item and the
outcome before the fix. Cases that could hang on the unfixed code (a FIFO) run
``dropkit`` in a subprocess with a timeout; the rest call
:func:`dropkit.experiment.cli.main` in-process.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from dk_helpers import fast_runs

from dropkit.experiment.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dropkit.experiment.cli import main

TINY = ["--epochs", "1", "--train-size", "200", "--hidden", "8", "--quiet"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(autouse=True, scope="module")
def _fast():
    """In-process runs without the plots plugin, each dataset made once."""
    with fast_runs():
        yield


def _cli(capsys, *args: str) -> tuple[int, str]:
    status = main(list(args))
    return status, capsys.readouterr().err


def _refused(capsys, *args: str, match: str | tuple[str, ...]) -> str:
    status, err = _cli(capsys, *args)
    assert status == 2, err
    assert "dropkit: error:" in err and "Traceback" not in err, err
    for word in (match,) if isinstance(match, str) else match:
        assert word in err, err
    return err


def _made(tmp_path: Path, command: str = "train", *extra: str) -> Path:
    out = tmp_path / f"{command}-run"
    assert main([command, *TINY, "--out", str(out), *extra]) == 0
    return out


# ---- item 1: run folders: no symlinks, regular files only --------------------------------------


# case 1a: .dropkit.lock a symlink to the user's file. Before: the file was truncated (rc 0).
def test_lock_symlink_is_refused_and_its_target_kept(tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "L"
    out.mkdir()
    (out / ".dropkit.lock").symlink_to(victim)
    _refused(capsys, "train", *TINY, "--out", str(out), match=(".dropkit.lock", "symlink"))
    assert victim.read_text() == "precious\n"
    assert not (out / "checkpoint.npz").exists()


# case 1b: a lock symlink on a resumed run. Before: the target was truncated.
def test_lock_symlink_on_resume_is_refused(tmp_path, capsys):
    out = _made(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (out / ".dropkit.lock").unlink()
    (out / ".dropkit.lock").symlink_to(victim)
    _refused(capsys, "train", "--resume", str(out), "--epochs", "2", match="symlink")
    assert victim.read_text() == "precious\n"


# case 1c: a FIFO named .dropkit.lock. Before: the open blocked (or the FIFO was used as a lock).
def test_lock_fifo_is_refused(tmp_path, capsys):
    out = tmp_path / "F"
    out.mkdir()
    os.mkfifo(out / ".dropkit.lock")
    _refused(capsys, "train", *TINY, "--out", str(out), match=("FIFO", ".dropkit.lock"))


# case 1d: a dangling --out symlink. Before: "[Errno 17] File exists".
def test_dangling_out_symlink(tmp_path, capsys):
    (tmp_path / "dang").symlink_to(tmp_path / "nowhere")
    err = _refused(capsys, "train", *TINY, "--out", str(tmp_path / "dang"), match="does not exist")
    assert "Errno" not in err and "nowhere" in err


# case 1e: a looping --out symlink. Before: "[Errno 17] File exists".
def test_looping_out_symlink(tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    err = _refused(capsys, "train", *TINY, "--out", str(tmp_path / "a"), match="symlink loop")
    assert "Errno" not in err


# case 1f: --out under a dangling symlink. Before: "[Errno 17] File exists".
def test_out_below_a_dangling_symlink(tmp_path, capsys):
    (tmp_path / "dang").symlink_to(tmp_path / "nowhere")
    err = _refused(
        capsys, "train", *TINY, "--out", str(tmp_path / "dang" / "run"), match="does not exist"
    )
    assert "Errno" not in err


# case 1g: --out a symlink to an existing folder: the run goes there (correct before and after).
def test_out_symlink_to_a_folder_is_followed(tmp_path, capsys):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert main(["train", *TINY, "--out", str(tmp_path / "link")]) == 0
    assert (tmp_path / "real" / "checkpoint.npz").is_file()


# case 1h: a FIFO named checkpoint.npz. Before: `--resume` hung forever.
def test_fifo_checkpoint_is_refused_at_once(tmp_path):
    out = _made(tmp_path)
    (out / "checkpoint.npz").unlink()
    os.mkfifo(out / "checkpoint.npz")
    cmd = [sys.executable, "-m", "dropkit.experiment.cli", "train", "--resume", str(out)]
    try:
        proc = subprocess.run(
            [*cmd, "--epochs", "2"], capture_output=True, text=True, env=ENV, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("dropkit train --resume hung on a FIFO named checkpoint.npz")
    assert proc.returncode == 2, proc.stderr
    assert "FIFO" in proc.stderr and "checkpoint.npz" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


# case 1i: checkpoint.npz a symlink to another run's checkpoint. Before: read through the link.
def test_checkpoint_symlink_is_refused(tmp_path, capsys):
    out = _made(tmp_path)
    (out / "checkpoint.npz").rename(tmp_path / "elsewhere.npz")
    (out / "checkpoint.npz").symlink_to(tmp_path / "elsewhere.npz")
    _refused(capsys, "train", "--resume", str(out), "--epochs", "2", match="symlink")


# case 1j: a directory where checkpoint.npz belongs. Before: "[Errno 21] Is a directory".
def test_checkpoint_directory_is_refused(tmp_path, capsys):
    out = _made(tmp_path)
    (out / "checkpoint.npz").unlink()
    (out / "checkpoint.npz").mkdir()
    err = _refused(
        capsys,
        "train",
        "--resume",
        str(out),
        "--epochs",
        "2",
        match=("directory", "checkpoint.npz"),
    )
    assert "Errno" not in err


# case 1k: config.json a FIFO. Before: "nothing to resume ... no config.json there" (wrong).
def test_config_fifo_is_refused(tmp_path, capsys):
    out = _made(tmp_path)
    (out / "config.json").unlink()
    os.mkfifo(out / "config.json")
    _refused(capsys, "train", "--resume", str(out), "--epochs", "2", match=("config.json", "FIFO"))


# case 1l: metrics.csv a symlink to the user's file. Before: the run's rows were appended to it.
def test_metrics_symlink_is_not_written_through(tmp_path, capsys):
    out = _made(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (out / "metrics.csv").unlink()
    (out / "metrics.csv").symlink_to(victim)
    _refused(capsys, "train", "--resume", str(out), "--epochs", "2", match="metrics.csv")
    assert victim.read_text() == "precious\n"


# case 1m: a planted symlink at the atomic write's temporary name. Before: written through.
def test_temporary_symlink_is_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    path = tmp_path / "run" / "checkpoint.npz"
    path.parent.mkdir()
    (path.parent / f".checkpoint.npz.tmp-{os.getpid()}").symlink_to(victim)
    save_checkpoint(path, {"w": np.ones(2)}, {"epoch": 1})
    assert victim.read_text() == "precious\n"
    assert load_checkpoint(path)[1]["epoch"] == 1


# case 1n: study.json a symlink. Before: read through the link.
def test_study_json_symlink_is_refused(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["compare", *TINY, "--methods", "standard,dropout", "--out", str(out)]) == 0
    (out / "study.json").rename(tmp_path / "plan.json")
    (out / "study.json").symlink_to(tmp_path / "plan.json")
    _refused(capsys, "compare", "--resume", str(out), "--epochs", "2", match="symlink")


# ---- item 5: checkpoints read with memory bounded by the file's size ---------------------------


def _npz_declaring(shape: tuple[int, ...]) -> bytes:
    """A tiny .npz whose member's header declares ``shape`` float64 (holding 16 bytes)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr("param_0.npy", header.getvalue() + bytes(16))
        meta = json.dumps({"format": "dropkit-checkpoint/1"}).encode()
        sink = io.BytesIO()
        np.lib.format.write_array(sink, np.frombuffer(meta, np.uint8))
        z.writestr("__meta__.npy", sink.getvalue())
    return buffer.getvalue()


# case 5a: a member whose header declares 8 GB in a file of 1 kB. Before: numpy allocated it
# (MemoryError or gigabytes of RSS); after: refused before any allocation.
def test_checkpoint_header_larger_than_the_member_is_refused(tmp_path):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(_npz_declaring((2**30,)))
    with pytest.raises(CheckpointError, match="declares") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


# case 5b: a compressed member (dropkit never writes one) could inflate without bound: refused.
def test_compressed_checkpoint_member_is_refused(tmp_path):
    path = tmp_path / "checkpoint.npz"
    meta = np.frombuffer(json.dumps({"format": "dropkit-checkpoint/1"}).encode(), np.uint8)
    np.savez_compressed(path, w=np.zeros(10), __meta__=meta)
    with pytest.raises(CheckpointError, match=r"'w\.npy' is compressed"):
        load_checkpoint(path)


# ---- item 7: a checkpoint's history and generator counters validated at load -------------------


def _edit_meta(out: Path, edit) -> None:
    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    edit(meta)
    meta.pop("format")
    save_checkpoint(out / "checkpoint.npz", arrays, meta)


def _set_record(key, value):
    def edit(meta):
        meta["history"][0][key] = value

    return edit


def _set_counter(meta):
    meta["generators"][0]["counter"] = 2**63 - 1


def _shorter_history(meta):
    meta["epoch"] = 2  # the parameters say two epochs; the history has one


# case 7a-7g: before, test_acc 5.0 was resumed and reported as "best test 500.00%", a NaN loss
# carried on, a history shorter than the parameters' epoch trained that epoch twice (rc 0),
# counter 2**63-1 ended in an OverflowError traceback; now each is refused at load.
@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_set_record("test_acc", 5.0), "test_acc 5.0, not an accuracy in [0, 1]"),
        (_set_record("train_acc", -0.1), "train_acc -0.1, not an accuracy"),
        (_set_record("val_acc", float("nan")), "val_acc nan, not an accuracy"),
        (_set_record("loss", float("nan")), "loss nan, not a finite"),
        (_set_record("test_loss", float("inf")), "test_loss inf, not a finite"),
        (_shorter_history, "it says 2 epochs were trained, its history holds 1"),
        (_set_counter, "counter 9223372036854775807, too close to its limit"),
    ],
    ids=[
        "test_acc_5",
        "train_acc_negative",
        "val_acc_nan",
        "loss_nan",
        "test_loss_inf",
        "short_history",
        "counter_near_limit",
    ],
)
def test_damaged_history_is_refused_at_load(tmp_path, capsys, edit, match):
    out = _made(tmp_path)
    _edit_meta(out, edit)
    err = _refused(
        capsys, "train", "--resume", str(out), "--epochs", "3", match=(match, "checkpoint.npz")
    )
    assert "delete the run" in err
    assert load_checkpoint(out / "checkpoint.npz")[1]["epoch"] in (1, 2)  # left as is


# ---- item 3: every option checked against every method before anything is written --------------


# case 3a: --p-hidden 1.0 with gaussian. Before: `standard` trained, then the study failed, and
# neither --resume nor a fresh start could go on; now refused before anything is written.
def test_p_that_a_method_refuses_stops_the_study_before_it_starts(tmp_path, capsys):
    out = tmp_path / "D"
    err = _refused(
        capsys,
        "compare",
        *TINY,
        "--methods",
        "standard,gaussian",
        "--p-hidden",
        "1.0",
        "--out",
        str(out),
        match=("--p-hidden 1.0 does not suit method 'gaussian'", "--methods"),
    )
    assert "p < 1" in err
    assert not out.exists()


# case 3b: --mode vanilla with alpha. Before: rc 0, a mode alpha does not have recorded.
def test_mode_that_a_method_lacks_is_refused(tmp_path, capsys):
    out = tmp_path / "E"
    _refused(
        capsys,
        "compare",
        *TINY,
        "--methods",
        "alpha,dropout",
        "--mode",
        "vanilla",
        "--out",
        str(out),
        match="--mode 'vanilla' does not suit method 'alpha'",
    )
    assert not out.exists()


# case 3c: the same check in a sweep (the shared validation). Before: a sweep dead-ended too.
def test_sweep_checks_every_method_first(tmp_path, capsys):
    out = tmp_path / "S"
    _refused(
        capsys,
        "sweep",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--quiet",
        "--train-size",
        "100,200",
        "--methods",
        "dropout,gaussian",
        "--p-input",
        "1.0",
        "--out",
        str(out),
        match="--p-input 1.0 does not suit method 'gaussian'",
    )
    assert not out.exists()


# case 3d: TrainConfig itself refuses (the library's own runs). Before: accepted, failed in
# the first epoch.
@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"noise": "gaussian", "p_hidden": 1.0}, "p_hidden 1.0 does not suit method 'gaussian'"),
        ({"noise": "alpha", "mode": "vanilla"}, "mode 'vanilla' does not suit method 'alpha'"),
    ],
)
def test_train_config_checks_options_against_the_method(changes, match):
    from dropkit.experiment.train import TrainConfig

    with pytest.raises(ValueError, match=match):
        TrainConfig(**changes)


# case 3e: a study made before this check (study.json with gaussian and p_hidden 1.0, one run
# done). Before: --resume failed like the study ("gaussian_dropout needs p < 1"); now it says
# the study cannot go on, that its finished runs are kept and what to do.
def test_dead_ended_study_is_told_what_to_do(tmp_path, capsys):
    out = tmp_path / "D"
    assert main(["compare", *TINY, "--methods", "standard,dropout", "--out", str(out)]) == 0
    doc = json.loads((out / "study.json").read_text())
    doc["methods"], doc["config"]["p_hidden"] = ["standard", "gaussian"], 1.0
    (out / "study.json").write_text(json.dumps(doc))
    _refused(
        capsys,
        "compare",
        "--resume",
        str(out),
        match=("study.json", "cannot go on", "finished runs are kept", "another --out"),
    )


# ---- item 10: bounded --seeds ------------------------------------------------------------------


# case 10a: --seeds 100000000. Before: 90 s of silence while memory grew; now refused at once.
def test_too_many_seeds_is_refused_at_once(tmp_path, capsys):
    out = tmp_path / "many"
    _refused(
        capsys,
        "compare",
        *TINY,
        "--seeds",
        "100000000",
        "--out",
        str(out),
        match=("--seeds 100000000", "at most 100000"),
    )
    assert not out.exists()


# case 10b: a study plan of many seeds checks each method once and copies it per seed (the
# timing is in the report; here: the plan's runs are right, each with its own seed).
def test_many_seeds_plan_is_per_method_and_seed():
    from dropkit.experiment.study import MAX_SEEDS, StudyPlan
    from dropkit.experiment.train import TrainConfig

    plan = StudyPlan(TrainConfig(p_hidden=0.3), ("standard", "gaussian"), tuple(range(1000)))
    configs = plan.configs()
    assert len(configs) == 2000
    assert configs[(999, "gaussian")] == TrainConfig(p_hidden=0.3, seed=999, noise="gaussian")
    assert configs[(5, "standard")].p_hidden == 0.0 and configs[(5, "standard")].seed == 5
    with pytest.raises(ValueError, match="at most"):
        StudyPlan(TrainConfig(), ("standard",), tuple(range(MAX_SEEDS + 1)))


# ---- item 12: study files ----------------------------------------------------------------------


@pytest.fixture
def study(tmp_path):
    out = tmp_path / "S"
    assert main(["compare", *TINY, "--methods", "standard,dropout", "--out", str(out)]) == 0
    return out


# case 12a: `train --resume` on a study's run. Before: "continue it from Python with train(...)".
def test_train_resume_on_a_study_run_names_the_study(study, capsys):
    err = _refused(
        capsys,
        "train",
        "--resume",
        str(study / "seed-0" / "dropout"),
        "--epochs",
        "2",
        match=("is a run of the study", f"dropkit compare --resume {study}"),
    )
    assert "from Python" not in err


# case 12b: the same while the study runs (holds its lock). Before: "continue it from Python".
def test_train_resume_on_a_running_study_run_names_the_holder(study, capsys):
    from dropkit.experiment.rundir import RunLock

    with RunLock(study, command="dropkit compare (the study)"):
        err = _refused(
            capsys,
            "train",
            "--resume",
            str(study / "seed-0" / "dropout"),
            "--epochs",
            "2",
            match=("in use by another dropkit run", "the study"),
        )
    assert "from Python" not in err


# case 12c: study.json replaced by a directory. Before: `compare --resume` and `train --resume`
# sent each other round ("continue it from Python" / "made by dropkit compare").
def test_study_json_that_is_a_directory(study, capsys):
    (study / "study.json").unlink()
    (study / "study.json").mkdir()
    err = _refused(
        capsys,
        "compare",
        "--resume",
        str(study),
        "--epochs",
        "2",
        match=("study.json is a directory", "put it back as a regular file"),
    )
    assert "from Python" not in err


# case 12d: a bad data_dir in study.json. Before: reported as "--data-dir 5".
@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("data_dir", 5, "'data.data_dir' must be a folder name (a string) or null, got 5"),
        ("train_size", -3, "'data.train_size' must be a positive integer or null, got -3"),
    ],
)
def test_bad_data_in_study_json_names_file_and_field(study, capsys, key, value, match):
    doc = json.loads((study / "study.json").read_text())
    doc["data"][key] = value
    (study / "study.json").write_text(json.dumps(doc))
    err = _refused(
        capsys, "compare", "--resume", str(study), "--epochs", "2", match=(match, "study.json")
    )
    assert "--data-dir" not in err
