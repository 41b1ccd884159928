"""`dropkit compare` with the old thread behaviour, the new choice and each fixed thread count.

Each setting runs the whole command in a fresh process (``--quiet``, a
temporary output folder that is removed), the settings interleaved round by
round in one run, so that a load change on a shared machine hits them all
alike. Printed: the machine, each setting's wall times, the median, and the
ratio of the median to the old behaviour's and to the fastest setting's.

Settings:

- old: no limit, as before dropkit chose threads: OpenBLAS's own default, a
  thread per core (given here as ``OPENBLAS_NUM_THREADS=<cores>``, which
  dropkit leaves alone);
- new: dropkit's choice for the net's matrix sizes (no thread variable, no
  ``--threads``);
- N threads: ``--threads N`` for N = 1 .. cores.

``--products`` times single float32 matrix products instead (the sizes of
the nets' steps: batch x fan-in x fan-out), at 1 .. cores threads,
interleaved, medians per product: where a second thread starts to pay is
what :data:`dropkit.experiment.threads.FLOPS_PER_THREAD` is set from.

Run:  uv run python benchmarks/bench_threads.py [--epochs 20] [--rounds 3] [--command compare]
      uv run python benchmarks/bench_threads.py --products [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe

from dropkit.experiment.threads import USER_VARIABLES, available_cores, blas_info


def _settings(cores: int) -> dict[str, tuple[dict[str, str], list[str]]]:
    """Name -> (thread variables to set, extra flags)."""
    settings = {
        "old (no limit)": ({"OPENBLAS_NUM_THREADS": str(cores)}, []),
        "new (dropkit's choice)": ({}, []),
    }
    for n in range(1, cores + 1):
        settings[f"--threads {n}"] = ({}, ["--threads", str(n)])
    return settings


def _run(command: str, epochs: int, variables: dict[str, str], flags: list[str]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in USER_VARIABLES}
    env.update(variables)
    with tempfile.TemporaryDirectory(prefix="bench_threads-") as out:
        cmd = [sys.executable, "-m", "dropkit.experiment.cli", command, "--quiet"]
        cmd += ["--epochs", str(epochs), "--out", str(Path(out) / "run"), *flags]
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


#: (m, k, n) of ``(m x k) @ (k x n)``: a step's three products of a layer (forward
#: batch x in x out, weight gradient in x batch x out, input gradient batch x out x in) for
#: MNIST-1D's 512x256 layer and the CIFAR-10 preset's 3072x2000 one at batch 256, and
#: MNIST-1D's evaluation (4096 rows) and a wider layer at 1024 rows.
PRODUCTS = (
    (256, 40, 512),
    (256, 512, 256),
    (512, 256, 256),
    (256, 256, 512),
    (1024, 512, 512),
    (4096, 512, 256),
    (256, 3072, 2000),
    (3072, 256, 2000),
    (256, 2000, 3072),
)


def _products(cores: int, rounds: int) -> None:
    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    print(f"{'product':<16} {'MFLOP':>7}  " + "  ".join(f"{t} thr ms" for t in range(1, cores + 1)))
    for m, k, n in PRODUCTS:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        flops = 2 * m * k * n
        reps = max(3, int(2e9 / flops))
        times: dict[int, list[float]] = {t: [] for t in range(1, cores + 1)}
        for _ in range(rounds):
            for t in times:
                with threadpool_limits(t, user_api="blas"):
                    a @ b
                    start = time.perf_counter()
                    for _ in range(reps):
                        a @ b
                    times[t].append((time.perf_counter() - start) / reps)
        medians = [statistics.median(v) for v in times.values()]
        ratios = "  ".join(f"{x * 1e3:8.3f} ({x / medians[0]:.2f}x)" for x in medians)
        print(f"{m}x{k}x{n:<8} {flops / 1e6:7.0f}  {ratios}", flush=True)


def main() -> None:
    """Time every setting, interleaved; print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--command", choices=("compare", "train"), default="compare")
    parser.add_argument("--products", action="store_true", help="time single products instead")
    args = parser.parse_args()
    cores = available_cores()
    print(describe())
    libraries = ", ".join(f"{i['internal_api']} {i['version']}" for i in blas_info())
    print(f"BLAS: {libraries or 'none found by threadpoolctl'}; load average {os.getloadavg()}")
    if args.products:
        _products(cores, args.rounds)
        return
    print(f"`dropkit {args.command} --quiet --epochs {args.epochs}`, {args.rounds} rounds\n")
    settings = _settings(cores)
    times: dict[str, list[float]] = {name: [] for name in settings}
    for r in range(args.rounds):
        for name, (variables, flags) in settings.items():
            times[name].append(_run(args.command, args.epochs, variables, flags))
            print(f"  round {r + 1}: {name:<24} {times[name][-1]:6.2f} s", flush=True)
    medians = {name: statistics.median(t) for name, t in times.items()}
    old, best = medians["old (no limit)"], min(medians.values())
    print(f"\n{'setting':<24} {'median s':>9} {'vs old':>7} {'vs best':>8}  all (s)")
    for name, median in medians.items():
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"{name:<24} {median:9.2f} {median / old:7.2f} {median / best:8.2f}  {runs}")
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
