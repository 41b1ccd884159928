"""The Dask runner's parts that need no Dask process: addresses, flags, locks, stops, messages.

The real engine (a LocalCluster, a scheduler and workers started here, kills) is in
test_study_dask.py (slow).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from dk_helpers import no_plots

from dropkit.experiment import cluster
from dropkit.experiment.checkpoint import load_checkpoint
from dropkit.experiment.cli import main
from dropkit.experiment.cluster import (
    ClusterError,
    RunLostError,
    Watch,
    check_shared_folder,
    parse_address,
    run_task,
    study_gone,
    study_watch,
)
from dropkit.experiment.data import load_dataset
from dropkit.experiment.rundir import LOCK_NAME, RunFolderBusyError, RunLock
from dropkit.experiment.tasks import Task
from dropkit.experiment.train import TrainConfig, TrainResult

TINY = ["--epochs", "2", "--train-size", "300", "--hidden", "12", "--quiet"]


@pytest.fixture(autouse=True)
def _no_plots():
    with no_plots():
        yield


@pytest.fixture(scope="module")
def small():
    return load_dataset(train_size=200)


# ---- addresses and flags -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "good", ["tcp://127.0.0.1:8786", "tls://node-3.example:9000", "tcp://[::1]:1"]
)
def test_scheduler_addresses_are_taken(good):
    assert parse_address(f" {good} ") == good


@pytest.mark.parametrize(
    "bad", ["127.0.0.1:8786", "tcp://host", "tcp://host:0", "tcp://h:70000", ""]
)
def test_bad_scheduler_addresses_say_what_one_looks_like(bad):
    with pytest.raises(ValueError, match=r"like tcp://HOST:8786 \(what `dask scheduler` prints\)"):
        parse_address(bad)


@pytest.mark.parametrize(
    ("args", "env", "match"),
    [
        (["--cluster", "10.0.0.1"], None, "--cluster needs a scheduler address like tcp://HOST"),
        ([], "nowhere", "DROPKIT_CLUSTER needs a scheduler address like tcp://HOST"),
        (["--cluster", "tcp://127.0.0.1:1", "--jobs", "2"], None, "--jobs 2 sizes the local"),
        (["--cluster", "tcp://127.0.0.1:1"], None, "nothing answers at tcp://127.0.0.1:1"),
        (["--seeds", "2"], "tcp://127.0.0.1:1", "nothing answers at tcp://127.0.0.1:1"),
    ],
)
def test_cluster_flags_are_checked_before_anything_is_written(
    tmp_path, capsys, monkeypatch, args, env, match
):
    if env is None:
        monkeypatch.delenv("DROPKIT_CLUSTER", raising=False)
    else:
        monkeypatch.setenv("DROPKIT_CLUSTER", env)
    out = tmp_path / "s"
    assert main(["compare", *TINY, "--seeds", "2", *args, "--out", str(out)]) == 2
    assert match in capsys.readouterr().err
    assert not out.exists()


def test_without_distributed_a_study_runs_here_and_says_how_to_get_it(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    monkeypatch.delenv("DROPKIT_CLUSTER", raising=False)
    out = tmp_path / "s"
    assert main(["compare", *TINY, "--seeds", "2", "--jobs", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "a study with --jobs 2 runs on Dask distributed, which is not installed" in err
    assert "pip install 'dropkit[distributed]'" in err and not out.exists()
    assert main(["compare", *TINY, "--seeds", "2", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "Dask distributed is not installed: the runs train one at a time" in err
    assert json.loads((out / "summary.json").read_text())["seeds"] == [0, 1]


# ---- what a worker checks ----------------------------------------------------------------------


def test_a_study_is_gone_when_its_lock_is_free_or_held_by_another(tmp_path):
    lock = RunLock(tmp_path, command="the study").acquire()
    watch = study_watch(tmp_path)
    assert watch is not None and watch.holder == (tmp_path / LOCK_NAME).read_bytes()
    assert study_gone(watch) is None
    lock.release()
    assert "no longer holds" in study_gone(watch)
    with RunLock(tmp_path, command="a resumed study"):  # another holder, same folder
        assert "another process holds the study folder" in study_gone(watch)


def _task(folder: Path, epochs: int = 3) -> Task:
    name = f"{folder.parent.name}/{folder.name}"
    return Task("d", name, folder, TrainConfig(epochs=epochs, hidden=(8,)))


def test_a_run_whose_study_is_gone_stops_after_saving_its_epoch(tmp_path, small):
    study = tmp_path / "study"
    with RunLock(study, command="the study"):
        watch = study_watch(study)
    run = study / "seed-0" / "dropout"
    got = run_task(_task(run), small, True, None, watch)  # the study's lock is free now
    assert isinstance(got, cluster._Stopped) and "no longer holds" in got.reason
    assert len(load_checkpoint(run / "checkpoint.npz")[1]["history"]) == 1
    RunLock.probe(run)  # the run's folder is free again
    with RunLock(study, command="the study"):  # held again: the run goes on to the end
        got = run_task(_task(run), small, True, None, study_watch(study))
    assert isinstance(got, TrainResult) and len(got.history) == 3


def test_a_retried_run_waits_for_its_folder_and_gives_up_if_its_study_is_gone(
    tmp_path, small, monkeypatch
):
    run = tmp_path / "seed-0" / "dropout"
    gone = Watch(tmp_path / "nobody", b"")
    with RunLock(run, command="a previous worker"):
        got = run_task(_task(run), small, True, None, gone)
        assert isinstance(got, cluster._Stopped)
        monkeypatch.setattr(cluster, "LOCK_WAIT", 0.2)
        with pytest.raises(RunFolderBusyError, match=r"run seed-0/dropout: .*a previous worker"):
            run_task(_task(run), small, True, None, None)
    assert not (run / "checkpoint.npz").exists()


# ---- what the client checks and says -----------------------------------------------------------


class _Workers:
    """Stands for a Dask client: ``run`` calls the function as a worker at ``seen_as`` would."""

    def __init__(self, where: Path | None) -> None:
        self.where = where

    address = "tcp://w:1"

    def run(self, fn, folder, token):
        if self.where is None:  # a worker that shares the folder
            return {self.address: fn(folder, token, dask_worker=self)}
        # a worker whose machine has another folder at that path
        path, host, error = fn(str(self.where), token, dask_worker=self)
        return {"tcp://w:1": (path.replace(str(self.where), folder), host, error)}


def test_a_folder_the_workers_do_not_share_is_refused_clearly(tmp_path):
    shared = tmp_path / "out"
    shared.mkdir()
    check_shared_folder(_Workers(None), shared)
    assert [p.name for p in shared.iterdir()] == []  # the probe files are removed
    elsewhere = tmp_path / "their-disk"
    elsewhere.mkdir()
    with pytest.raises(ClusterError, match=r"not a folder every worker shares.*cannot read it"):
        check_shared_folder(_Workers(elsewhere), shared)
    with pytest.raises(ClusterError, match=r"worker tcp://w:1 .* cannot write"):
        check_shared_folder(_Workers(tmp_path / "missing"), shared)


def test_a_lost_run_is_named_with_the_command_that_resumes_the_study(tmp_path):
    KilledWorker = pytest.importorskip("distributed").KilledWorker

    class Lost:
        status = "error"

        def exception(self):
            return KilledWorker("dropkit-x-seed-1/dropout", _Workers(None), 3)

    task = _task(tmp_path / "seed-1" / "dropout")
    with pytest.raises(RunLostError) as info:
        cluster._outcome(Lost(), task, f"dropkit compare --resume {tmp_path}")
    message = str(info.value)
    assert message.startswith(f"run seed-1/dropout ({task.folder}) was lost: KilledWorker")
    assert f"continue it with `dropkit compare --resume {tmp_path}`" in message
