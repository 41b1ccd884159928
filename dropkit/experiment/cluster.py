"""A study's runs on Dask distributed: a local cluster, or an existing scheduler.

:func:`run_on_dask` sends every :class:`~dropkit.experiment.tasks.Task` (a
run) to Dask as one task. Without an address it starts a ``LocalCluster`` of
``workers`` processes with one thread each (each limited to its share of the
cores' BLAS, OpenMP and Numba threads, as :func:`~dropkit.experiment.tasks.thread_limits`
says; a variable the user set wins); with one (``--cluster tcp://HOST:PORT``
or ``$DROPKIT_CLUSTER``) it connects to that scheduler, whose workers must
have dropkit installed and see the study folder at the same path (checked at
the start: each worker writes a file there, this process reads it back).

What Dask gives, and what this module adds:

- A run whose worker dies is retried on another worker by Dask
  (``distributed.scheduler.allowed-failures`` times, 3 by default); it
  resumes from its checkpoint, so its result is bit-identical to an
  uninterrupted run. Past that, :class:`RunLostError` names the run and the
  command that resumes the study.
- Each run's folder is locked (:class:`~dropkit.experiment.rundir.RunLock`)
  by the worker that trains it, for as long as it trains it; a retried run
  waits for the lock of its previous worker to go.
- A worker stops training (after saving its last finished epoch) when its
  run is cancelled (this process was interrupted, or died and the scheduler
  forgot its tasks), or when the study folder's lock is no longer held by the
  process that sent the run: no worker goes on writing into a study nobody
  holds. The workers of a local cluster also die with this process (their
  nanny's pipe closes).
- Each run's start and epochs reach this process as Dask events (``on_event``).

Examples
--------
>>> parse_address("tcp://10.0.0.5:8786")
'tcp://10.0.0.5:8786'
>>> parse_address("10.0.0.5")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: --cluster needs a scheduler address like tcp://HOST:8786 (...), got '10.0.0.5'
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from .data import Dataset
from .hookspecs import hookimpl
from .rundir import LOCK_NAME, RunFolderBusyError, RunLock
from .runfiles import RunFileError, read_run_bytes
from .task import THREAD_VARIABLES, Task, thread_limits
from .train import TrainingDivergedError, TrainResult

__all__ = [
    "CLUSTER_VARIABLE",
    "ClusterError",
    "RunLostError",
    "check_reachable",
    "import_distributed",
    "parse_address",
    "run_on_dask",
    "study_gone",
    "study_watch",
]

#: The environment variable that names an existing scheduler (as ``--cluster`` does).
CLUSTER_VARIABLE = "DROPKIT_CLUSTER"
#: Seconds a retried run waits for its previous worker to let go of its folder.
LOCK_WAIT = 120.0
#: Seconds between two looks at the study folder's lock from a worker.
WATCH_INTERVAL = 1.0
_ADDRESS = re.compile(r"^(tcp|tls|ws|wss)://(\[[0-9a-fA-F:.]+\]|[\w.-]+):(\d{1,5})$")


class ClusterError(RuntimeError):
    """The cluster cannot run the study (unreachable, no workers, a folder they cannot see)."""


class RunLostError(RuntimeError):
    """A run's workers kept dying (Dask gave up on it); the message says how to resume."""


