"""The ``dropkit`` command.

Examples
--------
>>> status = main(["demo", "--size", "1000", "--seed", "1"])  # doctest: +ELLIPSIS
backend numpy ...
>>> status
0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__
from ..registry import get_backend, list_backends
from .data import DATASETS
from .plugins import new_plugin_manager
from .train import PRESETS, TrainConfig

__all__ = ["main"]


def _cmd_backends(args: argparse.Namespace) -> int:
    rows: list[tuple[str, ...]] = [
        ("name", "distribution", "version", "status", "summary / reason")
    ]
    for info in list_backends(load=args.load):
        status = "available" if info.available else "unavailable"
        cells = (info.name, info.distribution, info.version, status, info.reason or info.summary)
        rows.append(tuple(" ".join(str(c).split()) for c in cells))  # one line per backend
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[4])
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .._arrays import check_p
    from ..ops import dropout, dropout2d, keep_probability
    from ..random import Generator
    from ..testing.stats import FALSE_FAILURE_RATE, binomial_interval

    check_p(args.p)
    if args.size < 1:
        raise ValueError(f"--size must be at least 1, got {args.size}")
    if not 0 <= args.seed < 2**64:
        raise ValueError(f"--seed must be an integer in [0, 2**64), got {args.seed}")
    total = _physical_memory()
    need = 3 * 4 * args.size  # input, output and mask words, float32
    if total is not None and need > total:
        raise ValueError(
            f"--size {args.size} needs {_gib(need)} (float32 input, output and mask), more "
            f"than this machine's {_gib(total)} of memory; choose a smaller --size"
        )
    backend = get_backend(args.backend)
    xp = backend.xp
    print(f"backend {backend.name} ({backend!r}); p = {args.p} is the DROP probability")
    gen = Generator(args.seed)
    q = keep_probability(args.p)
    cases = [
        ("dropout", (args.size,), lambda x: dropout(x, args.p, rng=gen)),
        (
            "dropout2d",
            (max(1, args.size // 1024), 64, 4, 4),
            lambda x: dropout2d(x, args.p, rng=gen),
        ),
    ]
    for name, shape, op in cases:
        x = xp.ones(shape, dtype=xp.float32)
        start = time.perf_counter()
        op(x)  # the first call loads compiled kernels, if the backend has any
        first = time.perf_counter() - start
        start = time.perf_counter()
        y = op(x)
        seconds = time.perf_counter() - start
        kept = int(xp.count_nonzero(y))
        units = kept // (16 if name == "dropout2d" else 1)
        total = (x.size // 16) if name == "dropout2d" else x.size
        lo, hi = binomial_interval(total, q, FALSE_FAILURE_RATE)
        verdict = "ok" if lo <= units <= hi else "OUTSIDE the exact interval"
        print(
            f"  {name:<9} shape {shape}: kept {units}/{total} "
            f"{'maps' if name == 'dropout2d' else 'units'} = {units / total:.4f} "
            f"(expected {q:.4f}, exact 1e-6 interval [{lo}, {hi}]: {verdict}); "
            f"kept values {float(xp.max(y)):.4f} = 1/(1-p); "
            f"{seconds * 1e3:.1f} ms (first call {first * 1e3:.1f} ms)"
        )
    return 0


def _add_training_flags(p: argparse.ArgumentParser, *, sizes: bool = False) -> None:
    g = p.add_argument_group("experiment (defaults: the MNIST-1D experiment, or --preset)")
    g.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="a named set of hyperparameters; flags given explicitly override it",
    )
    g.add_argument("--dataset", choices=DATASETS, default=None, help="default: mnist1d")
    g.add_argument("--data-dir", default=None, help="folder with the cifar10 or mnist files")
    if sizes:  # dropkit sweep: a list, parsed (and refused if bad) by the command
        g.add_argument(
            "--train-size",
            default=None,
            metavar="N1,N2,...",
            help="a study on the first N training examples for each N (default 500,1000,2000,4000)",
        )
    else:
        g.add_argument(
            "--train-size",
            type=_integer,
            default=None,
            help="use only the first N training examples",
        )
    g.add_argument(
        "--backend", default=None, help="backend name (default: $DROPKIT_BACKEND or numpy)"
    )
    g.add_argument("--seed", type=_integer, default=None, help="default: 0")
    g.add_argument("--epochs", type=_integer, default=None, help="default: 300")
    g.add_argument(
        "--hidden",
        type=_widths,
        default=None,
        metavar="W1,W2,...",
        help="hidden layer widths (default: 512,256)",
    )
    g.add_argument(
        "--p-hidden",
        type=_finite,
        default=None,
        help="DROP probability of hidden units (default: 0.5)",
    )
    g.add_argument(
        "--p-input", type=_finite, default=None, help="DROP probability of input units (default: 0)"
    )
    g.add_argument("--mode", choices=("inverted", "vanilla"), default=None)
    g.add_argument("--lr", type=_finite, default=None, help="default: 0.05")
    g.add_argument(
        "--lr-every",
        type=_integer,
        default=None,
        help="halve the learning rate every K epochs (default: 75)",
    )
    g.add_argument(
        "--lr-times", type=_integer, default=None, help="... at most N times (default: 3)"
    )
    g.add_argument("--momentum", type=_finite, default=None, help="default: 0.9")
    g.add_argument("--nesterov", action="store_true", default=None, help="Nesterov momentum")
    g.add_argument("--weight-decay", type=_finite, default=None, help="L2 on weights (1e-3)")
    g.add_argument("--batch-size", type=_integer, default=None, help="default: 256")
    g.add_argument("--dtype", choices=("float16", "float32", "float64"), default=None)
    g.add_argument(
        "--val-size",
        type=_val_size,
        default=None,
        metavar="N|F",
        help="training examples held out for validation: a count N, or a fraction F in (0, 1) "
        "(default 0.1; 0: none, and only test-selected numbers are reported). The same "
        "examples for every method and seed; the table's headline is the test accuracy at the "
        "best validation epoch",
    )
    g.add_argument(
        "--threads",
        type=_integer,
        default=None,
        metavar="N",
        help="BLAS threads per run (default: chosen for the net's matrix sizes, 1 for the "
        "MNIST-1D net; a set OPENBLAS_NUM_THREADS or OMP_NUM_THREADS is left alone)",
    )
    g = p.add_argument_group("output")
    g.add_argument(
        "--out", default=None, help="output folder (default: a new runs/<command>-<time> folder)"
    )
    g.add_argument(
        "--resume",
        default=None,
        metavar="DIR",
        help="continue the run saved in DIR (its config.json; --epochs may extend it)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress lines")


def _finite(text: str) -> float:
    """An argparse type: a finite float (``nan`` and ``inf`` are refused up front)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _integer(text: str) -> int:
    """An argparse type: an integer."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _val_size(text: str) -> int | float:
    """An argparse type: a count (``500``) or a fraction (``0.1``) of the training examples."""
    from .split import check_val_size

    try:
        return check_val_size(int(text) if text.strip().lstrip("+-").isdigit() else float(text))
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"must be a count >= 0 like 500 (0: no validation set) or a fraction in (0, 1) "
            f"like 0.1, got {text!r}"
        ) from None


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 512,256, got {text!r}"
        ) from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


_CONFIG_FLAGS = (
    "dataset",
    "hidden",
    "p_hidden",
    "p_input",
    "mode",
    "lr",
    "lr_every",
    "lr_times",
    "momentum",
    "nesterov",
    "weight_decay",
    "batch_size",
    "epochs",
    "seed",
    "backend",
    "dtype",
    "val_size",
)
_DATA_FLAGS = ("data_dir", "train_size")


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _show(key: str, value: Any) -> str:
    if key == "hidden" and isinstance(value, list | tuple):
        return ",".join(str(w) for w in value)
    return str(value)


def _config(values: dict[str, Any], where: Path | None = None) -> TrainConfig:
    """``TrainConfig(**values)``; its errors name the flag (or the file ``where``)."""
    try:
        return TrainConfig(**values)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        if where is not None:
            raise type(exc)(f"{where}: {message}; {_FIX}") from None
        for key in _CONFIG_FLAGS:
            if message.startswith(f"{key} "):
                message = _flag(key) + message[len(key) :]
                break
        raise type(exc)(message) from None


_FIX = "it was left as is: fix it, or start a new run in another --out folder"


def _folder_state(out: Path) -> list[tuple[str, int, int] | None]:
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


def _same_dir(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    return a == b or os.path.realpath(a) == os.path.realpath(b)


class _Plan:
    """What a train/compare command will do, worked out without writing anything."""

    def __init__(self, out: Path, config: TrainConfig, data_args: dict[str, Any]) -> None:
        self.out = out
        self.config = config
        self.data_args = data_args
        self.resume = False
        self.write_config = True
        self.state = _folder_state(out)
        self.trained: dict[str, int] = {}  # on --resume: each net's finished epochs
        self.environment: dict[str, Any] | None = None  # on --resume: the saved one


def _given(args: argparse.Namespace) -> dict[str, Any]:
    given: dict[str, Any] = dict(PRESETS[args.preset]) if args.preset else {}
    given.update({k: getattr(args, k) for k in _CONFIG_FLAGS if getattr(args, k) is not None})
    if args.train_size is not None and args.train_size < 1:
        raise ValueError(f"--train-size must be at least 1, got {args.train_size}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(
            f"--threads must be at least 1 (BLAS threads per run), got {args.threads}; leave it "
            "out to let dropkit choose"
        )
    return given


def _plan_fresh(args: argparse.Namespace, command: str, given: dict[str, Any]) -> _Plan:
    from .rundir import RunLock, holds_run

    config = _config(given)
    if config.backend is None and os.environ.get("DROPKIT_BACKEND", "").strip():
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
    return _Plan(out, config, {k: getattr(args, k) for k in _DATA_FLAGS})


def _plan_resume(args: argparse.Namespace, command: str, given: dict[str, Any]) -> _Plan:
    from .rundir import RunLock, read_run_config, run_command

    out = Path(args.resume)
    if args.out is not None and not _same_dir(args.out, args.resume):
        raise ValueError(
            f"--resume continues the run in its own folder {out}: leave out --out {args.out} "
            "(or give the same folder)"
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
    base = _config({**OPTIONAL_DEFAULTS, **saved.config}, saved.path)
    wanted = _config({**base.to_dict(), **given})
    differences = []
    for key in _CONFIG_FLAGS:
        before, after = getattr(base, key), getattr(wanted, key)
        if key == "epochs" or before == after:
            continue
        if key == "backend" and before is None:
            before = f"None (the default, {_default_backend()})"
            if after == _default_backend():
                continue
        differences.append(f"{_flag(key)}: saved {_show(key, before)}, now {_show(key, after)}")
    for key in _DATA_FLAGS:
        value = getattr(args, key)
        if value is not None and not _same_dir(str(value), _as_str(saved.data[key])):
            differences.append(f"{_flag(key)}: saved {saved.data[key]}, now {value}")
    if differences:
        raise ValueError(
            f"--resume {out}: the run was made with other options ({saved.path}): "
            f"{'; '.join(differences)}. Resume with the saved values (or without these "
            "options), or start a new run in another --out folder; nothing was changed"
        )
    config = dataclasses.replace(base, epochs=wanted.epochs)
    plan = _Plan(out, config, saved.data)
    plan.environment = saved.environment
    plan.resume = True
    plan.write_config = config != base or saved.command is None
    return plan


def _study_command(out: Path) -> str | None:
    """The command of a study folder (its study.json), or None."""
    try:
        return str(json.loads((out / "study.json").read_text()).get("command", "compare"))
    except (OSError, ValueError, AttributeError):
        return "compare" if (out / "study.json").is_file() else None


def _as_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _default_backend() -> str:
    try:
        return get_backend(None).name
    except (ValueError, RuntimeError, ImportError):
        return "numpy"


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        return None


def _gib(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _check_memory(config: TrainConfig, data: Any) -> None:
    from .train import memory_estimate

    batch = min(config.batch_size, data.x_train.shape[0])
    params, need = memory_estimate(
        dataclasses.replace(config, batch_size=batch), data.n_features, data.n_classes
    )
    total = _physical_memory()
    if total is not None and need > total:
        layers = "-".join(str(w) for w in (data.n_features, *config.hidden, data.n_classes))
        raise ValueError(
            f"--hidden {_show('hidden', config.hidden)}: the net {layers} has {params:,} "
            f"parameters, which need {_gib(need)} to train ({config.dtype} weights, gradients, "
            f"momentum and a batch of activations), more than this machine's {_gib(total)} of "
            "memory; choose smaller --hidden widths (or a smaller --batch-size)"
        )


def _check_split(config: TrainConfig, data: Any) -> None:
    """``--val-size`` leaves examples to train on (checked before anything is written)."""
    from .split import val_count

    val_count(config.val_size, len(data.y_train))


def _check_checkpoints(plan: _Plan, command: str, data: Any, backend: str) -> dict[str, int]:
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


def _prepare(args: argparse.Namespace, command: str) -> tuple[_Plan, Any]:
    """Work out and check everything the command needs; nothing is written."""
    from .data import load_dataset

    given = _given(args)
    if args.resume is not None:
        plan = _plan_resume(args, command, given)
    else:
        plan = _plan_fresh(args, command, given)
    args.run_folder = plan.out  # named by the messages of an interrupted run
    backend = get_backend(plan.config.backend)
    data = load_dataset(plan.config.dataset, **plan.data_args)
    _check_memory(plan.config, data)
    _check_split(plan.config, data)
    if plan.resume:
        plan.trained = _check_checkpoints(plan, command, data, backend.name)
    return plan, data


def _setup(args: argparse.Namespace, command: str) -> tuple[Any, Any, Path, bool, Any]:
    from .checkpoint import atomic_write_text
    from .provenance import environment
    from .reporters import MetricsFile, Progress
    from .rundir import CONFIG_NAME, RunLock, remove_stale_temporaries

    for flag in ("out", "resume"):
        if getattr(args, flag) == "":
            raise ValueError(f"--{flag} needs a folder name, got ''")
    holder = "dropkit " + " ".join(getattr(args, "argv", [command]))
    for _attempt in range(3):
        plan, data = _prepare(args, command)
        # everything is checked: only now does the command write, holding the folder
        lock = RunLock(plan.out, command=holder).acquire()
        if _folder_state(plan.out) == plan.state:
            break
        lock.release()  # another run wrote there meanwhile: check again
    else:
        raise RuntimeError(
            f"{plan.out} changed while this command got ready (another run wrote to it); "
            "run the command again"
        )
    try:
        complete = _complete(plan, command)
        if complete is not None:
            raise _NothingToDo(complete)  # nothing is written, not even config.json
        remove_stale_temporaries(plan.out)
        if plan.write_config:
            doc = {"command": command, "config": plan.config.to_dict(), "data": plan.data_args}
            # how the run was started (kept on --resume: a folder without one gets none)
            env = (
                plan.environment
                if plan.resume
                else environment(
                    get_backend(plan.config.backend), ["dropkit", *getattr(args, "argv", [command])]
                )
            )
            if env is not None:
                doc["environment"] = env
            atomic_write_text(plan.out / CONFIG_NAME, json.dumps(doc, indent=2))
        plugins = [MetricsFile()] + ([] if args.quiet else [Progress()])
        # this command's own manager: the installed plugins, the caller's, the reporters
        pm = new_plugin_manager(*args.plugins, *plugins, installed=args.installed_plugins)
    except BaseException:
        lock.release()
        raise
    return plan.config, data, plan.out, plan.resume, (pm, plugins, lock)


def _teardown(handle: Any) -> None:
    _, plugins, lock = handle
    for plugin in plugins:
        getattr(plugin, "close", lambda: None)()  # a live progress line ends here
    lock.release()


class _NothingToDo(Exception):  # noqa: N818 - not an error: the run is already complete
    """``--resume`` of a run that has trained all its epochs; the message says so."""


def _complete(plan: _Plan, command: str) -> str | None:
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


def _cmd_compare(args: argparse.Namespace) -> int:
    from .cli_study import cmd_study, is_study
    from .compare import format_table, run_compare

    if is_study(args):  # --methods, --seeds, --jobs or --activation, or a study's folder
        return cmd_study(args, "compare")
    config, data, out, resume, handle = _setup(args, "compare")
    try:
        results = run_compare(
            config, data, out, resume=resume, plugin_manager=handle[0], threads=args.threads
        )
    finally:
        _teardown(handle)
    format_table(results, data, sys.stdout)
    _report_files(out, ["summary.json", "history.json", "curves.png"])
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .cli_study import cmd_study

    return cmd_study(args, "sweep")


def _cmd_train(args: argparse.Namespace) -> int:
    from .checkpoint import CHECKPOINT_NAME
    from .train import train

    config, data, out, resume, handle = _setup(args, "train")
    try:
        result = train(
            config,
            data,
            name="train",
            out_dir=out,
            resume=resume and (out / CHECKPOINT_NAME).exists(),  # none: from epoch 0
            plugin_manager=handle[0],
            threads=args.threads,
        )
    finally:
        _teardown(handle)
    s = result.summary()
    selected = ""
    if s["test_acc_at_best_val"] is not None:
        selected = (
            f"test {s['test_acc_at_best_val']:.2%} at the best validation epoch "
            f"{s['best_val_epoch']} (val {s['best_val_acc']:.2%}), "
        )
    print(
        f"{selected}final test {s['final_test_acc']:.2%}, best test {s['best_test_acc']:.2%} "
        f"(epoch {s['best_test_epoch']}, selected on test), best train "
        f"{s['best_train_acc']:.2%} (epoch {s['best_train_epoch']}), {s['seconds']:.1f} s"
    )
    _report_files(out, ["checkpoint.npz", "best.npz", "metrics.csv", "curves.png"])
    return 0


def _report_files(out: Path, names: list[str]) -> None:
    for name in names:
        path = out / name
        if path.exists():
            print(f"wrote {path}")
        elif name.endswith(".png"):
            print(f"no {name}: install the plots plugin (dropkit-plots) to get the figure")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line with a hint, exit status 2.

    Examples
    --------
    >>> import contextlib, io
    >>> err = io.StringIO()
    >>> with contextlib.redirect_stderr(err):
    ...     try:
    ...         _parser().parse_args(["train", "--epochs", "many"])
    ...     except SystemExit as exc:
    ...         print(exc.code)
    2
    >>> print(err.getvalue(), end="")
    dropkit: error: argument --epochs: must be an integer, got 'many'; see 'dropkit train --help'
    """

    def error(self, message: str, prog: str | None = None) -> NoReturn:
        """Print ``dropkit: error: MESSAGE; see 'dropkit COMMAND --help'`` and exit with 2."""
        prog = prog or self.prog
        self.exit(2, f"{prog.split()[0]}: error: {message}; see '{prog} --help'\n")

    def parse_command(self, argv: Sequence[str]) -> argparse.Namespace:
        """Parse ``argv``; an unknown argument is an error of its command (its --help hinted)."""
        args, extras = self.parse_known_args(argv)
        if extras:
            command = getattr(args, "command", None)
            prog = f"{self.prog} {command}" if command else self.prog
            self.error(f"unrecognized arguments: {' '.join(extras)}", prog)
        return args


