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

Run:  uv run python benchmarks/bench_threads.py [--epochs 20] [--rounds 3] [--command compare]
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


def main() -> None:
    """Time every setting, interleaved; print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--command", choices=("compare", "train"), default="compare")
    args = parser.parse_args()
    cores = available_cores()
    print(describe())
    libraries = ", ".join(f"{i['internal_api']} {i['version']}" for i in blas_info())
    print(f"BLAS: {libraries or 'none found by threadpoolctl'}; load average {os.getloadavg()}")
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
