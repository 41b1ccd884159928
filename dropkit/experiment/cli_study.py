"""The command line of studies: ``dropkit compare --methods/--seeds/...`` and ``dropkit sweep``.

Like the other commands, everything is worked out and checked before anything
is written (method names, seed and job counts, train sizes, the output
folder, the data, memory, and on ``--resume`` the saved plan, the options and
every checkpoint); then the command holds the folder's lock, writes
``study.json`` and runs. ``dropkit compare`` without these four flags is the
two-net comparison of :mod:`dropkit.experiment.cli`, unchanged. Shared pieces
come from :mod:`~dropkit.experiment.cli_args` and :mod:`~dropkit.experiment.cli_plan`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..selection import get_backend
from .cli_args import CONFIG_FLAGS, flag_of, parse_integer, show_value
from .cli_plan import (
    NothingToDo,
    check_memory,
    check_split,
    flag_message,
    given_values,
    load_saved_data,
    make_config,
    plan_fresh,
    report_files,
    same_dir,
)
from .cli_sweep import axes_differences, saved_axes, sweep_axes
from .cluster import CLUSTER_VARIABLE, check_reachable, import_distributed, parse_address
from .methods import ACTIVATIONS, METHODS, parse_methods
from .plugins import new_plugin_manager
from .runfiles import read_run_bytes
from .study import MAX_SEEDS, STUDY_NAME, StudyPlan, read_study_plan, run_folder
from .sweep import grid_points, point_folder, point_plan
from .threads import available_cores

__all__ = ["add_study_flags", "cmd_study", "is_study"]

_STUDY_FLAGS = ("methods", "seeds", "jobs", "activation", "cluster")


def add_study_flags(p: argparse.ArgumentParser, *, sweep: bool = False) -> None:
    """The flags of a study (on ``compare`` they switch it from the two-net comparison)."""
    g = p.add_argument_group(
        "methods and seeds"
        + ("" if sweep else " (any of these runs a study instead of the two-net comparison)")
    )
    g.add_argument(
        "--methods",
        default=None,
        metavar="M1,M2,...",
        help=f"methods to compare, among {', '.join(METHODS)} (default: standard,dropout)",
    )
    g.add_argument(
        "--seeds",
        type=parse_integer,
        default=None,
        metavar="N",
        help="repeat the comparison for N seeds: --seed, --seed+1, ... (default: 1)",
    )
    g.add_argument(
        "--jobs",
        type=parse_integer,
        default=None,
        metavar="J",
        help="runs at once, on a local Dask cluster of J worker processes (default: the "
        f"number of cores, {available_cores()}; 1: one by one in this process)",
    )
    g.add_argument(
        "--cluster",
        default=None,
        metavar="tcp://HOST:PORT",
        help=f"run on the workers of this Dask scheduler (default: ${CLUSTER_VARIABLE} if set, "
        "else a local cluster); --out must be on a filesystem every worker sees",
    )
    g.add_argument(
        "--activation",
        choices=tuple(ACTIVATIONS),
        default=None,
        help="activation of the nets (default relu, He-normal weights; selu: LeCun-normal); "
        "alpha always runs with selu",
    )


def is_study(args: argparse.Namespace) -> bool:
    """Whether a ``compare`` command line asks for a study (or resumes one)."""
    if any(getattr(args, flag, None) is not None for flag in _STUDY_FLAGS):
        return True
    # lexists: a study.json that is a directory, FIFO or symlink is refused by name on reading
    return bool(args.resume) and os.path.lexists(Path(args.resume) / STUDY_NAME)


@dataclasses.dataclass
class _StudyJob:
    command: str
    out: Path
    plan: StudyPlan
    data_args: dict[str, Any]
    axes: dict[str, list[Any]] | None  # a sweep's
    jobs: int
    cluster: str | None
    write_doc: bool
    state: list[tuple[str, int, int]]
    datasets: dict[int | None, Any] = dataclasses.field(default_factory=dict)
    trained: list[int] = dataclasses.field(default_factory=list)  # per run, on --resume
    environment: dict[str, Any] | None = None  # on --resume: the saved one
    note: str | None = None  # said at the start (how the runs are run)
    resumed: bool = False  # its data options come from study.json

    def doc(self) -> dict[str, Any]:
        doc = {"command": self.command, **self.plan.to_dict(), "data": self.data_args}
        if self.axes is not None:
            doc["axes"] = self.axes
            if "train_size" in self.axes:
                doc["train_sizes"] = self.axes["train_size"]
        if self.environment is not None:
            doc["environment"] = self.environment
        return doc

    def complete(self) -> str | None:
        """The message for a resumed study whose every run and file is done, else None."""
        epochs = self.plan.config.epochs
        runs = self.runs()
        final = "summary.json" if self.axes is None else "sweep.json"
        if len(self.trained) < runs or min(self.trained) < epochs:
            return None
        if not (self.out / final).is_file():
            return None  # stopped before its summary: resuming writes it
        return (
            f"{'study' if self.axes is None else 'sweep'} in {self.out} is already complete "
            f"({runs}/{runs} runs, {epochs}/{epochs} epochs each); nothing to do (give "
            "--epochs N to train it longer)"
        )

    def folders(self) -> list[tuple[dict[str, Any], Path]]:
        """Each study folder and its point: ``({}, out)``, or one per point of the sweep."""
        if self.axes is None:
            return [({}, self.out)]
        return [(point, point_folder(self.out, point)) for point in grid_points(self.axes)]

    def runs(self) -> int:
        """How many runs the study or sweep has."""
        return len(self.plan.configs()) * len(self.folders())


def _state(out: Path) -> list[tuple[str, int, int]]:
    """What the study's files look like now (to notice a change while getting ready)."""
    state = []
    if out.is_dir():
        for path in sorted([out / STUDY_NAME, *out.rglob("checkpoint.npz")]):
            try:
                st = path.stat()
            except OSError:
                continue
            state.append((str(path), st.st_size, st.st_mtime_ns))
    return state


