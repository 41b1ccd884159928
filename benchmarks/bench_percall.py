"""Per-call cost of dropout on small and mid-sized arrays, beside each framework's own.

Run:  uv run python benchmarks/bench_percall.py [--rounds R] [--target-ms T]
Torch rows need PyTorch (CPU wheel:
``uv pip install --find-links "$PIP_FIND_LINKS" torch==2.13.0``); CuPy and
torch CUDA rows need a GPU and print "not measured: no GPU" otherwise.

For each shape ((8, 8), (64, 128, 768), (256, 800); float32, p = 0.5,
training mode) the variants of a group run interleaved in one process: each
round times every variant once, in a timeit-style loop of ``number`` calls
(``number`` chosen once so a loop takes about ``--target-ms``), so machine
noise hits them alike. The table gives the median microseconds per call and
the median of the within-round ratios to the group's anchor (the framework's
own dropout, or a NumPy multiply on NumPy).

Groups:
- NumPy: ``x * 2`` (anchor) and ``dropkit.dropout(x, 0.5, rng=0)``;
- torch CPU function: ``F.dropout`` (anchor), ``dropkit.dropout`` with
  ``rng=0`` and ``rng=None`` (torch's generator);
- torch CPU Module, forward + backward with ``requires_grad``:
  ``torch.nn.Dropout`` (anchor) and ``dropkit_torch.nn.Dropout``;
- the Python time per call of the CuPy and torch-CUDA paths on the host, the
  kernel launch stubbed (no GPU needed; ``--only host``);
- CuPy and torch CUDA (a GPU only): the same, CUDA-synchronised per loop.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np
from machine import describe

import dropkit

SHAPES: list[tuple[int, ...]] = [(8, 8), (64, 128, 768), (256, 800)]
Variant = tuple[str, Callable[[], Any]]


def _number(fn: Callable[[], Any], target_s: float) -> int:
    """Calls per loop so that one loop takes about ``target_s`` (as timeit's autorange)."""
    fn()
    n = 1
    while True:
        t = timeit.timeit(fn, number=n)
        if t >= target_s / 4 or n >= 1 << 20:
            return max(1, int(n * target_s / max(t, 1e-9)))
        n *= 4


def run_group(
    title: str, variants: list[Variant], rounds: int, target_s: float, sync: Callable[[], Any]
) -> None:
    """Time ``variants`` interleaved; print medians and ratios to the first (the anchor)."""

    def looped(fn: Callable[[], Any]) -> Callable[[], Any]:
        def loop() -> None:
            fn()
            sync()

        return loop

    numbers = [_number(looped(fn), target_s) for _, fn in variants]
    per_call: list[list[float]] = [[] for _ in variants]
    for _ in range(rounds):
        for i, (_, fn) in enumerate(variants):
            t = timeit.timeit(fn, number=numbers[i])
            sync()
            per_call[i].append(t / numbers[i] * 1e6)
    anchor = per_call[0]
    print(f"\n{title}")
    for (name, _), times in zip(variants, per_call, strict=True):
        ratio = statistics.median(t / a for t, a in zip(times, anchor, strict=True))
        print(f"  {name:<44} {statistics.median(times):10.2f} us   {ratio:6.2f}x")


def numpy_groups(rounds: int, target_s: float) -> None:
    for shape in SHAPES:
        x = np.ones(shape, dtype=np.float32)
        run_group(
            f"NumPy {shape} float32",
            [
                ("x * 2", lambda x=x: x * 2),
                ("dropkit.dropout(x, 0.5, rng=0)", lambda x=x: dropkit.dropout(x, 0.5, rng=0)),
            ],
            rounds,
            target_s,
            lambda: None,
        )


def torch_groups(torch: Any, device: str, rounds: int, target_s: float, sync: Any) -> None:
    import dropkit_torch.nn as dnn
    import torch.nn.functional as F  # noqa: N812

    for shape in SHAPES:
        x = torch.ones(shape, dtype=torch.float32, device=device)
        run_group(
            f"torch {device} function {shape} float32",
            [
                ("F.dropout(x, 0.5)", lambda x=x: F.dropout(x, 0.5)),
                ("dropkit.dropout(x, 0.5, rng=0)", lambda x=x: dropkit.dropout(x, 0.5, rng=0)),
                (
                    "dropkit.dropout(x, 0.5, rng=None)",
                    lambda x=x: dropkit.dropout(x, 0.5, rng=None),
                ),
            ],
            rounds,
            target_s,
            sync,
        )
    for shape in SHAPES:
        xg = torch.ones(shape, dtype=torch.float32, device=device, requires_grad=True)
        theirs = torch.nn.Dropout(0.5).to(device)
        ours = dnn.Dropout(0.5).to(device)

        def step(m: Any, xg: Any = xg) -> None:
            m(xg).sum().backward()
            xg.grad = None

        run_group(
            f"torch {device} Module forward+backward {shape} float32",
            [
                ("torch.nn.Dropout(0.5)", lambda m=theirs: step(m)),
                ("dropkit_torch.nn.Dropout(0.5)", lambda m=ours: step(m)),
            ],
            rounds,
            target_s,
            sync,
        )


def cupy_groups(rounds: int, target_s: float) -> None:
    try:
        import cupy
    except ImportError:
        print("\nCuPy: not measured: CuPy is not installed")
        return
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            raise RuntimeError
    except Exception:
        print("\nCuPy: not measured: no GPU")
        return
    sync = cupy.cuda.Device().synchronize
    for shape in SHAPES:
        x = cupy.ones(shape, dtype=cupy.float32)
        run_group(
            f"CuPy {shape} float32",
            [
                ("x * 2", lambda x=x: x * 2),
                ("dropkit.dropout(x, 0.5, rng=0)", lambda x=x: dropkit.dropout(x, 0.5, rng=0)),
            ],
            rounds,
            target_s,
            sync,
        )


def host_groups(rounds: int, target_s: float) -> None:
    """The Python time per call of the GPU paths, measured on the host (no GPU needed).

    Each module's ``groups()`` gives (title, variants) with the launch stubbed;
    see benchmarks/_host_cupy.py and benchmarks/_host_torch_cuda.py for what
    each anchor is.
    """
    import importlib

    for module in ("_host_cupy", "_host_torch_cuda"):
        try:
            found = importlib.import_module(module).groups()
        except ImportError as exc:
            print(f"\n{module}: not measured: {exc}")
            continue
        for title, variants in found:
            run_group(title, variants, rounds, target_s, lambda: None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (15)")
    parser.add_argument("--target-ms", type=float, default=20.0, help="ms per loop (20)")
    parser.add_argument("--only", choices=["numpy", "torch", "gpu", "host"], help="one group only")
    args = parser.parse_args(argv)
    target_s = args.target_ms / 1000
    print(describe())
    versions = f"NumPy {np.__version__}, dropkit {dropkit.__version__}"
    print(f"Python {platform.python_version()}, {versions}")
    try:
        import torch
    except ImportError:
        torch = None
        print("torch: not installed (torch rows not measured)")
    if torch is not None:
        torch.set_num_threads(1)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread")
    if args.only in (None, "numpy"):
        numpy_groups(args.rounds, target_s)
    if torch is not None and args.only in (None, "torch"):
        torch_groups(torch, "cpu", args.rounds, target_s, lambda: None)
    if args.only in (None, "host"):
        host_groups(args.rounds, target_s)
    if args.only in (None, "gpu"):
        cupy_groups(args.rounds, target_s)
        if torch is not None and torch.cuda.is_available():
            torch_groups(torch, "cuda", args.rounds, target_s, torch.cuda.synchronize)
        else:
            print("\ntorch CUDA: not measured: no GPU")


if __name__ == "__main__":
    main()
