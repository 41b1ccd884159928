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
import sys
import time
from collections.abc import Sequence

from . import __version__
from .registry import get_backend, list_backends

__all__ = ["main"]


def _cmd_backends(args: argparse.Namespace) -> int:
    rows = [("name", "distribution", "version", "status", "summary / reason")]
    for info in list_backends():
        status = "available" if info.available else "unavailable"
        rows.append(
            (info.name, info.distribution, info.version, status, info.reason or info.summary)
        )
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        status = args.func(args)
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"dropkit: error: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
