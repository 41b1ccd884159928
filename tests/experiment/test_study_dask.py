"""Studies on the real engine: a `dask scheduler` and two `dask worker` processes started here
on 127.0.0.1 (free ports), a LocalCluster, and kills (-9) of a worker and of the client.

Every process a test starts is stopped in a ``finally``; each test compares its study with
the same study trained serially in this process, bit for bit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from dk_helpers import no_plots

from dropkit.experiment.data import load_dataset
from dropkit.experiment.rundir import RunFolderBusyError, RunLock
from dropkit.experiment.study import StudyPlan, run_folder, run_study
from dropkit.experiment.train import TrainConfig

pytestmark = pytest.mark.slow  # real Dask processes: -m slow

distributed = pytest.importorskip("distributed")

EPOCHS, HIDDEN, SIZE, SEEDS = 400, 16, 500, (0, 1)
ARGS = [
    "compare",
    *("--methods", "standard,dropout", "--seeds", str(len(SEEDS))),
    *("--epochs", str(EPOCHS), "--hidden", str(HIDDEN), "--train-size", str(SIZE)),
]
RUNS = [(s, m) for s in SEEDS for m in ("standard", "dropout")]
CLI = [sys.executable, "-m", "dropkit.experiment.cli"]
SCHEDULER = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> Path:
    """The study trained one run after the other in this process: the reference."""
    out = tmp_path_factory.mktemp("serial")
    plan = StudyPlan(TrainConfig(epochs=EPOCHS, hidden=(HIDDEN,)), ("standard", "dropout"), SEEDS)
    with no_plots():
        run_study(plan, load_dataset(train_size=SIZE), out, jobs=1)
    return out


def _params(folder: Path) -> list[np.ndarray]:
    with np.load(folder / "checkpoint.npz") as z:
        return [z[k] for k in sorted(z.files) if k.startswith(("param_", "velocity_"))]


def _assert_same_study(a: Path, b: Path) -> None:
    for seed, method in RUNS:
        for x, y in zip(
            _params(run_folder(a, seed, method)), _params(run_folder(b, seed, method)), strict=True
        ):
            np.testing.assert_array_equal(x, y)
    sa = json.loads((a / "summary.json").read_text())["methods"]
    sb = json.loads((b / "summary.json").read_text())["methods"]
    for method in ("standard", "dropout"):
        assert sa[method]["stats"]["best_test_acc"] == sb[method]["stats"]["best_test_acc"]


def _rows(folder: Path) -> int:
    try:
        return max(0, len((folder / "metrics.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0


def _wait_training(out: Path, proc: subprocess.Popen[str], rows: int = 20) -> None:
    deadline = time.monotonic() + 180
    while max(_rows(run_folder(out, s, m)) for s, m in RUNS) < rows:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no run trained {rows} epochs within 180 s"
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[str]) -> None:
    """End ``proc`` and its session (its own children), TERM then KILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


