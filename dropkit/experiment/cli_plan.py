"""What a ``train`` or ``compare`` command will do, worked out before anything is written.

The configuration from the flags (or the saved run on ``--resume``), the
output folder, the data, memory and every checkpoint it would continue; then,
after the run, the files it wrote. Shared by :mod:`~dropkit.experiment.cli`
and :mod:`~dropkit.experiment.cli_study`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from ..selection import get_backend
from .cli_args import CONFIG_FLAGS, DATA_FLAGS, flag_of, show_value
from .runfiles import read_run_bytes
from .train import PRESETS, TrainConfig

__all__ = [
    "NothingToDo",
    "Plan",
    "check_memory",
    "check_split",
    "complete_message",
    "folder_state",
    "gib",
    "given_values",
    "make_config",
    "physical_memory",
    "plan_fresh",
    "plan_resume",
    "prepare",
    "report_files",
    "same_dir",
]


def make_config(values: dict[str, Any], where: Path | None = None) -> TrainConfig:
    """``TrainConfig(**values)``; its errors name the flag (or the file ``where``)."""
    try:
        return TrainConfig(**values)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        if where is not None:
            raise type(exc)(f"{where}: {message}; {_FIX}") from None
        for key in CONFIG_FLAGS:
            if message.startswith(f"{key} "):
                message = flag_of(key) + message[len(key) :]
                break
        raise type(exc)(message) from None


def flag_message(message: str) -> str:
    """``message`` with every configuration key it names written as the command's flag.

    Examples
    --------
    >>> flag_message("p_hidden 1.0 does not suit method 'gaussian'; choose another p_hidden")
    "--p-hidden 1.0 does not suit method 'gaussian'; choose another --p-hidden"
    """
    for key in CONFIG_FLAGS:
        message = re.sub(rf"(?<![\w-]){key}(?![\w-])", flag_of(key), message)
    return message


_FIX = "it was left as is: fix it, or start a new run in another --out folder"


def folder_state(out: Path) -> list[tuple[str, int, int] | None]:
    """What a run's files look like now (to notice a change while getting ready)."""
    from .checkpoint import CHECKPOINT_NAME
    from .rundir import CONFIG_NAME, NET_FOLDERS

    paths = [out / CONFIG_NAME, out / CHECKPOINT_NAME]
    paths += [out / net / CHECKPOINT_NAME for net in NET_FOLDERS]
    state: list[tuple[str, int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            state.append(None)
        else:
            state.append((str(path), st.st_size, st.st_mtime_ns))
    return state


def same_dir(a: str | None, b: str | None) -> bool:
    """Whether two folder names name the same folder (or are both None)."""
    if a is None or b is None:
        return a == b
    return a == b or os.path.realpath(a) == os.path.realpath(b)


class Plan:
    """What a train/compare command will do, worked out without writing anything."""

    def __init__(self, out: Path, config: TrainConfig, data_args: dict[str, Any]) -> None:
        self.out = out
        self.config = config
        self.data_args = data_args
        self.resume = False
        self.write_config = True
        self.state = folder_state(out)
        self.trained: dict[str, int] = {}  # on --resume: each net's finished epochs
        self.environment: dict[str, Any] | None = None  # on --resume: the saved one


def given_values(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration values the command line gives: the preset, then the flags."""
    given: dict[str, Any] = dict(PRESETS[args.preset]) if args.preset else {}
    given.update({k: getattr(args, k) for k in CONFIG_FLAGS if getattr(args, k) is not None})
    if args.train_size is not None and args.train_size < 1:
        raise ValueError(f"--train-size must be at least 1, got {args.train_size}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(
            f"--threads must be at least 1 (BLAS threads per run), got {args.threads}; leave it "
            "out to let dropkit choose"
        )
    return given


def plan_fresh(args: argparse.Namespace, command: str, given: dict[str, Any]) -> Plan:
    """The plan of a new run: its configuration and a folder that holds no run yet."""
    from dropkit.selection import environment_backend

    from .rundir import RunLock, holds_run

    config = make_config(given)
    if config.backend is None and environment_backend() is not None:
        # record the backend the variable chose, so --resume needs no variable
        config = dataclasses.replace(config, backend=get_backend(None).name)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("runs") / f"{command}-{stamp}"
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is not a folder: choose another --out")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(
                f"--out {out} cannot be made: {parent} is a file, not a folder; "
                "choose another --out"
            )
    RunLock.probe(out)
    if holds_run(out):
        how = f"--resume {out}" if (out / "config.json").is_file() else "train(..., resume=True)"
        raise FileExistsError(
            f"{out} already holds a run: continue it with {how}, or choose another --out"
        )
    return Plan(out, config, {k: getattr(args, k) for k in DATA_FLAGS})


def plan_resume(args: argparse.Namespace, command: str, given: dict[str, Any]) -> Plan:
    """The plan of ``--resume``: the saved run, refused if the flags change its options."""
    from .rundir import RunLock, read_run_config, run_command

    out = Path(args.resume)
    if args.out is not None and not same_dir(args.out, args.resume):
        raise ValueError(
            f"--resume continues the run in its own folder {out}: leave out --out {args.out} "
            "(or give the same folder)"
        )
    study_dir = enclosing_study(out)
    if study_dir is not None:
        RunLock.probe(study_dir)  # a running study: refused, naming it
        how = _study_command(study_dir) or "compare"
        raise ValueError(
            f"{out} is a run of the study in {study_dir} (see its study.json): a study's runs "
            f"are continued by the study, with `dropkit {how} --resume {study_dir}`"
        )
    if out.is_dir():
        RunLock.probe(out)
    study = _study_command(out)
    if study is not None:
        raise ValueError(
            f"{out} was made by `dropkit {study}`: continue it with "
            f"`dropkit {study} --resume {out}`"
        )
    fields = list(TrainConfig().to_dict())
    saved = read_run_config(out, fields)
    made_by = run_command(out, saved.command)
    if made_by is not None and made_by != command:
        raise ValueError(
            f"{out} was made by `dropkit {made_by}`: continue it with `dropkit {made_by} "
            f"--resume {out}`"
        )
    from .methods import OPTIONAL_DEFAULTS

    # a folder made before a key existed ran with the value its absence means
    base = make_config({**OPTIONAL_DEFAULTS, **saved.config}, saved.path)
    wanted = make_config({**base.to_dict(), **given})
    differences = []
    for key in CONFIG_FLAGS:
        before, after = getattr(base, key), getattr(wanted, key)
        if key == "epochs" or before == after:
            continue
        if key == "backend" and before is None:
            before = f"None (the default, {_default_backend()})"
            if after == _default_backend():
                continue
        differences.append(
            f"{flag_of(key)}: saved {show_value(key, before)}, now {show_value(key, after)}"
        )
    for key in DATA_FLAGS:
        value = getattr(args, key)
        if value is not None and not same_dir(str(value), _as_str(saved.data[key])):
            differences.append(f"{flag_of(key)}: saved {saved.data[key]}, now {value}")
    if differences:
        raise ValueError(
            f"--resume {out}: the run was made with other options ({saved.path}): "
            f"{'; '.join(differences)}. Resume with the saved values (or without these "
            "options), or start a new run in another --out folder; nothing was changed"
        )
    config = dataclasses.replace(base, epochs=wanted.epochs)
    plan = Plan(out, config, saved.data)
    plan.environment = saved.environment
    plan.resume = True
    plan.write_config = config != base or saved.command is None
    return plan


def enclosing_study(run: Path) -> Path | None:
    """The study folder ``run`` belongs to (``<study>/seed-S/M``, ``<sweep>/<point>/seed-S/M``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> study = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (study / "study.json").write_text("{}")
    >>> enclosing_study(study / "seed-0" / "dropout") == study
    True
    >>> enclosing_study(study) is None
    True
    """
    if not run.parent.name.startswith("seed-"):
        return None
    # a study's run, or a sweep's (its point folder: size-N, p-0.2_lr-0.01, ...)
    candidates = [run.parent.parent, run.parent.parent.parent]
    for folder in candidates:
        if os.path.lexists(folder / "study.json"):
            return folder
    return None


def _study_command(out: Path) -> str | None:
    """The command of a study folder (its study.json), or None."""
    try:
        return str(json.loads(read_run_bytes(out / "study.json")).get("command", "compare"))
    except (OSError, ValueError, AttributeError):
        return "compare" if os.path.lexists(out / "study.json") else None


def _as_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _default_backend() -> str:
    try:
        return get_backend(None).name
    except (ValueError, RuntimeError, ImportError):
        return "numpy"


def physical_memory() -> int | None:
    """The machine's memory in bytes (None where it cannot tell)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        return None


def gib(n: int) -> str:
    """``n`` bytes for a person: ``"1.5 GiB"``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def check_memory(config: TrainConfig, data: Any) -> None:
    """Refuse a net that needs more memory to train than this machine has."""
    from .train import memory_estimate

    batch = min(config.batch_size, data.x_train.shape[0])
    params, need = memory_estimate(
        dataclasses.replace(config, batch_size=batch), data.n_features, data.n_classes
    )
    total = physical_memory()
    if total is not None and need > total:
        layers = "-".join(str(w) for w in (data.n_features, *config.hidden, data.n_classes))
        raise ValueError(
            f"--hidden {show_value('hidden', config.hidden)}: the net {layers} has {params:,} "
            f"parameters, which need {gib(need)} to train ({config.dtype} weights, gradients, "
            f"momentum and a batch of activations), more than this machine's {gib(total)} of "
            "memory; choose smaller --hidden widths (or a smaller --batch-size)"
        )


def check_split(config: TrainConfig, data: Any) -> None:
    """``--val-size`` leaves examples to train on (checked before anything is written)."""
    from .split import val_count

    val_count(config.val_size, len(data.y_train))


def _check_checkpoints(plan: Plan, command: str, data: Any, backend: str) -> dict[str, int]:
    """Check every checkpoint the resumed run would continue; return each net's trained epochs.

    Nothing is written.
    """
    from .checkpoint import CHECKPOINT_NAME
    from .compare import net_configs
    from .train import check_checkpoint

    nets = net_configs(plan.config) if command == "compare" else {"": plan.config}
    done = {net: 0 for net in nets}
    for net, cfg in nets.items():
        ckpt = plan.out / net / CHECKPOINT_NAME
        if not ckpt.exists():
            continue
        _, meta = check_checkpoint(ckpt, cfg, data, backend)
        trained = done[net] = len(meta["history"])
        if plan.config.epochs < trained:
            raise ValueError(
                f"--epochs {plan.config.epochs} is fewer than the {trained} epochs already "
                f"trained in {plan.out}; give --epochs {trained} or more (or leave it out)"
            )
    return done


def load_saved_data(
    dataset: str, data_args: dict[str, Any], saved_in: Path, start_again: str
) -> Any:
    """Load the data a resumed run or study saved (``saved_in``); its errors name that file.

    The options came from the file, not the command line: a ``data_dir`` or
    ``train_size`` the dataset refuses is reported with the file that holds it.
    ``start_again`` ends the message ("start a new run in another --out folder").
    """
    from .data import load_dataset
    from .rundir import RunConfigError

    try:
        return load_dataset(dataset, **data_args)
    except (ValueError, TypeError, OSError) as exc:
        raise RunConfigError(
            f"{saved_in}: the data it names ('data': {data_args}) cannot be loaded: {exc}. "
            f"It was left as is: restore the data it names, fix its 'data', or {start_again}"
        ) from None


def prepare(args: argparse.Namespace, command: str) -> tuple[Plan, Any]:
    """Work out and check everything the command needs; nothing is written."""
    from .data import load_dataset

    given = given_values(args)
    if args.resume is not None:
        plan = plan_resume(args, command, given)
    else:
        plan = plan_fresh(args, command, given)
    args.run_folder = plan.out  # named by the messages of an interrupted run
    backend = get_backend(plan.config.backend)
    if plan.resume:
        from .rundir import CONFIG_NAME

        again = "start a new run in another --out folder"
        data = load_saved_data(plan.config.dataset, plan.data_args, plan.out / CONFIG_NAME, again)
    else:
        data = load_dataset(plan.config.dataset, **plan.data_args)
    check_memory(plan.config, data)
    check_split(plan.config, data)
    if plan.resume:
        plan.trained = _check_checkpoints(plan, command, data, backend.name)
    return plan, data


class NothingToDo(Exception):  # noqa: N818 - not an error: the run is already complete
    """``--resume`` of a run that has trained all its epochs; the message says so."""


def complete_message(plan: Plan, command: str) -> str | None:
    """The message for a resumed run that has every epoch (and its files), else None."""
    epochs = plan.config.epochs
    if not plan.resume or not plan.trained or min(plan.trained.values()) < epochs:
        return None
    if command == "compare":
        if not (plan.out / "summary.json").is_file():
            return None  # stopped before its summary: resuming writes it
        nets = ", ".join(f"{net} {n}/{epochs}" for net, n in plan.trained.items())
        what = f"comparison in {plan.out} is already complete ({nets} epochs)"
    else:
        what = f"run in {plan.out} is already complete ({epochs}/{epochs} epochs)"
    return f"{what}; nothing to do (give --epochs N to train it longer)"


def report_files(out: Path, names: list[str]) -> None:
    """Say which of ``names`` the command wrote into ``out`` (and why a figure is missing)."""
    for name in names:
        path = out / name
        if path.exists():
            print(f"wrote {path}")
        elif name.endswith(".png"):
            print(f"no {name}: install the plots plugin (dropkit-plots) to get the figure")