def _parser() -> _Parser:
    from .cli_study import add_study_flags

    parser = _Parser(prog="dropkit", description="Framework-agnostic, provably correct dropout.")
    parser.add_argument("--version", action="version", version=f"dropkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "backends",
        help="list installed backends and their availability",
        description="List the installed backends. A backend whose array library is installed "
        "is listed as available without importing it; --load checks that each one loads.",
    )
    p.add_argument(
        "--load",
        action="store_true",
        help="load every backend to check it works here (imports JAX, Dask, ...: seconds)",
    )
    p.set_defaults(func=_cmd_backends)
    p = sub.add_parser("demo", help="show the ops at work on the default backend")
    p.add_argument(
        "--backend", default=None, help="backend name (default: $DROPKIT_BACKEND or numpy)"
    )
    p.add_argument("--p", type=_finite, default=0.5, help="drop probability (default 0.5)")
    p.add_argument("--seed", type=_integer, default=0, help="generator key (default 0)")
    p.add_argument("--size", type=_integer, default=1 << 20, help="elements (default 2**20)")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser(
        "compare",
        help="train a net without and with dropout from the same start, compare them",
    )
    _add_training_flags(p)
    add_study_flags(p)
    p.set_defaults(func=_cmd_compare)
    p = sub.add_parser(
        "sweep",
        help="a multi-seed comparison for each of several training-set sizes",
    )
    _add_training_flags(p, sizes=True)
    add_study_flags(p, sweep=True)
    p.set_defaults(func=_cmd_sweep)
    p = sub.add_parser("train", help="train one configuration")
    _add_training_flags(p)
    p.set_defaults(func=_cmd_train)
    return parser