def _counts(args: argparse.Namespace) -> None:
    if args.seeds is not None and args.seeds < 1:
        raise ValueError(
            f"--seeds must be at least 1 (how many seeds repeat the comparison), got {args.seeds}"
        )
    if args.seeds is not None and args.seeds > MAX_SEEDS:
        raise ValueError(
            f"--seeds {args.seeds}: a study takes at most {MAX_SEEDS} seeds (each seed is a "
            "whole comparison: one run per method); choose fewer --seeds"
        )
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(
            f"--jobs must be at least 1 (how many runs train at once; default: the "
            f"{available_cores()} cores), got {args.jobs}"
        )


def _cluster(args: argparse.Namespace) -> str | None:
    """The scheduler address (``--cluster`` or ``$DROPKIT_CLUSTER``), checked; None: local."""
    if args.cluster is not None:
        address, where = args.cluster, "--cluster"
    else:
        address, where = os.environ.get(CLUSTER_VARIABLE, "").strip() or None, CLUSTER_VARIABLE
    if address is None:
        return None
    if args.jobs is not None:
        raise ValueError(
            f"--jobs {args.jobs} sizes the local cluster; with a scheduler ({where} {address}) "
            "its workers train the runs: leave out --jobs (start more `dask worker`s instead)"
            + (f", or unset {CLUSTER_VARIABLE} to run here" if where != "--cluster" else "")
        )
    try:
        return parse_address(address)
    except ValueError as exc:
        raise ValueError(str(exc).replace("--cluster", where, 1)) from None


