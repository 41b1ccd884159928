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
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__
from .._plugin_policy import printable
from ..registry import list_backends
from ..selection import get_backend
from .cli_args import add_training_flags, parse_finite, parse_integer
from .cli_plan import (
    NothingToDo,
    complete_message,
    folder_state,
    gib,
    physical_memory,
    prepare,
    report_files,
)
from .plugins import new_plugin_manager

__all__ = ["main"]


def _cmd_backends(args: argparse.Namespace) -> int:
    rows: list[tuple[str, ...]] = [
        ("name", "distribution", "version", "status", "summary / reason")
    ]
    for info in list_backends(load=args.load):
        status = "available" if info.available else "unavailable"
        cells = (info.name, info.distribution, info.version, status, info.reason or info.summary)
        # one line per backend; a plugin's text printable (no escape sequences reach the terminal)
        rows.append(tuple(printable(" ".join(str(c).split())) for c in cells))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[4])
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..checks import check_p
    from ..ops import dropout, dropout2d, keep_probability
    from ..random import Generator
    from ..testing.stats import FALSE_FAILURE_RATE, binomial_interval

    check_p(args.p)
    if args.size < 1:
        raise ValueError(f"--size must be at least 1, got {args.size}")
    if not 0 <= args.seed < 2**64:
        raise ValueError(f"--seed must be an integer in [0, 2**64), got {args.seed}")
    total = physical_memory()
    need = 3 * 4 * args.size  # input, output and mask words, float32
    if total is not None and need > total:
        raise ValueError(
            f"--size {args.size} needs {gib(need)} (float32 input, output and mask), more "
            f"than this machine's {gib(total)} of memory; choose a smaller --size"
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
        plan, data = prepare(args, command)
        # everything is checked: only now does the command write, holding the folder
        lock = RunLock(plan.out, command=holder).acquire()
        if folder_state(plan.out) == plan.state:
            break
        lock.release()  # another run wrote there meanwhile: check again
    else:
        raise RuntimeError(
            f"{plan.out} changed while this command got ready (another run wrote to it); "
            "run the command again"
        )
    try:
        done = complete_message(plan, command)
        if done is not None:
            raise NothingToDo(done)  # nothing is written, not even config.json
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
    report_files(out, ["summary.json", "history.json", "curves.png"])
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
    report_files(out, ["checkpoint.npz", "best.npz", "metrics.csv", "curves.png"])
    return 0


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
    p.add_argument("--p", type=parse_finite, default=0.5, help="drop probability (default 0.5)")
    p.add_argument("--seed", type=parse_integer, default=0, help="generator key (default 0)")
    p.add_argument("--size", type=parse_integer, default=1 << 20, help="elements (default 2**20)")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser(
        "compare",
        help="train a net without and with dropout from the same start, compare them",
    )
    add_training_flags(p)
    add_study_flags(p)
    p.set_defaults(func=_cmd_compare)
    p = sub.add_parser(
        "sweep",
        help="a multi-seed comparison for each of several training-set sizes",
    )
    add_training_flags(p, sizes=True)
    add_study_flags(p, sweep=True)
    p.set_defaults(func=_cmd_sweep)
    p = sub.add_parser("train", help="train one configuration")
    add_training_flags(p)
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
    except NothingToDo as done:
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