_TRAINING = ("train", "compare", "sweep")  # commands that save every finished epoch


class _Terminated(KeyboardInterrupt):
    """SIGTERM (what SLURM, Kubernetes and ``kill`` send), raised where Ctrl-C would be.

    A ``KeyboardInterrupt``, so a run stops exactly as on Ctrl-C: the last
    finished epoch is saved, worker processes are stopped.
    """


_SIGTERM_SEEN: list[bool] = []  # set by the handler (a wrapper may re-raise another interrupt)


def _on_sigterm(signum: int, frame: Any) -> None:
    _SIGTERM_SEEN.append(True)
    raise _Terminated()


def _handle_sigterm() -> Any:
    """Turn SIGTERM into :class:`_Terminated`; return the previous handler (None: not set)."""
    try:
        return signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, AttributeError):  # not the main thread, or no SIGTERM here
        return None


def _quiet_stdout() -> None:
    """Point stdout at the null device, so the interpreter's final flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (captured output)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more is printed


def main(
    argv: Sequence[str] | None = None,
    *,
    plugins: Sequence[object] = (),
    installed_plugins: bool = True,
) -> int:
    """Run the command line; return the exit status.

    The command's hooks go to a plugin manager of its own
    (:func:`~dropkit.experiment.plugins.new_plugin_manager`): the installed
    plugins (none with ``installed_plugins=False``), ``plugins`` (for a program
    that runs the command with its own observers), and the command's reporters.

    0: success (also: ``--resume`` of a run that is already complete, which
    says so and changes nothing); 2: a usage error (one line on stderr,
    nothing written); 3: the training diverged (NaN or inf loss; the last
    finite checkpoint is kept); 130: interrupted (Ctrl-C); 141: the output was
    closed (a broken pipe, e.g. ``| head``; nothing is printed); 143:
    terminated (SIGTERM, as sent by SLURM or Kubernetes; handled as Ctrl-C).
    """
    previous = _handle_sigterm()
    _SIGTERM_SEEN.clear()
    try:
        return _main(argv, list(plugins), installed_plugins)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None, plugins: list[object], installed: bool) -> int:
    from .train import TrainingDivergedError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_command(argv)
    args.argv = argv
    args.plugins, args.installed_plugins = plugins, installed
    try:
        status = args.func(args)
    except _NothingToDo as done:
        print(done)
        return 0
    except TrainingDivergedError as exc:
        print(f"dropkit: error: {exc}", file=sys.stderr)
        return 3
    except BrokenPipeError:  # e.g. `dropkit train ... | head`: the reader went away, quietly
        _quiet_stdout()
        return 141
    except MemoryError as exc:
        sizes = "--size" if args.command == "demo" else "--hidden, --batch-size or --train-size"
        detail = f" ({exc})" if str(exc) else ""
        print(
            f"dropkit: error: out of memory{detail}; choose a smaller {sizes}",
            file=sys.stderr,
        )
        return 2
    except (ValueError, TypeError, RuntimeError, OSError, ImportError) as exc:
        print(f"dropkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        terminated = bool(_SIGTERM_SEEN)
        what, code = ("terminated (SIGTERM)", 143) if terminated else ("interrupted", 130)
        if str(exc):  # e.g. "while loading backend 'x' (dist 1.0)"
            print(f"dropkit: {what} {exc}".rstrip(), file=sys.stderr)
            return code
        folder = getattr(args, "run_folder", None) or getattr(args, "resume", None)
        if args.command in _TRAINING:
            where = f" {folder}" if folder else " RUN_FOLDER"
            message = f"every finished epoch is saved: continue with --resume{where}"
        else:
            message = "nothing was saved"
        print(f"dropkit: {what}; {message}", file=sys.stderr)
        return code
    return status


if __name__ == "__main__":
    sys.exit(main())