def _plan(args: argparse.Namespace, command: str) -> _StudyJob:
    """Work out the study; nothing is written."""
    for flag in ("out", "resume"):
        if getattr(args, flag) == "":
            raise ValueError(f"--{flag} needs a folder name, got ''")
    _counts(args)
    axes = sweep_axes(args) if command == "sweep" else None
    plain = copy.copy(args)
    if args.resume is not None and axes is not None:
        for key in axes:  # the axes are compared with the saved sweep's, not as options
            setattr(plain, key, None)
    given = given_values(plain)
    cluster = _cluster(args)
    jobs, note = _default_jobs(args.jobs, cluster)
    if args.resume is not None:
        job = _plan_resume(args, command, given, jobs, cluster)
        job.note = note
        return job
    out = Path(args.out) if args.out else None
    if out is not None and (out / STUDY_NAME).is_file():
        raise FileExistsError(
            f"{out} already holds a study: continue it with `dropkit {command} --resume "
            f"{out}`, or choose another --out"
        )
    fresh = plan_fresh(plain, command, given)
    methods = [
        m.name for m in parse_methods("standard,dropout" if args.methods is None else args.methods)
    ]
    n = args.seeds if args.seeds is not None else 1
    seeds = tuple(fresh.config.seed + i for i in range(n))
    if seeds[-1] >= 2**64:
        raise ValueError(
            f"--seed {fresh.config.seed} with --seeds {n}: the last seed {seeds[-1]} is not "
            "below 2**64; choose a smaller --seed or fewer --seeds"
        )
    try:
        plan = StudyPlan(fresh.config, tuple(methods), seeds, args.activation or "relu")
    except ValueError as exc:  # an option that does not suit a method: name the flags
        raise ValueError(flag_message(str(exc)).replace("the methods", "--methods")) from None
    data_args = {"data_dir": args.data_dir, "train_size": args.train_size}
    job = _StudyJob(
        command, fresh.out, plan, data_args, axes, jobs, cluster, True, _state(fresh.out)
    )
    _check_points(job)
    _check_runner(jobs, cluster, job.runs())
    job.note = note
    return job


def _default_jobs(jobs: int | None, cluster: str | None) -> tuple[int, str | None]:
    """``--jobs`` or its default (the cores; 1, with a note, without Dask distributed)."""
    if jobs is not None or cluster is not None:
        return (jobs or 1), None
    try:
        import_distributed()
    except ImportError:
        return 1, (
            "Dask distributed is not installed: the runs train one at a time in this process "
            "(`pip install 'dropkit[distributed]'` runs them in parallel)"
        )
    return available_cores(), None


def _check_points(job: _StudyJob) -> None:
    """Every point of a sweep suits every method (checked before anything is written)."""
    for point, _ in job.folders():
        try:
            point_plan(job.plan, point)
        except ValueError as exc:
            where = ", ".join(f"{flag_of(k)} {v}" for k, v in point.items())
            raise ValueError(
                f"{flag_message(str(exc)).replace('the methods', '--methods')} (at {where})"
            ) from None


def _check_runner(jobs: int, cluster: str | None, runs: int) -> None:
    """Dask distributed is installed if the runs go to it."""
    if cluster is not None:
        import_distributed("a study with --cluster")
        check_reachable(cluster)  # before anything is written
    elif jobs > 1 and runs > 1:
        import_distributed(f"a study with --jobs {jobs}")


