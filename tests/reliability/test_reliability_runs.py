"""Reliability of run folders and of the command line's numerics (issue 11).

Run folders: a run owns its ``--out`` folder (an OS-level lock naming the
holder), a refused command changes nothing on disk, a folder whose run died
before its first checkpoint is neither a dead end nor a trap, ``config.json``
and checkpoints are checked with messages naming the file and the key.
Numerics: non-finite hyperparameters are refused up front, a run whose loss
becomes non-finite stops with a nonzero status and keeps its last finite
checkpoint, impossible sizes are clear errors, booleans are booleans.

Real concurrency and SIGKILL cases run ``dropkit`` in subprocesses; everything
else calls :func:`dropkit.experiment.cli.main` in-process to keep the module fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from dk_helpers import fast_runs
from dk_helpers import snapshot as _snapshot

from dropkit.experiment.checkpoint import load_checkpoint, save_checkpoint
from dropkit.experiment.cli import main
from dropkit.experiment.data import load_dataset
from dropkit.experiment.train import TrainConfig, train

TINY = ["--epochs", "2", "--train-size", "200", "--hidden", "8", "--quiet"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(autouse=True, scope="module")
def _fast():
    """In-process runs without the plots plugin and with each dataset made once.

    (The plots take a second a run and MNIST-1D is generated afresh on each load; the
    subprocess tests keep both.)
    """
    with fast_runs():
        yield


def _cli(capsys, *args: str) -> tuple[int, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.err


def _made(tmp_path: Path, command: str = "train", *extra: str) -> Path:
    out = tmp_path / f"{command}-run"
    assert main([command, *TINY, "--out", str(out), *extra]) == 0
    return out


def _epochs(folder: Path) -> list[int]:
    _, meta = load_checkpoint(folder / "checkpoint.npz")
    return [r["epoch"] for r in meta["history"]]


def _metrics_epochs(folder: Path) -> list[int]:
    lines = (folder / "metrics.csv").read_text().splitlines()
    return [int(line.split(",")[0]) for line in lines[1:]]


def _refused(capsys, folder: Path, *args: str, match: str, status: int = 2) -> str:
    """Run ``args``; it must exit with ``status``, say ``match`` and change nothing."""
    before = _snapshot(folder) if folder.exists() else None
    got, err = _cli(capsys, *args)
    assert got == status, err
    assert err.startswith("dropkit: error:"), err
    assert "Traceback" not in err
    assert match in err, err
    after = _snapshot(folder) if folder.exists() else None
    assert after == before, "a refused command changed the folder"
    return err


# A Python process that holds a run folder's lock (as a running `dropkit train` does) until
# its stdin closes, after printing "locked".
HOLDER = textwrap.dedent(
    """
    import sys
    from dropkit.experiment.rundir import RunLock
    with RunLock(sys.argv[1], command="dropkit train --out " + sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()
    """
)

# `dropkit` with a plugin that stops the process at a chosen moment (printing "stopped"), so
# that the test can SIGKILL it there: "start" (before the first epoch), "write" (in the middle
# of writing the first checkpoint, its temporary file half written), or "none" (no stop).
STOPPED = textwrap.dedent(
    """
    import signal, sys, time
    # Ctrl-C must raise KeyboardInterrupt here even when the test run itself ignores
    # SIGINT (a shell starts background jobs with SIGINT ignored, and children inherit it)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import dropkit.experiment.checkpoint
    from dropkit.experiment.hookspecs import hookimpl

    def stop():
        print("stopped", flush=True)
        time.sleep(600)

    class AtStart:
        @hookimpl
        def dropkit_train_start(self, run):
            stop()

    def half_written(f, **arrays):
        f.write(b"PK\\x03\\x04 half a checkpoint")
        f.flush()
        stop()

    where = sys.argv[1]
    plugins = [AtStart()] if where == "start" else []
    if where == "write":
        dropkit.experiment.checkpoint.np.savez = half_written
    from dropkit.experiment.cli import main
    # without the installed plugins: the plots take a second a run, not needed here
    sys.exit(main(sys.argv[2:], plugins=plugins, installed_plugins=False))
    """
)


def _start(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _wait_for(proc: subprocess.Popen, word: str) -> None:
    line = proc.stdout.readline()
    assert line.strip() == word, f"expected {word!r}, got {line!r}; stderr: {proc.stderr.read()}"


# ---------------------------------------------------------------------------------------------
# Run folders: one run per folder (OS-level lock)


# case: two `dropkit train` processes started at once into one --out
def test_two_trains_at_once_into_one_folder(tmp_path):
    out = tmp_path / "both"
    procs = [_start(STOPPED, "none", "train", *TINY, "--epochs", "4", "--out", str(out))]
    procs.append(_start(STOPPED, "none", "train", *TINY, "--epochs", "4", "--out", str(out)))
    results = [(p.pid, *p.communicate("", timeout=300), p.returncode) for p in procs]
    codes = sorted(r[3] for r in results)
    assert codes == [0, 2], results
    (winner,) = [r for r in results if r[3] == 0]
    (loser,) = [r for r in results if r[3] == 2]
    err = loser[2]
    # refused while the winner ran (names it) or after it finished (the folder holds its run)
    named = f"pid {winner[0]} on {socket.gethostname()}" in err and "is in use by" in err
    assert named or "already holds a run" in err, err
    assert _metrics_epochs(out) == [1, 2, 3, 4]
    assert _epochs(out) == [1, 2, 3, 4]


# case: a run while another process holds the folder (fresh start, --resume, compare --resume)
def test_a_held_folder_is_refused_naming_the_holder(tmp_path, capsys):
    out = _made(tmp_path)
    holder = _start(HOLDER, str(out))
    try:
        _wait_for(holder, "locked")
        for args in (
            ["train", *TINY, "--out", str(out)],
            ["train", "--resume", str(out), "--epochs", "3"],
            ["compare", "--resume", str(out)],
        ):
            err = _refused(capsys, out, *args, match="is in use by another dropkit run")
            assert f"pid {holder.pid} on {socket.gethostname()}" in err
            assert "started 20" in err and "dropkit train --out" in err
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert holder.returncode == 0, holder.stderr.read()
    # once the holder is gone the folder is free again
    assert main(["train", "--resume", str(out), "--epochs", "3"]) == 0
    assert _epochs(out) == [1, 2, 3]


# case: the holder is SIGKILLed: the kernel frees the lock, its stale details do not block
def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
    out = tmp_path / "fresh"
    holder = _start(HOLDER, str(out))
    _wait_for(holder, "locked")
    holder.kill()
    holder.wait(timeout=60)
    assert main(["train", *TINY, "--out", str(out)]) == 0
    assert _epochs(out) == [1, 2]


# case: the lock is per open file, so two holders in one process exclude each other too
def test_lock_excludes_within_one_process(tmp_path):
    from dropkit.experiment.rundir import RunFolderBusyError, RunLock

    with RunLock(tmp_path / "f"), pytest.raises(RunFolderBusyError, match=f"pid {os.getpid()}"):
        RunLock(tmp_path / "f").acquire()
    with RunLock(tmp_path / "f"):  # released: free again
        pass


# case: the library's train() and run_compare() take the lock too (here held by another thread)
def test_library_train_refuses_a_held_folder(tmp_path):
    from dropkit.experiment import run_compare
    from dropkit.experiment.rundir import RunFolderBusyError, RunLock

    data = load_dataset("mnist1d", train_size=200)
    config = TrainConfig(epochs=1, hidden=(8,))
    held, done = threading.Event(), threading.Event()

    def hold():
        with RunLock(tmp_path / "lib"):
            held.set()
            done.wait(60)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(60)
        with pytest.raises(RunFolderBusyError, match=f"is in use .*pid {os.getpid()}"):
            train(config, data, out_dir=tmp_path / "lib")
        with pytest.raises(RunFolderBusyError, match="is in use"):
            run_compare(config, data, tmp_path / "lib")
    finally:
        done.set()
        thread.join()
    assert _snapshot(tmp_path / "lib") == {".dropkit.lock": hashlib.sha256(b"").hexdigest()}
    train(config, data, out_dir=tmp_path / "lib")  # free again
    assert _epochs(tmp_path / "lib") == [1]


# ---------------------------------------------------------------------------------------------
# Run folders: a refused --resume changes nothing; equal options are not differences


# case: --resume D --hidden 16 on a run made with --hidden 8 (then a plain --resume still works)
def test_refused_resume_changes_nothing(tmp_path, capsys):
    out = _made(tmp_path)
    err = _refused(
        capsys,
        out,
        "train",
        "--resume",
        str(out),
        "--hidden",
        "16",
        match="--hidden: saved 8, now 16",
    )
    assert "config.json" in err
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 0
    assert _epochs(out) == [1, 2, 3]


# case: several differing options are all named, with the flags' spelling
def test_refused_resume_names_every_difference(tmp_path, capsys):
    out = _made(tmp_path)
    err = _refused(
        capsys,
        out,
        "train",
        "--resume",
        str(out),
        "--lr",
        "0.1",
        "--nesterov",
        "--dtype",
        "float64",
        match="--lr: saved 0.05, now 0.1",
    )
    assert "--nesterov: saved False, now True" in err and "--dtype: saved float32" in err


# case: --backend numpy (or --seed 0, --lr 0.05: the defaults) on a run that did not pass them
def test_resume_with_options_equal_to_the_saved_ones(tmp_path, capsys):
    out = _made(tmp_path)
    saved = (out / "config.json").read_text()
    args = ["--backend", "numpy", "--seed", "0", "--lr", "0.05", "--hidden", "8"]
    assert main(["train", "--resume", str(out), *args, "--quiet"]) == 0
    assert _epochs(out) == [1, 2]
    assert (out / "config.json").read_text() == saved  # nothing to change
    assert main(["train", "--resume", str(out), "--epochs", "3", "--backend", "numpy"]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["backend"] is None
    assert _epochs(out) == [1, 2, 3]


# case: --train-size / --data-dir on --resume that differ from the saved data options
def test_resume_with_other_data_options_is_refused(tmp_path, capsys):
    out = _made(tmp_path)
    _refused(
        capsys,
        out,
        "train",
        "--resume",
        str(out),
        "--train-size",
        "100",
        match="--train-size: saved 200, now 100",
    )
    assert main(["train", "--resume", str(out), "--train-size", "200", "--quiet"]) == 0


# case: --epochs below the epochs already trained
def test_resume_to_fewer_epochs_than_trained(tmp_path, capsys):
    out = _made(tmp_path)
    _refused(
        capsys,
        out,
        "train",
        "--resume",
        str(out),
        "--epochs",
        "1",
        match="--epochs 1 is fewer than the 2 epochs already trained",
    )


# case: --resume D --out E (two different folders)
def test_resume_with_another_out(tmp_path, capsys):
    out = _made(tmp_path)
    _refused(
        capsys,
        out,
        "train",
        "--resume",
        str(out),
        "--out",
        str(tmp_path / "elsewhere"),
        match="--resume continues the run in its own folder",
    )
    assert not (tmp_path / "elsewhere").exists()
    assert main(["train", "--resume", str(out), "--out", str(out), "--quiet"]) == 0


# case: --preset on --resume: its values count as given options
def test_resume_with_a_preset(tmp_path, capsys):
    out = _made(tmp_path)
    _refused(
        capsys,
        out,
        "train",
        "--resume",
        str(out),
        "--preset",
        "article-cifar10",
        match="--dataset: saved mnist1d, now cifar10",
    )
    assert main(["train", "--resume", str(out), "--preset", "mnist1d", "--hidden", "8"]) == 0


# case: --resume on a missing folder, on a file, on a folder without config.json
def test_resume_of_nothing(tmp_path, capsys):
    _refused(
        capsys,
        tmp_path / "missing",
        "train",
        "--resume",
        str(tmp_path / "missing"),
        match="nothing to resume",
    )
    assert not (tmp_path / "missing").exists()
    (tmp_path / "file").write_text("x")
    _refused(capsys, tmp_path, "train", "--resume", str(tmp_path / "file"), match="not a folder")
    (tmp_path / "empty").mkdir()
    _refused(
        capsys,
        tmp_path / "empty",
        "train",
        "--resume",
        str(tmp_path / "empty"),
        match="no config.json",
    )


# case: --out names an existing file
def test_out_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    _refused(
        capsys, tmp_path, "train", *TINY, "--out", str(tmp_path / "file"), match="not a folder"
    )


# case: a fresh start into a folder that holds a run (train and compare layouts)
def test_fresh_start_into_a_run_is_refused(tmp_path, capsys):
    for command in ("train", "compare"):
        out = _made(tmp_path, command)
        for other in ("train", "compare"):
            _refused(
                capsys,
                out,
                other,
                *TINY,
                "--out",
                str(out),
                match="already holds a run: continue it with",
            )


# ---------------------------------------------------------------------------------------------
# Run folders: no dead end after a failed start or a kill before the first checkpoint


# case: a failed start (--backend cupy without CUDA here; a seed out of range) writes nothing
@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--backend", "cupy"], "backend 'cupy' is unavailable"),
        (["--seed", str(2**64)], "--seed"),
        (["--backend", "nope"], "unknown backend 'nope'"),
    ],
)
def test_failed_start_leaves_no_folder(tmp_path, capsys, args, match):
    from dropkit.selection import get_backend

    if args[1] == "cupy":
        try:
            get_backend("cupy")
            pytest.skip("CuPy works here")
        except (ImportError, RuntimeError, ValueError):
            pass
    out = tmp_path / "x"
    _refused(capsys, out, "train", *TINY, "--out", str(out), *args, match=match)
    assert not out.exists()
    assert main(["train", *TINY, "--out", str(out)]) == 0


# case: a folder left by an older dropkit's failed start (config.json, no checkpoint)
def test_folder_without_checkpoint_is_resumable_and_reusable(tmp_path, capsys):
    out = _made(tmp_path)
    reference, _ = load_checkpoint(out / "checkpoint.npz")
    (out / "checkpoint.npz").unlink()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0  # from epoch 0
    got, meta = load_checkpoint(out / "checkpoint.npz")
    assert [r["epoch"] for r in meta["history"]] == [1, 2]
    for name, want in reference.items():
        np.testing.assert_array_equal(got[name], want, err_msg=name)
    (out / "checkpoint.npz").unlink()
    assert main(["train", *TINY, "--out", str(out), "--hidden", "4"]) == 0  # a fresh start
    assert json.loads((out / "config.json").read_text())["config"]["hidden"] == [4]


# case: SIGKILL before the first epoch / in the middle of writing the first checkpoint,
# then --resume D (from epoch 0) or a fresh start into D; stale temporaries are removed
@pytest.mark.slow  # four training processes, two of them killed
def test_killed_before_first_checkpoint_then_resume_or_restart(tmp_path):
    folders = {"start": tmp_path / "at-start", "write": tmp_path / "at-write"}
    procs = {
        where: _start(STOPPED, where, "train", *TINY, "--out", str(folder))
        for where, folder in folders.items()
    }
    # case: Ctrl-C (SIGINT) before the first epoch: status 130, the folder resumable
    interrupted = tmp_path / "interrupted"
    ctrl_c = _start(STOPPED, "start", "train", *TINY, "--out", str(interrupted))
    _wait_for(ctrl_c, "stopped")
    ctrl_c.send_signal(signal.SIGINT)
    _, err = ctrl_c.communicate(timeout=60)
    assert ctrl_c.returncode == 130, err
    assert (
        f"interrupted; every finished epoch is saved: continue with --resume {interrupted}" in err
    )
    assert main(["train", "--resume", str(interrupted), "--quiet"]) == 0
    assert _epochs(interrupted) == [1, 2]

    for where, proc in procs.items():
        _wait_for(proc, "stopped")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        assert not (folders[where] / "checkpoint.npz").exists()
    stale = [p.name for p in folders["write"].iterdir() if ".tmp-" in p.name]
    assert stale == [f".checkpoint.npz.tmp-{procs['write'].pid}"]

    reference = tmp_path / "reference"
    assert main(["train", *TINY, "--out", str(reference)]) == 0
    assert main(["train", "--resume", str(folders["start"]), "--quiet"]) == 0
    assert main(["train", *TINY, "--out", str(folders["write"])]) == 0
    want, want_meta = load_checkpoint(reference / "checkpoint.npz")
    for folder in folders.values():
        assert not [p for p in folder.iterdir() if ".tmp-" in p.name]
        got, meta = load_checkpoint(folder / "checkpoint.npz")
        assert [r["loss"] for r in meta["history"]] == [r["loss"] for r in want_meta["history"]]
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        assert _metrics_epochs(folder) == [1, 2]


# case: compare killed after its standard net finished, before the dropout net's checkpoint
def test_compare_resume_with_one_net_done(tmp_path, capsys):
    out = _made(tmp_path, "compare")
    (out / "dropout" / "checkpoint.npz").unlink()
    (out / "summary.json").unlink()
    assert main(["compare", "--resume", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dropout"]["epochs"] == summary["standard"]["epochs"] == 2


# ---------------------------------------------------------------------------------------------
# Run folders: train and compare folders are not interchangeable


# case: compare --resume on a folder made by train
def test_compare_resume_on_a_train_folder(tmp_path, capsys):
    out = _made(tmp_path)
    _refused(
        capsys,
        out,
        "compare",
        "--resume",
        str(out),
        match="was made by `dropkit train`: continue it with `dropkit train --resume",
    )
    assert not (out / "standard").exists()


# case: train --resume on a folder made by compare
def test_train_resume_on_a_compare_folder(tmp_path, capsys):
    out = _made(tmp_path, "compare")
    _refused(
        capsys,
        out,
        "train",
        "--resume",
        str(out),
        match="was made by `dropkit compare`: continue it with `dropkit compare --resume",
    )


# case: a folder of an older dropkit (no "command" in config.json): told apart by its files
def test_old_folders_without_command_are_told_apart(tmp_path, capsys):
    out = _made(tmp_path)
    meta = json.loads((out / "config.json").read_text())
    del meta["command"]
    (out / "config.json").write_text(json.dumps(meta))
    _refused(capsys, out, "compare", "--resume", str(out), match="was made by `dropkit train`")
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 0


# ---------------------------------------------------------------------------------------------
# Run folders: config.json checked, naming the file and the key


def _edit_config(out: Path, edit) -> None:
    meta = json.loads((out / "config.json").read_text())
    edit(meta)
    (out / "config.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m["config"].pop("lr"), "missing key 'config.lr'"),
        (lambda m: m["config"].update(colour="red"), "unknown key 'config.colour'"),
        (lambda m: m["config"].update(lr="fast"), "'config.lr' must be a number, got 'fast'"),
        (lambda m: m["config"].update(lr=None), "'config.lr' must be a number"),
        (lambda m: m["config"].update(lr=float("nan")), "'config.lr' must be finite"),
        (lambda m: m["config"].update(hidden="8"), "'config.hidden' must be a list of"),
        (lambda m: m["config"].update(hidden=[8.5]), "'config.hidden' must be a list of"),
        (lambda m: m["config"].update(epochs=2.5), "'config.epochs' must be an integer"),
        (lambda m: m["config"].update(epochs=True), "'config.epochs' must be an integer"),
        (lambda m: m["config"].update(nesterov="no"), "'config.nesterov' must be true or false"),
        (lambda m: m["config"].update(nesterov=0), "'config.nesterov' must be true or false"),
        (lambda m: m["config"].update(backend=3), "'config.backend' must be a string or null"),
        (
            lambda m: m["config"].update(p_hidden=1.5),
            "config.json: p is the probability of DROPPING",
        ),
        (lambda m: m["config"].update(mode="sideways"), "config.json: mode must be"),
        (lambda m: m["config"].update(batch_size=0), "config.json: batch_size must be"),
        (lambda m: m.pop("config"), "missing key 'config'"),
        (lambda m: m.pop("data"), "missing key 'data'"),
        (lambda m: m.update(config=[1, 2]), "'config' must be an object"),
        (lambda m: m.update(extra=1), "unknown key 'extra'"),
        (lambda m: m.update(command="fit"), "'command' must be 'train' or 'compare'"),
        (lambda m: m["data"].update(train_size="200"), "'data.train_size' must be an integer"),
        (lambda m: m["data"].update(data_dir=5), "'data.data_dir' must be a string or null"),
        (lambda m: m["data"].pop("train_size"), "missing key 'data.train_size'"),
        (lambda m: m["data"].update(zip=1), "unknown key 'data.zip'"),
    ],
)
def test_bad_config_json(tmp_path, capsys, edit, match):
    out = _made(tmp_path)
    _edit_config(out, edit)
    err = _refused(capsys, out, "train", "--resume", str(out), match=match)
    assert str(out / "config.json") in err


# case: config.json truncated, empty, not JSON, not an object, not UTF-8, a folder
@pytest.mark.parametrize(
    ("content", "match"),
    [
        (lambda raw: raw[: len(raw) // 2], "is not valid JSON"),
        (lambda raw: b"", "is not valid JSON"),
        (lambda raw: b"[1, 2]", "must hold a JSON object"),
        (lambda raw: b"\xff\xfe\x00", "is not valid JSON"),
        (lambda raw: b'{"config": 1e999, "data": {}}', "'config' must be an object"),
    ],
)
def test_corrupt_config_json(tmp_path, capsys, content, match):
    out = _made(tmp_path)
    path = out / "config.json"
    path.write_bytes(content(path.read_bytes()))
    err = _refused(capsys, out, "train", "--resume", str(out), match=match)
    assert str(path) in err and "left as is" in err
    # a fresh start into it is refused as well (it holds a checkpoint), never a traceback
    _refused(capsys, out, "train", *TINY, "--out", str(out), match="already holds a run")


# ---------------------------------------------------------------------------------------------
# Run folders: checkpoints checked on resume


def _edit_checkpoint(out: Path, edit) -> None:
    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    edit(arrays, meta)
    meta.pop("format")
    save_checkpoint(out / "checkpoint.npz", arrays, meta)


def _set(d, key, value):
    d[key] = value


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda a, m: _set(a, "param_0", a["param_0"][:, :-1]), "'param_0' has shape"),
        (lambda a, m: a.pop("velocity_1"), "has no array 'velocity_1'"),
        (lambda a, m: _set(a, "param_2", a["param_2"] * np.nan), "'param_2' holds NaN or inf"),
        (lambda a, m: _set(a, "velocity_0", a["velocity_0"] + np.inf), "'velocity_0' holds NaN or"),
        (lambda a, m: _set(a, "param_0", a["param_0"].astype(int)), "'param_0' has dtype int"),
        (lambda a, m: _set(a, "extra", np.ones(2)), "unexpected array 'extra'"),
        (lambda a, m: _set(m, "generators", [{"key": -1}] * 2), "generator state 0"),
        (lambda a, m: _set(m, "generators", [{"key": "x"}] * 2), "generator state 0"),
        (lambda a, m: _set(m, "generators", [{"key": 1, "colour": 2}] * 2), "generator state"),
        (lambda a, m: _set(m, "generators", [{"key": 1}]), "2 generator states"),
        (lambda a, m: m.pop("generators"), "has no 'generators'"),
        (lambda a, m: _set(m, "history", "x"), "'history' must be a list"),
        (lambda a, m: _set(m, "history", [{"epoch": 1}]), "history entry 0"),
        (lambda a, m: m.pop("config"), "belongs to a different configuration"),
    ],
)
def test_bad_checkpoint_is_a_clear_error(tmp_path, capsys, edit, match):
    out = _made(tmp_path)
    _edit_checkpoint(out, edit)
    err = _refused(capsys, out, "train", "--resume", str(out), "--epochs", "3", match=match)
    assert str(out / "checkpoint.npz") in err


# case: a truncated checkpoint (already a clear error); the refusal keeps it and config.json
def test_truncated_checkpoint_is_kept(tmp_path, capsys):
    out = _made(tmp_path)
    raw = (out / "checkpoint.npz").read_bytes()
    (out / "checkpoint.npz").write_bytes(raw[:100])
    _refused(capsys, out, "train", "--resume", str(out), "--epochs", "3", match="is corrupt")


# ---------------------------------------------------------------------------------------------
# Numerics: hyperparameters


# case: non-finite or out-of-range numeric options are refused before anything is written
@pytest.mark.parametrize(
    ("flag", "value", "match"),
    [
        ("--lr", "nan", "argument --lr: must be a finite number, got 'nan'"),
        ("--lr", "inf", "argument --lr: must be a finite number, got 'inf'"),
        ("--lr", "-inf", "argument --lr: must be a finite number"),
        ("--momentum", "nan", "argument --momentum: must be a finite number"),
        ("--weight-decay", "inf", "argument --weight-decay: must be a finite number"),
        ("--p-hidden", "nan", "argument --p-hidden: must be a finite number"),
        ("--p-input", "inf", "argument --p-input: must be a finite number"),
        ("--lr", "fast", "argument --lr: must be a finite number, got 'fast'"),
        ("--epochs", "2.5", "argument --epochs: must be an integer, got '2.5'"),
        ("--batch-size", "nan", "argument --batch-size: must be an integer"),
    ],
)
def test_non_finite_options_refused_up_front(tmp_path, capsys, flag, value, match):
    out = tmp_path / "x"
    with pytest.raises(SystemExit) as exc:
        main(["train", *TINY, "--out", str(out), f"{flag}={value}"])
    assert exc.value.code == 2
    assert match in capsys.readouterr().err
    assert not out.exists()


# case: out-of-range values of numeric options (library and CLI) name the option
@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--lr", "0"], "--lr must be positive, got 0.0"),
        (["--lr", "-1"], "--lr must be positive"),
        (["--momentum", "1.5"], "--momentum must be in [0, 1), got 1.5"),
        (["--momentum", "-0.1"], "--momentum must be in [0, 1)"),
        (["--weight-decay", "-1"], "--weight-decay must be >= 0"),
        (["--lr-every", "-1"], "--lr-every must be >= 0"),
        (["--lr-times", "-1"], "--lr-times must be >= 0"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--batch-size", "-3"], "--batch-size must be at least 1"),
        (["--train-size", "0"], "--train-size must be at least 1"),
        (["--seed", "-1"], "--seed must be an integer in [0, 2**64)"),
    ],
)
def test_out_of_range_options(tmp_path, capsys, args, match):
    out = tmp_path / "x"
    _refused(capsys, out, "train", *TINY, "--out", str(out), *args, match=match)
    assert not out.exists()


# case: TrainConfig given non-finite floats, non-bool flags, non-integer sizes (library)
@pytest.mark.parametrize(
    ("field", "value", "exc", "match"),
    [
        ("lr", float("nan"), ValueError, "lr must be finite"),
        ("lr", float("inf"), ValueError, "lr must be finite"),
        ("momentum", float("nan"), ValueError, "momentum must be finite"),
        ("weight_decay", float("inf"), ValueError, "weight_decay must be finite"),
        ("lr", "0.1", TypeError, "lr must be a real number"),
        ("nesterov", "no", TypeError, "nesterov must be a bool"),
        ("nesterov", 1, TypeError, "nesterov must be a bool"),
        ("epochs", 2.5, TypeError, "epochs must be an integer"),
        ("epochs", True, TypeError, "epochs must be an integer"),
        ("hidden", (2.7,), TypeError, "hidden sizes must be integers"),
        ("hidden", 8, TypeError, "hidden must be a sequence"),
        ("seed", -1, ValueError, "seed must be an integer in"),
        ("seed", 2**64, ValueError, "seed must be an integer in"),
        ("backend", 3, TypeError, "backend must be a string or None"),
        ("dataset", 3, ValueError, "dataset must be one of"),
    ],
)
def test_train_config_types(field, value, exc, match):
    with pytest.raises(exc, match=match):
        TrainConfig(**{field: value})


# case: NumPy scalars for integer and float fields are correct values, not errors
def test_train_config_accepts_numpy_scalars():
    cfg = TrainConfig(
        epochs=np.int64(3),
        hidden=(np.int32(4), 5),
        lr=np.float32(0.25),
        nesterov=np.bool_(True),
        seed=np.uint64(2**63),
    )
    assert cfg.epochs == 3 and type(cfg.epochs) is int and cfg.hidden == (4, 5)
    assert cfg.lr == 0.25 and type(cfg.lr) is float and cfg.nesterov is True
    assert json.loads(json.dumps(cfg.to_dict()))["seed"] == 2**63


# ---------------------------------------------------------------------------------------------
# Numerics: a run whose loss becomes non-finite


# case: --lr 1e300 overflows the float32 weights in the first step: status 3, no checkpoint,
# and the folder is not a dead end
def test_diverged_first_epoch(tmp_path, capsys):
    out = tmp_path / "x"
    status, err = _cli(capsys, "train", *TINY, "--out", str(out), "--lr", "1e300")
    assert status == 3, err
    assert "[train] diverged: a parameter became NaN or inf in epoch 1" in err
    assert "no checkpoint was written" in err and "lower --lr" in err
    assert not (out / "checkpoint.npz").exists()
    assert _metrics_epochs(out) == []
    assert main(["train", *TINY, "--out", str(out)]) == 0  # a fresh start may reuse it


# case: --lr 1e30: epoch 1 is finite (one batch), the loss of epoch 2 is NaN: status 3, the
# checkpoint of epoch 1 is kept and finite, metrics.csv stops at epoch 1
def test_diverged_second_epoch_keeps_the_first(tmp_path, capsys):
    out = tmp_path / "x"
    status, err = _cli(capsys, "train", *TINY, "--out", str(out), "--lr", "1e30")
    assert status == 3, err
    assert "the training loss became nan in epoch 2" in err
    assert f"the last finite checkpoint (epoch 1) is kept in {out}" in err
    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    assert meta["epoch"] == 1 and all(np.isfinite(a).all() for a in arrays.values())
    assert _metrics_epochs(out) == [1]


# case: the loss becomes NaN in epoch 3: the checkpoint of epoch 2 is kept, status 3
def test_diverged_later_keeps_last_finite_checkpoint(tmp_path, capsys, monkeypatch):
    import dropkit.experiment.train as train_module

    real = train_module.softmax_cross_entropy
    calls = {"n": 0}

    def poisoned(xp, logits, labels, **options):  # the loop asks for the loss as an array
        calls["n"] += 1
        loss, grad = real(xp, logits, labels, **options)
        return (loss * np.nan, grad * np.nan) if calls["n"] > 2 * 4 else (loss, grad)

    monkeypatch.setattr(train_module, "softmax_cross_entropy", poisoned)
    out = tmp_path / "x"  # 200 examples in batches of 50: 4 steps an epoch
    args = ["train", *TINY, "--epochs", "5", "--batch-size", "50", "--out", str(out)]
    status, err = _cli(capsys, *args)
    assert status == 3, err
    assert "the training loss became nan in epoch 3" in err
    assert f"last finite checkpoint (epoch 2) is kept in {out}" in err
    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    assert meta["epoch"] == 2 and all(np.isfinite(a).all() for a in arrays.values())
    assert _metrics_epochs(out) == [1, 2]
    assert "Traceback" not in err


# case: a diverged compare stops the same way
def test_diverged_compare(tmp_path, capsys):
    out = tmp_path / "x"
    status, err = _cli(capsys, "compare", *TINY, "--out", str(out), "--lr", "1e30")
    assert status == 3 and "diverged" in err and "[standard]" in err
    assert not (out / "summary.json").exists()


# ---------------------------------------------------------------------------------------------
# Numerics: sizes


# case: --hidden 10000000000 and nets too large for the memory: clear error, nothing written
@pytest.mark.parametrize("hidden", ["10000000000", "300000,300000", str(2**70)])
def test_impossible_hidden(tmp_path, capsys, hidden):
    out = tmp_path / "x"
    _refused(
        capsys,
        out,
        "train",
        *TINY,
        "--out",
        str(out),
        "--hidden",
        hidden,
        match="parameters, which need",
    )
    assert not out.exists()


# case: --hidden with bad widths (already clear)
@pytest.mark.parametrize(
    ("hidden", "match"), [("0", "must be positive"), ("a,b", "comma-separated"), ("", "")]
)
def test_bad_hidden_widths(tmp_path, capsys, hidden, match):
    with pytest.raises(SystemExit) as exc:
        main(["train", *TINY, "--out", str(tmp_path / "x"), "--hidden", hidden])
    assert exc.value.code == 2 and match in capsys.readouterr().err


# case: dropkit demo --size 0 / -3 / 10**11, --p nan / inf / 1.5, --seed -1
@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--size", "0"], "--size must be at least 1, got 0"),
        (["--size", "-3"], "--size must be at least 1, got -3"),
        (["--size", str(10**11)], "--size 100000000000 needs"),
        (["--seed", "-1"], "--seed must be an integer in [0, 2**64)"),
        (["--p", "1.5"], "probability of DROPPING"),
    ],
)
def test_demo_bad_values(capsys, args, match):
    status, err = _cli(capsys, "demo", *args)
    assert status == 2 and match in err and "Traceback" not in err, err


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_demo_non_finite_p(capsys, value):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--p", value])
    assert exc.value.code == 2
    assert f"argument --p: must be a finite number, got '{value}'" in capsys.readouterr().err


# case: demo --size 1 (the smallest) works
def test_demo_smallest_size(capsys):
    assert main(["demo", "--size", "1", "--p", "0"]) == 0
    assert "kept 1/1 units" in capsys.readouterr().out


# case: MemoryError while training (a net that passes the estimate) is one clear line
def test_memory_error_is_one_clear_line(tmp_path, capsys, monkeypatch):
    import dropkit.experiment.train as train_module

    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(train_module, "MLP", no_memory)
    status, err = _cli(capsys, "train", *TINY, "--out", str(tmp_path / "x"))
    assert status == 2 and "out of memory" in err and "--hidden" in err, err


# ---------------------------------------------------------------------------------------------
# Beyond the list: more run-folder and option cases


# case: the folder changes between the checks and the lock (another run wrote there)
def test_folder_changed_while_getting_ready(tmp_path, capsys, monkeypatch):
    import dropkit.experiment.rundir

    out = _made(tmp_path)
    real = dropkit.experiment.rundir.RunLock.acquire

    def racing(self):
        (out / "config.json").write_text((out / "config.json").read_text() + " ")
        return real(self)

    monkeypatch.setattr(dropkit.experiment.rundir.RunLock, "acquire", racing)
    status, err = _cli(capsys, "train", "--resume", str(out), "--epochs", "3")
    assert status == 2 and "changed while this command got ready" in err, err
    assert _epochs(out) == [1, 2]
    monkeypatch.undo()
    assert main(["train", "--resume", str(out), "--epochs", "3"]) == 0


# case: --resume "" and --out "" (an empty folder name)
@pytest.mark.parametrize("flag", ["--resume", "--out"])
def test_empty_folder_names(tmp_path, capsys, monkeypatch, flag):
    monkeypatch.chdir(tmp_path)
    _refused(capsys, tmp_path, "train", *TINY, flag, "", match=f"{flag} needs a folder name")


# case: --out under a regular file (its parent is not a folder)
def test_out_below_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    err = _refused(
        capsys, tmp_path, "train", *TINY, "--out", str(tmp_path / "file" / "run"), match="file"
    )
    assert (tmp_path / "file").read_text() == "mine" and "Traceback" not in err


# case: the folder's .dropkit.lock is a folder (cannot be locked): clear error
def test_lock_file_that_is_a_folder(tmp_path, capsys):
    out = tmp_path / "x"
    (out / ".dropkit.lock").mkdir(parents=True)
    _refused(capsys, out, "train", *TINY, "--out", str(out), match="cannot lock the run folder")


# case: --out with spaces and non-ASCII characters (correct acceptance)
def test_out_with_spaces_and_unicode(tmp_path):
    out = tmp_path / "my runs" / "dropout ü 1"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 0
    assert _epochs(out) == [1, 2, 3]


# case: metrics.csv deleted or damaged before --resume: rewritten from the checkpoint
def test_resume_rewrites_a_lost_metrics_file(tmp_path):
    out = _made(tmp_path)
    (out / "metrics.csv").write_text("garbage")
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 0
    assert _metrics_epochs(out) == [1, 2, 3]


# case: a huge --batch-size (more than the data) and extreme but valid values are accepted
def test_extreme_valid_options(tmp_path):
    out = tmp_path / "x"
    args = ["--batch-size", str(10**12), "--seed", str(2**64 - 1), "--momentum", "0"]
    args += ["--lr-every", "0", "--lr-times", "0", "--weight-decay", "0", "--lr", "1e-300"]
    assert main(["train", *TINY, "--out", str(out), *args]) == 0
    _, meta = load_checkpoint(out / "checkpoint.npz")
    assert (
        meta["config"]["seed"] == 2**64 - 1 and [r["lr"] for r in meta["history"]] == [1e-300] * 2
    )


@pytest.fixture
def environment(monkeypatch):
    """Set $DROPKIT_BACKEND (None: unset) in this process; dropkit reads it again (once)."""
    from dropkit import selection

    def set_to(value):
        if value is None:
            monkeypatch.delenv("DROPKIT_BACKEND", raising=False)
        else:
            monkeypatch.setenv("DROPKIT_BACKEND", value)
        selection.reread_environment()

    yield set_to
    monkeypatch.undo()
    selection.reread_environment()


# case: --train-size beyond the data, and $DROPKIT_BACKEND naming no backend (already clear)
def test_data_and_backend_environment_errors(tmp_path, capsys, environment):
    out = tmp_path / "x"
    _refused(capsys, out, "train", *TINY, "--out", str(out), "--train-size", "4001", match="4001")
    environment("nope")
    _refused(capsys, out, "train", *TINY, "--out", str(out), match="unknown backend 'nope'")
    assert not out.exists()


# case: a fresh compare into a folder held by a running train (and the reverse) is refused
def test_compare_into_a_held_folder(tmp_path, capsys):
    from dropkit.experiment.rundir import RunLock

    out = tmp_path / "x"
    held, done = threading.Event(), threading.Event()

    def hold():
        with RunLock(out, command="dropkit train --out x"):
            held.set()
            done.wait(60)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(60)
        err = _refused(capsys, out, "compare", *TINY, "--out", str(out), match="is in use")
        assert "dropkit train --out x" in err
    finally:
        done.set()
        thread.join()


# case: the diverged run prints no NumPy overflow warnings, only its message
def test_divergence_is_not_a_warning_storm(tmp_path, capsys):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, _ = _cli(capsys, "train", *TINY, "--out", str(tmp_path / "x"), "--lr", "1e30")
    assert status == 3
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


# ---------------------------------------------------------------------------------------------
# Found by a check of the merged changes (each failed before its fix)


# case: float16 with p near 1 used to fail only in training, after writing files (and, in
# compare, after training the whole standard net); now refused before anything is written
@pytest.mark.parametrize("command", ["train", "compare"])
def test_float16_scale_overflow_is_refused_before_anything_is_written(tmp_path, capsys, command):
    out = tmp_path / "f16"
    status, err = _cli(
        capsys, command, *TINY, "--dtype", "float16", "--p-hidden", "0.99999", "--out", str(out)
    )
    assert status == 2 and "--p-hidden is too close to 1 for float16" in err
    assert "--mode vanilla" in err
    assert not out.exists()
    status, _ = _cli(
        capsys, command, *TINY, "--dtype", "float16", "--p-hidden", "0.9999", "--out", str(out)
    )  # the largest representable scales still run
    assert status == 0


# case: `train --backend array_api_strict` crashed in evaluation (a slice past the end)
def test_training_on_the_strict_backend(tmp_path, capsys):
    status, err = _cli(
        capsys, "train", *TINY, "--backend", "array_api_strict", "--out", str(tmp_path / "s")
    )
    assert status == 0, err
    assert _epochs(tmp_path / "s") == [1, 2]


# case: a run whose backend came from $DROPKIT_BACKEND could only be resumed with the variable
# (config.json said null; the two refusals contradicted each other)
def test_a_backend_chosen_by_the_environment_is_recorded(tmp_path, capsys, environment):
    out = tmp_path / "env"
    environment("array_api_strict")
    assert main(["train", *TINY, "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["backend"] == "array_api_strict"
    environment(None)
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 0
    assert _epochs(out) == [1, 2, 3]
    assert (
        main(
            [
                "train",
                "--resume",
                str(out),
                "--epochs",
                "4",
                "--quiet",
                "--backend",
                "array_api_strict",
            ]
        )
        == 0
    )


# case: the divergence message sent the user back to the same folder (a dead end)
def test_divergence_message_points_to_another_folder(tmp_path, capsys):
    out = tmp_path / "div"
    status, err = _cli(capsys, "train", *TINY, "--lr", "1e30", "--out", str(out))
    assert status == 3 and "in another --out folder" in err


# case: a folder trained by the library (no config.json): `--resume` said "nothing to resume"
# and a fresh start said "use --resume"
def test_a_library_run_folder_says_how_to_continue(tmp_path, capsys):
    out = tmp_path / "lib"
    data = load_dataset("mnist1d", train_size=200)
    train(TrainConfig(epochs=1, hidden=(8,)), data, out_dir=out)
    status, err = _cli(capsys, "train", "--resume", str(out), "--quiet")
    assert status == 2 and "no config.json" in err and "resume=True" in err
    status, err = _cli(capsys, "train", *TINY, "--out", str(out))
    assert status == 2 and "train(..., resume=True)" in err and "--resume" not in err


# case: --out below a plain file gave "[Errno 20] Not a directory" without naming --out
def test_out_below_a_plain_file_names_the_file(tmp_path, capsys):
    (tmp_path / "plain").write_text("x")
    status, err = _cli(capsys, "train", *TINY, "--out", str(tmp_path / "plain" / "run"))
    assert status == 2 and "is a file, not a folder" in err and "--out" in err


# case: a closed stdout (`dropkit train ... | head -0`) was reported as "error" with exit 2
# (since issue 18: it ends quietly, exit 141, no message)
@pytest.mark.slow  # several processes or a training: seconds
def test_a_closed_output_is_a_broken_pipe_not_an_error(tmp_path):
    out = tmp_path / "pipe"
    code = "import sys; from dropkit.experiment.cli import main; sys.exit(main(sys.argv[1:]))"
    reader = subprocess.Popen(["head", "-c", "0"], stdin=subprocess.PIPE)
    proc = subprocess.run(
        [sys.executable, "-c", code, "train", *TINY[:-1], "--out", str(out)],
        stdout=reader.stdin,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        timeout=300,
    )
    reader.stdin.close()
    reader.wait()
    assert proc.returncode == 141, proc.stderr
    assert "broken pipe" not in proc.stderr and "error" not in proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
