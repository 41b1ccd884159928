"""What the first dropout call of a process costs: compiling the kernels vs loading them.

Each case runs in a fresh Python process. "cold" points NUMBA_CACHE_DIR at an
empty folder, so the kernels are compiled (what the very first use on a
machine pays); "warm" uses the cache that the cold run just filled (what every
later process pays). Run:  uv run python benchmarks/bench_first_call.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

PROBE = """
import time
t0 = time.perf_counter()
import numpy as np, dropkit
t1 = time.perf_counter()
x = np.ones((256, 2000), np.float32)
dropkit.dropout(x, 0.5, rng=0)
t2 = time.perf_counter()
dropkit.dropout(x, 0.5, rng=1)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def run(cache_dir: str) -> list[float]:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout
    return [float(v) for v in out.split()]


def main() -> None:
    rows = {"cold (compile)": [], "warm (cached)": []}
    for _ in range(3):
        with tempfile.TemporaryDirectory() as cache:
            rows["cold (compile)"].append(run(cache))
            rows["warm (cached)"].append(run(cache))
    print("| process | import s | first dropout s | second dropout ms |\n|---|---:|---:|---:|")
    for name, runs in rows.items():
        imp, first, second = (statistics.median(col) for col in zip(*runs, strict=True))
        print(f"| {name} | {imp:.2f} | {first:.2f} | {second * 1e3:.2f} |")


if __name__ == "__main__":
    main()