def _plan_resume(
    args: argparse.Namespace,
    command: str,
    given: dict[str, Any],
    jobs: int,
    cluster: str | None,
) -> _StudyJob:
    from .rundir import RunLock

    out = Path(args.resume)
    if args.out is not None and not same_dir(args.out, args.resume):
        raise ValueError(
            f"--resume continues the study in its own folder {out}: leave out --out {args.out} "
            "(or give the same folder)"
        )
    if not os.path.lexists(out / STUDY_NAME):
        if not out.exists():
            raise FileNotFoundError(f"nothing to resume: there is no folder {out}")
        if command == "compare":
            raise ValueError(
                f"{out} holds a two-net comparison, not a study (no {STUDY_NAME}): resume it "
                f"without {', '.join('--' + f for f in _STUDY_FLAGS)}, or start a study in "
                "another --out folder"
            )
        raise FileNotFoundError(f"nothing to resume in {out}: no {STUDY_NAME} there")
    RunLock.probe(out)
    doc, saved = read_study_plan(out)
    if doc["command"] != command:
        raise ValueError(
            f"{out} was made by `dropkit {doc['command']}`: continue it with "
            f"`dropkit {doc['command']} --resume {out}`"
        )
    base = saved.config
    wanted = make_config({**base.to_dict(), **given})
    differences = []
    for key in CONFIG_FLAGS:
        before, after = getattr(base, key), getattr(wanted, key)
        if key != "epochs" and before != after:
            differences.append(
                f"{flag_of(key)}: saved {show_value(key, before)}, now {show_value(key, after)}"
            )
    if args.methods is not None:
        names = [m.name for m in parse_methods(args.methods)]
        if names != list(saved.methods):
            differences.append(f"--methods: saved {','.join(saved.methods)}, now {args.methods}")
    if args.seeds is not None and args.seeds != len(saved.seeds):
        differences.append(f"--seeds: saved {len(saved.seeds)}, now {args.seeds}")
    if args.activation is not None and args.activation != saved.activation:
        differences.append(f"--activation: saved {saved.activation}, now {args.activation}")
    if args.data_dir is not None and not same_dir(args.data_dir, doc["data"].get("data_dir")):
        differences.append(f"--data-dir: saved {doc['data'].get('data_dir')}, now {args.data_dir}")
    axes = None
    if command == "sweep":
        axes = saved_axes(doc, out / STUDY_NAME)
        differences += axes_differences(args, axes)
        fixed = doc["data"].get("train_size")
        if "train_size" not in axes and args.train_size is not None and args.train_size != fixed:
            differences.append(f"--train-size: saved {fixed}, now {args.train_size}")
    elif args.train_size is not None and args.train_size != doc["data"].get("train_size"):
        differences.append(
            f"--train-size: saved {doc['data'].get('train_size')}, now {args.train_size}"
        )
    if differences:
        raise ValueError(
            f"--resume {out}: the study was made with other options ({out / STUDY_NAME}): "
            f"{'; '.join(differences)}. Resume with the saved values (or without these "
            "options), or start a new study in another --out folder; nothing was changed"
        )
    config = dataclasses.replace(base, epochs=wanted.epochs)
    plan = StudyPlan(config, saved.methods, saved.seeds, saved.activation)
    data_args = {"data_dir": doc["data"].get("data_dir"), "train_size": None}
    if axes is None or "train_size" not in axes:
        data_args["train_size"] = doc["data"].get("train_size")
    job = _StudyJob(command, out, plan, data_args, axes, jobs, cluster, config != base, _state(out))
    _check_points(job)
    _check_runner(jobs, cluster, job.runs())
    job.environment = doc.get("environment") if isinstance(doc.get("environment"), dict) else None
    job.resumed = True
    return job


def _load(job: _StudyJob) -> None:
    """Load the data (per size) and check memory and every checkpoint; nothing is written."""
    from .data import load_dataset
    from .train import check_checkpoint

    backend = get_backend(job.plan.config.backend).name
    for point, folder in job.folders():
        size = point.get("train_size")
        train_size = job.data_args["train_size"] if size is None else size
        if size not in job.datasets:
            args = {"data_dir": job.data_args["data_dir"], "train_size": train_size}
            try:
                if job.resumed:
                    again = "start a new study in another --out folder"
                    data = load_saved_data(
                        job.plan.config.dataset, args, job.out / STUDY_NAME, again
                    )
                else:
                    data = load_dataset(job.plan.config.dataset, **args)
            except ValueError as exc:
                if job.resumed:
                    raise
                if size is None or "train_size" not in str(exc):
                    raise
                raise ValueError(f"--train-size {size}: {exc}") from None
            job.datasets[size] = data
            check_memory(job.plan.config, data)
            try:
                check_split(job.plan.config, data)
            except ValueError as exc:
                raise ValueError(f"--train-size {size}: {exc}" if size else str(exc)) from None
        data = job.datasets[size]
        for (seed, method), cfg in point_plan(job.plan, point).configs().items():
            ckpt = run_folder(folder, seed, method) / "checkpoint.npz"
            if not ckpt.exists():
                continue
            _, meta = check_checkpoint(ckpt, cfg, data, backend)
            trained = len(meta["history"])
            job.trained.append(trained)
            if job.plan.config.epochs < trained:
                raise ValueError(
                    f"--epochs {job.plan.config.epochs} is fewer than the {trained} epochs "
                    f"already trained in {ckpt.parent}; give --epochs {trained} or more (or "
                    "leave it out)"
                )


