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
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .data import DATASETS
from .registry import get_backend, get_plugin_manager, list_backends
from .train import PRESETS, TrainConfig

__all__ = ["main"]


def _cmd_backends(args: argparse.Namespace) -> int:
    rows = [("name", "distribution", "version", "status", "summary / reason")]
    for info in list_backends():
        status = "available" if info.available else "unavailable"
        cells = (info.name, info.distribution, info.version, status, info.reason or info.summary)
        rows.append(tuple(" ".join(str(c).split()) for c in cells))  # one line per backend
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[4])
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._arrays import check_p
    from .ops import dropout, dropout2d, keep_probability
    from .random import Generator
    from .testing.stats import FALSE_FAILURE_RATE, binomial_interval

    check_p(args.p)
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


def _add_training_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("experiment (defaults: the MNIST-1D experiment, or --preset)")
    g.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="a named set of hyperparameters; flags given explicitly override it",
    )
    g.add_argument("--dataset", choices=DATASETS, default=None, help="default: mnist1d")
    g.add_argument("--data-dir", default=None, help="folder with the cifar10 or mnist files")
    g.add_argument(
        "--train-size", type=int, default=None, help="use only the first N training examples"
    )
    g.add_argument(
        "--backend", default=None, help="backend name (default: $DROPKIT_BACKEND or numpy)"
    )
    g.add_argument("--seed", type=int, default=None, help="default: 0")
    g.add_argument("--epochs", type=int, default=None, help="default: 300")
    g.add_argument(
        "--hidden",
        type=_widths,
        default=None,
        metavar="W1,W2,...",
        help="hidden layer widths (default: 512,256)",
    )
    g.add_argument(
        "--p-hidden",
        type=float,
        default=None,
        help="DROP probability of hidden units (default: 0.5)",
    )
    g.add_argument(
        "--p-input", type=float, default=None, help="DROP probability of input units (default: 0)"
    )
    g.add_argument("--mode", choices=("inverted", "vanilla"), default=None)
    g.add_argument("--lr", type=float, default=None, help="default: 0.05")
    g.add_argument(
        "--lr-every",
        type=int,
        default=None,
        help="halve the learning rate every K epochs (default: 75)",
    )
    g.add_argument("--lr-times", type=int, default=None, help="... at most N times (default: 3)")
    g.add_argument("--momentum", type=float, default=None, help="default: 0.9")
    g.add_argument("--nesterov", action="store_true", default=None, help="Nesterov momentum")
    g.add_argument("--weight-decay", type=float, default=None, help="L2 on weights (1e-3)")
    g.add_argument("--batch-size", type=int, default=None, help="default: 256")
    g.add_argument("--dtype", choices=("float16", "float32", "float64"), default=None)
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
)


def _setup(args: argparse.Namespace, command: str) -> tuple[Any, Any, Path, bool, Any]:
    from .checkpoint import atomic_write_text
    from .data import load_dataset
    from .reporters import MetricsFile, Progress

    explicit = {k: getattr(args, k) for k in _CONFIG_FLAGS if getattr(args, k) is not None}
    if args.resume:
        out = Path(args.resume)
        saved = out / "config.json"
        if not saved.exists():
            raise FileNotFoundError(f"nothing to resume in {out}: no config.json there")
        meta = json.loads(saved.read_text())
        base = {k: v for k, v in meta["config"].items()}
        data_args = meta["data"]
    else:
        preset = dict(PRESETS[args.preset]) if args.preset else {}
        base = TrainConfig(**preset).to_dict()
        data_args = {"data_dir": args.data_dir, "train_size": args.train_size}
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path(args.out) if args.out else Path("runs") / f"{command}-{stamp}"
        if (out / "config.json").exists():
            raise FileExistsError(
                f"{out} already holds a run: continue it with --resume {out}, or choose "
                "another --out"
            )
    config = TrainConfig.from_dict({**base, **explicit})
    data = load_dataset(config.dataset, **data_args)
    atomic_write_text(
        out / "config.json",
        json.dumps({"config": config.to_dict(), "data": data_args}, indent=2),
    )
    pm = get_plugin_manager()
    plugins = [MetricsFile()] + ([] if args.quiet else [Progress()])
    for plugin in plugins:
        pm.register(plugin)
    return config, data, out, bool(args.resume), (pm, plugins)


def _teardown(handle: Any) -> None:
    pm, plugins = handle
    for plugin in plugins:
        pm.unregister(plugin)


def _cmd_compare(args: argparse.Namespace) -> int:
    from .experiment import format_table, run_compare

    config, data, out, resume, handle = _setup(args, "compare")
    try:
        results = run_compare(config, data, out, resume=resume, plugin_manager=handle[0])
    finally:
        _teardown(handle)
    format_table(results, data, sys.stdout)
    _report_files(out, ["summary.json", "history.json", "curves.png"])
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    config, data, out, resume, handle = _setup(args, "train")
    try:
        result = train(
            config, data, name="train", out_dir=out, resume=resume, plugin_manager=handle[0]
        )
    finally:
        _teardown(handle)
    s = result.summary()
    print(
        f"best train {s['best_train_acc']:.2%} (epoch {s['best_train_epoch']}), best test "
        f"{s['best_test_acc']:.2%} (epoch {s['best_test_epoch']}), {s['seconds']:.1f} s"
    )
    _report_files(out, ["checkpoint.npz", "metrics.csv", "curves.png"])
    return 0


def _report_files(out: Path, names: list[str]) -> None:
    for name in names:
        path = out / name
        if path.exists():
            print(f"wrote {path}")
        elif name.endswith(".png"):
            print(f"no {name}: install the plots plugin (dropkit-plots) to get the figure")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dropkit", description="Framework-agnostic, provably correct dropout."
    )
    parser.add_argument("--version", action="version", version=f"dropkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("backends", help="list installed backends and their availability")
    p.set_defaults(func=_cmd_backends)
    p = sub.add_parser("demo", help="show the ops at work on the default backend")
    p.add_argument(
        "--backend", default=None, help="backend name (default: $DROPKIT_BACKEND or numpy)"
    )
    p.add_argument("--p", type=float, default=0.5, help="drop probability (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="generator key (default 0)")
    p.add_argument("--size", type=int, default=1 << 20, help="elements (default 2**20)")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser(
        "compare",
        help="train a net without and with dropout from the same start, compare them",
    )
    _add_training_flags(p)
    p.set_defaults(func=_cmd_compare)
    p = sub.add_parser("train", help="train one configuration")
    _add_training_flags(p)
    p.set_defaults(func=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        status = args.func(args)
    except (ValueError, TypeError, RuntimeError, OSError, ImportError) as exc:
        print(f"dropkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if str(exc) or args.command not in ("train", "compare"):  # e.g. "while loading ..."
            print(f"dropkit: interrupted {exc}".rstrip(), file=sys.stderr)
            return 130
        print(
            "dropkit: interrupted; the last finished epoch is saved: continue with --resume",
            file=sys.stderr,
        )
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