def _session(sid: int) -> list[int]:
    """The live processes of session ``sid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # session; not a zombie
            pids.append(int(entry.name))
    return pids


def _files(out: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


def _epochs(folder: Path) -> int:
    from dropkit.experiment.checkpoint import load_checkpoint

    if not (folder / "checkpoint.npz").exists():
        return 0
    return len(load_checkpoint(folder / "checkpoint.npz")[1]["history"])


def _assert_nobody_writes(out: Path) -> None:
    """No run folder is locked (no worker trains there), no file changes for 2 s, and the
    study is unfinished: the workers stopped (had they gone on, every run would be complete)."""
    deadline = time.monotonic() + 60
    for seed, method in RUNS:
        while True:
            try:
                RunLock.probe(run_folder(out, seed, method))
                break
            except RunFolderBusyError:
                assert time.monotonic() < deadline, f"a worker still holds seed-{seed}/{method}"
                time.sleep(0.1)
    before = _files(out)
    time.sleep(2)
    assert _files(out) == before
    epochs = [_epochs(run_folder(out, s, m)) for s, m in RUNS]
    assert min(epochs) < EPOCHS, epochs


def _resume(out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``dropkit compare --resume out *options`` in a subprocess; it must succeed."""
    done = subprocess.run(
        [*CLI, "compare", "--resume", str(out), *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


@contextlib.contextmanager
def _dask(
    tmp_path: Path, retries: int | None = None
) -> Iterator[tuple[str, list[subprocess.Popen[str]]]]:
    """A `dask scheduler` and two `dask worker`s on 127.0.0.1 (free ports); stopped after.

    ``retries``: the scheduler's allowed-failures (None: Dask's default).
    """
    file = tmp_path / "scheduler.json"
    env = dict(os.environ)
    if retries is not None:
        env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = str(retries)
    common = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "text": True, "env": env}
    procs: list[subprocess.Popen[str]] = []
    try:
        procs.append(
            subprocess.Popen(
                [*SCHEDULER, "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
                start_new_session=True,
                **common,
            )
        )
        deadline = time.monotonic() + 120
        while not file.exists() or not file.read_text().strip():
            assert procs[0].poll() is None and time.monotonic() < deadline, "no scheduler"
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        workers = []
        for _ in range(2):
            workers.append(
                subprocess.Popen(
                    [*WORKER, address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"],
                    start_new_session=True,
                    **common,
                )
            )
            procs.append(workers[-1])
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address, workers
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _kill_a_busy_worker(
    address: str, workers: list[subprocess.Popen[str]], out: Path, proc: subprocess.Popen[str]
) -> list[str]:
    """Kill -9 a worker (and its nanny) while it trains a run; return the runs it held."""
    deadline = time.monotonic() + 180
    with distributed.Client(address, timeout="60s") as client:
        while True:
            _wait_training(out, proc, rows=20)
            pids = client.run(os.getpid)
            for addr, keys in client.processing().items():
                if keys and addr in pids:
                    sid = os.getsid(pids[addr])
                    killed = next(w for w in workers if w.pid == sid)
                    os.killpg(killed.pid, signal.SIGKILL)
                    killed.wait(timeout=30)
                    return [str(key).split("-", 2)[2] for key in keys]  # dropkit-<token>-<run>
            assert time.monotonic() < deadline, "no worker was seen training"


def test_a_study_on_a_scheduler_survives_a_killed_worker(tmp_path, serial):
    out = tmp_path / "study"
    with _dask(tmp_path) as (address, workers):
        proc = subprocess.Popen(
            [*CLI, *ARGS, "--cluster", address, "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            _kill_a_busy_worker(address, workers, out, proc)
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
        finally:
            _stop(proc)
    _assert_same_study(serial, out)


def test_a_run_dask_gives_up_on_is_named_with_the_resume_command(tmp_path, serial):
    out = tmp_path / "study"
    with _dask(tmp_path, retries=0) as (address, workers):  # no retry: the first death is final
        proc = subprocess.Popen(
            [*CLI, *ARGS, "--cluster", address, "--quiet", "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            held = _kill_a_busy_worker(address, workers, out, proc)
            _, err = proc.communicate(timeout=300)
        finally:
            _stop(proc)
        assert proc.returncode == 2, err
        lost = re.search(r"dropkit: error: run (seed-\d/\w+) \((.+)\) was lost: KilledWorker", err)
        assert lost is not None and lost[1] in held and lost[2] == str(out / lost[1]), err
        assert f"continue it with `dropkit compare --resume {out}`" in err
        _assert_nobody_writes(out)
        _resume(out, "--cluster", address, "--quiet")
    _assert_same_study(serial, out)


def test_kill_9_of_the_client_on_a_scheduler_then_resume(tmp_path, serial):
    out = tmp_path / "study"
    with _dask(tmp_path) as (address, _):
        proc = subprocess.Popen(
            [*CLI, *ARGS, "--cluster", address, "--quiet", "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            _wait_training(out, proc)
            proc.send_signal(signal.SIGKILL)  # the client alone: the workers live on
            proc.wait(timeout=30)
        finally:
            _stop(proc)
        _assert_nobody_writes(out)  # they stopped their runs: nobody holds the study
        _resume(out, "--cluster", address, "--quiet")
    _assert_same_study(serial, out)


def test_kill_9_of_the_client_of_a_local_cluster_then_resume(tmp_path, serial):
    out = tmp_path / "study"
    proc = subprocess.Popen(
        [*CLI, *ARGS, "--jobs", "2", "--quiet", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_training(out, proc)
        assert len(_session(proc.pid)) >= 3  # the client and its two workers
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 60
        while _session(proc.pid):  # the workers die with their parent
            assert time.monotonic() < deadline, f"still alive: {_session(proc.pid)}"
            time.sleep(0.1)
    finally:
        _stop(proc)
    _assert_nobody_writes(out)
    done = _resume(out, "--jobs", "2")
    assert "Dask dashboard: http://" in done.stderr
    assert "2 at a time, on a local Dask cluster" in done.stderr
    assert "study 4/4 runs done" in done.stderr or "[4/4]" in done.stderr
    _assert_same_study(serial, out)


def _thread_variables() -> dict[str, str | None]:
    return {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}


def test_local_workers_get_their_share_of_the_cores_and_the_users_choice_wins(monkeypatch):
    from dropkit.experiment.cluster import connect
    from dropkit.experiment.tasks import THREAD_VARIABLES, thread_limits

    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")  # the user's: kept
    names = (*THREAD_VARIABLES, "MALLOC_TRIM_THRESHOLD_")
    before = {k: os.environ.get(k) for k in names}
    with connect(None, 2) as client:
        seen = list(client.run(_thread_variables).values())
    share = thread_limits(2)["NUMBA_NUM_THREADS"]
    assert seen == [{"OPENBLAS_NUM_THREADS": "3", "NUMBA_NUM_THREADS": share}] * 2
    # the nanny's settings did not stay in this process
    assert {k: os.environ.get(k) for k in names} == before