def cmd_study(args: argparse.Namespace, command: str) -> int:
    """Run ``dropkit compare`` as a study, or ``dropkit sweep``; return the exit status."""
    from .checkpoint import atomic_write_text
    from .provenance import environment
    from .rundir import RunLock, remove_stale_temporaries
    from .study import format_study_table, run_study
    from .sweep import format_sweep_table, run_sweep

    holder = "dropkit " + " ".join(getattr(args, "argv", [command]))
    for _attempt in range(3):
        job = _plan(args, command)
        args.run_folder = job.out  # named by the messages of an interrupted study
        _load(job)
        lock = RunLock(job.out, command=holder).acquire()
        if _state(job.out) == job.state:
            break
        lock.release()
    else:
        raise RuntimeError(
            f"{job.out} changed while this command got ready (another run wrote to it); "
            "run the command again"
        )
    progress = None if args.quiet else sys.stderr
    try:
        complete = job.complete()
        if complete is not None:
            raise NothingToDo(complete)  # nothing is written
        remove_stale_temporaries(job.out)
        if job.cluster is not None:  # before study.json: a folder they cannot see stays empty
            from .cluster import check_shared_folder, connect

            with connect(job.cluster, 0) as client:
                check_shared_folder(client, job.out)
        if job.write_doc and args.resume is None:  # how the study was started
            job.environment = environment(
                get_backend(job.plan.config.backend), ["dropkit", *getattr(args, "argv", [])]
            )
        if job.write_doc:
            atomic_write_text(job.out / STUDY_NAME, json.dumps(job.doc(), indent=2))
        runs = job.runs()
        if job.note is not None:
            print(f"{command}: {job.note}", file=sys.stderr, flush=True)
        if progress is not None:
            if job.cluster is not None:
                where = f"on the workers of the Dask scheduler at {job.cluster}"
            elif min(job.jobs, runs) == 1:
                where = "one at a time, in this process"
            else:
                where = f"{min(job.jobs, runs)} at a time, on a local Dask cluster"
            print(
                f"{command}: {runs} runs ({len(job.plan.methods)} methods x "
                f"{len(job.plan.seeds)} seeds"
                + "".join(f" x {len(v)} {k}" for k, v in (job.axes or {}).items())
                + f"), {where}, in {job.out}",
                file=progress,
                flush=True,
            )
        pm = new_plugin_manager(*args.plugins, installed=args.installed_plugins)  # its own
        if job.axes is None:
            run_study(
                job.plan,
                job.datasets[None],
                job.out,
                jobs=job.jobs,
                plugin_manager=pm,
                progress=progress,
                threads=args.threads,
                cluster=job.cluster,
            )
        else:
            run_sweep(
                job.plan,
                job.datasets,
                job.out,
                axes=job.axes,
                jobs=job.jobs,
                plugin_manager=pm,
                progress=progress,
                threads=args.threads,
                cluster=job.cluster,
            )
    finally:
        lock.release()
    if job.axes is None:
        format_study_table(json.loads(read_run_bytes(job.out / "summary.json")), sys.stdout)
        report_files(job.out, ["summary.json", "history.json", "runs.csv", "curves.png"])
    else:
        format_sweep_table(job.out, sys.stdout)
        figure = ["sweep.png"] if list(job.axes) == ["train_size"] else []
        report_files(job.out, ["sweep.json", "sweep.md", "runs.csv", *figure])
    return 0