def parse_address(text: str) -> str:
    """Check a scheduler address (``tcp://HOST:PORT``); return it.

    Examples
    --------
    >>> parse_address("tls://[::1]:8786")
    'tls://[::1]:8786'
    """
    match = _ADDRESS.match(text.strip())
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise ValueError(
            "--cluster needs a scheduler address like tcp://HOST:8786 (what `dask scheduler` "
            f"prints), got {text!r}"
        )
    return text.strip()


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Something listens at ``address``'s host and port, or a ClusterError (nothing is sent).

    Examples
    --------
    >>> check_reachable("tcp://127.0.0.1:1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dropkit.experiment.cluster.ClusterError: nothing answers at tcp://127.0.0.1:1 (...): ...
    """
    match = _ADDRESS.match(parse_address(address))
    if match is None:  # pragma: no cover - parse_address refused it
        raise ValueError(address)
    host, port = match.group(2).strip("[]"), int(match.group(3))
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(
            f"nothing answers at {address} ({exc.strerror or exc}): start a scheduler there "
            "with `dask scheduler` and its workers with `dask worker ADDRESS --nthreads 1`, or "
            f"leave out --cluster (and unset ${CLUSTER_VARIABLE}) to run on this machine"
        ) from None


def import_distributed(why: str = "a study with more than one job") -> ModuleType:
    """``distributed``, or an ImportError that says how to install it."""
    try:
        import distributed
    except ImportError:
        raise ImportError(
            f"{why} runs on Dask distributed, which is not installed: install it with "
            "`pip install 'dropkit[distributed]'` (or run the runs one by one here with --jobs 1)"
        ) from None
    return distributed


# ---- on a worker -------------------------------------------------------------------------------


class _Stop(KeyboardInterrupt):
    """Raised in a worker's run: its study is gone (the last finished epoch is saved)."""


@dataclass(frozen=True)
class _Stopped:
    """What a stopped run returns: why it stopped."""

    reason: str


@dataclass(frozen=True)
class _Diverged:
    """A worker's TrainingDivergedError, in a form that crosses the process boundary."""

    message: str
    epoch: int
    kept_epoch: int


@dataclass(frozen=True)
class Watch:
    """What a worker checks to know that the study that sent a run still wants it.

    ``study``: the study folder; ``holder``: the bytes of its lock file, as
    written by the process that holds it and sent the run.
    """

    study: Path
    holder: bytes


def study_watch(folder: str | Path) -> Watch | None:
    """The :class:`Watch` of a study folder whose lock this process holds (None: no lock file)."""
    try:
        return Watch(Path(folder), read_run_bytes(Path(folder) / LOCK_NAME))
    except (OSError, RunFileError):
        return None


def study_gone(watch: Watch) -> str | None:
    """Why the study of ``watch`` is gone (its lock is free, or another process holds it), or None.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with RunLock(folder, command="example"):
    ...     watch = Watch(folder, (folder / LOCK_NAME).read_bytes())
    ...     print(study_gone(watch))
    None
    >>> study_gone(watch)  # doctest: +ELLIPSIS
    'the process that started the study no longer holds ...'
    """
    try:
        RunLock.probe(watch.study)
    except RunFolderBusyError:
        try:
            now = read_run_bytes(watch.study / LOCK_NAME)
        except (OSError, RunFileError):
            now = b""
        if now == watch.holder:
            return None
        return f"another process holds the study folder {watch.study} now"
    except (OSError, RunFileError) as exc:
        return f"the study folder's lock cannot be checked ({exc})"
    return f"the process that started the study no longer holds {watch.study / LOCK_NAME}"


def _cancelled() -> str | None:
    """Why the Dask task running in this thread was cancelled, or None."""
    from distributed import get_worker
    from distributed.worker import thread_state

    key = getattr(thread_state, "key", None)
    try:
        worker = get_worker()
    except ValueError:  # not in a worker (the tests call the task function directly)
        return None
    task = worker.state.tasks.get(key) if key is not None else None
    if task is None or task.state in ("cancelled", "released", "forgotten"):
        return "the study cancelled it (its process stopped, or the scheduler lost it)"
    return None


class _Watcher:
    """A training-hook plugin: stops the run at an epoch's end once its study is gone."""

    def __init__(self, watch: Watch | None) -> None:
        self.watch = watch
        self._next = 0.0

    def gone(self) -> str | None:
        reason = _cancelled()
        if reason is None and self.watch is not None and time.monotonic() >= self._next:
            self._next = time.monotonic() + WATCH_INTERVAL
            reason = study_gone(self.watch)
        return reason

    @hookimpl
    def dropkit_epoch_end(self, run: Any, record: dict[str, Any]) -> None:
        """Stop the run (its epoch is saved) if its study is gone."""
        reason = self.gone()
        if reason is not None:
            raise _Stop(reason)


def _lock_run(task: Task, watcher: _Watcher) -> RunLock:
    """Lock the run's folder, waiting (up to :data:`LOCK_WAIT`) for a previous worker to stop."""
    deadline = time.monotonic() + LOCK_WAIT
    command = f"dropkit study worker {socket.gethostname()}:{os.getpid()} training {task.name}"
    while True:
        try:
            return RunLock(task.folder, command=command).acquire()
        except RunFolderBusyError as exc:
            reason = watcher.gone()
            if reason is not None:
                raise _Stop(reason) from None
            if time.monotonic() > deadline:
                raise RunFolderBusyError(
                    f"run {task.name}: {exc} (waited {LOCK_WAIT:.0f} s for it)"
                ) from None
            time.sleep(0.5)


def run_task(
    task: Task, data: Dataset, metrics: bool, topic: str | None, watch: Watch | None
) -> TrainResult | _Diverged | _Stopped:
    """Train one run on a Dask worker (its folder locked meanwhile); resumes its checkpoint."""
    from .plugins import new_plugin_manager
    from .reporters import Events, MetricsFile
    from .task import train_task

    watcher = _Watcher(watch)
    reporters: list[object] = [MetricsFile()] if metrics else []
    if topic is not None:
        from distributed import get_worker

        worker = get_worker()
        reporters.append(Events(lambda event: worker.log_event(topic, event)))
    reporters.append(watcher)
    try:
        lock = _lock_run(task, watcher)
        try:
            return train_task(task, data, new_plugin_manager(*reporters))
        finally:
            lock.release()
    except _Stop as stop:
        return _Stopped(str(stop))
    except TrainingDivergedError as exc:  # its keyword-only fields do not unpickle
        return _Diverged(str(exc), exc.epoch, exc.kept_epoch)


# ---- here --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _environment_kept() -> Iterator[None]:
    """Restore the thread variables a nanny sets in this process (before spawning a worker)."""
    names = (*THREAD_VARIABLES, "MALLOC_TRIM_THRESHOLD_", "PYTHONHASHSEED")
    before = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def connect(address: str | None, workers: int) -> Iterator[Any]:
    """A Dask client: of the scheduler at ``address``, or of a new local cluster of ``workers``.

    The local cluster's workers are processes with one thread each, their
    BLAS/OpenMP/Numba pools limited to their share of the cores; it is closed
    (its workers stopped) when the block ends.
    """
    import dask

    distributed = import_distributed()
    if address is not None:
        try:
            client = distributed.Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {address} ({exc}): start one with "
                "`dask scheduler` and its workers with `dask worker ADDRESS --nthreads 1`, or "
                f"leave out --cluster (and unset ${CLUSTER_VARIABLE}) to run on this machine"
            ) from None
        try:
            try:
                client.wait_for_workers(1, timeout=60)
            except TimeoutError:
                raise ClusterError(
                    f"the Dask scheduler at {address} has no workers (waited 60 s): start them "
                    f"with `dask worker {address} --nthreads 1`"
                ) from None
            yield client
        finally:
            client.close()
        return
    # the nanny sets these in this process before it spawns a worker: our limits, not its own
    limits = {"MALLOC_TRIM_THRESHOLD_": 65536, **thread_limits(workers)}
    with (
        _environment_kept(),
        dask.config.set({"distributed.nanny.pre-spawn-environ": limits}),
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def dashboard(client: Any) -> str | None:
    """The address of the cluster's dashboard, or None where it has none."""
    try:
        if "dashboard" not in client.scheduler_info().get("services", {}):
            return None
        return str(client.dashboard_link)
    except (OSError, KeyError, AttributeError, TimeoutError):
        return None


def _write_probe(folder: str, token: str, dask_worker: Any = None) -> tuple[str, str, str | None]:
    """On a worker: write ``folder/.dropkit-probe-<token>-<n>``; (path, host, error)."""
    host = socket.gethostname()
    address = getattr(dask_worker, "address", "") or str(os.getpid())
    path = Path(folder) / f".dropkit-probe-{token}-{re.sub(r'[^0-9A-Za-z]', '_', address)}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, f"{token} {address}".encode())
        finally:
            os.close(fd)
    except OSError as exc:
        return str(path), host, exc.strerror or str(exc)
    return str(path), host, None


def check_shared_folder(client: Any, folder: Path) -> None:
    """Each worker writes a file into ``folder``, this process reads it: or a ClusterError.

    Workers that join later are not checked.
    """
    token = uuid.uuid4().hex
    answers = client.run(_write_probe, str(folder), token)
    problems = []
    for address, (path, host, error) in sorted(answers.items()):
        if error is not None:
            problems.append(f"worker {address} (on {host}) cannot write {path}: {error}")
            continue
        try:
            seen = Path(path).read_bytes()
            Path(path).unlink()
        except OSError:
            seen = b""
        if seen != f"{token} {address}".encode():
            problems.append(
                f"worker {address} wrote {path} on {host}, but this machine "
                f"({socket.gethostname()}) cannot read it there"
            )
    if problems:
        raise ClusterError(
            f"--out {folder} is not a folder every worker shares with this machine: "
            f"{'; '.join(problems)}. Put --out on a filesystem every worker mounts at the same "
            "path (NFS or a cluster filesystem), or leave out --cluster to run on this machine"
        )


def _lost(task: Task, exc: BaseException, resume: str | None) -> RunLostError:
    how = f"continue it with `{resume}`" if resume else "run the study again to continue it"
    return RunLostError(
        f"run {task.name} ({task.folder}) was lost: {type(exc).__name__}: {exc}. Every "
        f"finished epoch is saved; {how} (a worker that dies over and over may lack "
        "memory: see its log)"
    )


def run_on_dask(
    tasks: Sequence[Task],
    datasets: dict[str, Dataset],
    *,
    workers: int,
    address: str | None = None,
    metrics: bool = True,
    watch: Watch | None = None,
    resume: str | None = None,
    on_done: Callable[[Task, TrainResult, int], None] | None = None,
    on_event: Callable[[tuple[str, str, int, int]], None] | None = None,
    notes: TextIO | None = None,
) -> list[TrainResult]:
    """Train every task on Dask; results in the order of ``tasks``.

    ``workers``: the local cluster's worker processes (ignored with
    ``address``). ``watch``: the study whose lock the workers check
    (:class:`Watch`; None: they check only their task's cancellation);
    on an existing cluster its folder is also checked to be shared with the workers. ``resume``:
    the command that resumes the study, named by :class:`RunLostError`.
    ``notes``: where the dashboard's address is printed (None: nowhere).
    ``on_done`` and ``on_event`` as :func:`~dropkit.experiment.tasks.run_tasks`.
    A failing run stops the others (their finished epochs are saved) and its
    error is raised; so is an interrupt.
    """
    from distributed import wait

    with connect(address, workers) as client:
        if watch is not None and address is not None:
            check_shared_folder(client, watch.study)
        link = dashboard(client)
        if notes is not None and link is not None:
            print(f"Dask dashboard: {link}", file=notes, flush=True)
        topic = f"dropkit-{uuid.uuid4().hex}" if on_event is not None else None
        events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        if topic is not None:
            client.subscribe_topic(topic, events.put)
        names = {t.data for t in tasks}
        data = {k: client.scatter(datasets[k], broadcast=True, hash=False) for k in names}
        token = uuid.uuid4().hex[:8]
        futures = [
            client.submit(
                run_task,
                task,
                data[task.data],
                metrics,
                topic,
                watch,
                key=f"dropkit-{token}-{task.name}",
                pure=False,
            )
            for task in tasks
        ]
        index = {future.key: i for i, future in enumerate(futures)}
        results: list[TrainResult | None] = [None] * len(tasks)
        started: set[int] = set()
        finished: set[str] = set()

        def drain() -> None:
            while True:
                try:
                    _, event = events.get_nowait()
                except queue.Empty:
                    return
                event = tuple(event)
                if event[1] in finished:  # late news of a run already reported
                    continue
                if event[0] == "start":
                    started.update(i for i, t in enumerate(tasks) if t.name == event[1])
                if on_event is not None:
                    on_event(event)

        pending = set(futures)
        try:
            while pending:
                with contextlib.suppress(TimeoutError):
                    wait(list(pending), timeout=0.2, return_when="FIRST_COMPLETED")
                drain()
                for future in [f for f in pending if f.done()]:
                    pending.discard(future)
                    i = index[future.key]
                    results[i] = _outcome(future, tasks[i], resume)
                    finished.add(tasks[i].name)
                    if on_done is not None:
                        on_done(tasks[i], results[i], len(finished))  # type: ignore[arg-type]
        except BaseException:
            client.cancel(list(pending))
            _wait_for_stops([tasks[index[f.key]] for f in pending if index[f.key] in started])
            raise
        finally:
            if topic is not None:
                with contextlib.suppress(Exception):
                    client.unsubscribe_topic(topic)
    return results  # type: ignore[return-value]


def _outcome(future: Any, task: Task, resume: str | None) -> TrainResult:
    from distributed import KilledWorker

    if future.status == "error":
        exc = future.exception()
        if isinstance(exc, KilledWorker):
            raise _lost(task, exc, resume)
        future.result()  # raises the run's own error
    if future.status != "finished":
        raise _lost(task, RuntimeError(f"its Dask task is {future.status}"), resume)
    result = future.result()
    if isinstance(result, _Diverged):
        raise TrainingDivergedError(
            result.message, epoch=result.epoch, kept_epoch=result.kept_epoch
        )
    if isinstance(result, _Stopped):
        raise _lost(task, RuntimeError(f"its worker stopped it: {result.reason}"), resume)
    if not isinstance(result, TrainResult):
        raise _lost(task, TypeError(f"its worker returned {type(result).__name__}"), resume)
    return result


def _wait_for_stops(running: Sequence[Task], timeout: float = 60.0) -> None:
    """Wait until no worker holds a cancelled run's folder (its epoch saved), or ``timeout``."""
    deadline = time.monotonic() + timeout
    left = list(running)
    while left and time.monotonic() < deadline:
        still = []
        for task in left:
            try:
                RunLock.probe(task.folder)
            except RunFolderBusyError:
                still.append(task)
            except (OSError, RunFileError):
                pass
        left = still
        if left:
            time.sleep(0.1)
