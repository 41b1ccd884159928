"""The dropout family's generic array-API path against memory speed, side by side in one run.

Run:  uv run python benchmarks/bench_family.py [--size N] [--repeats R]
Optional: PyTorch CPU for the torch rows
(``uv pip install --find-links "$PIP_FIND_LINKS" torch==2.13.0``).

Every method is timed in round-robin order (one call of each per round) so
machine noise hits them alike; the table gives medians and the ratio to a
copy of the input (``np.copyto``: one read and one write, the floor of any
op that makes a new array). ``dropkit.dropout`` (the NumPy backend's fused
kernel) is the reference of what a fused kernel gives; the Philox words
alone (``random_bits``) are the floor of any op that draws one word per unit.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

import dropkit


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _methods(x: np.ndarray, p: float) -> dict[str, Callable[[], object]]:
    gen = dropkit.Generator(0)
    out = np.empty_like(x)
    b = dropkit.get_backend("numpy")
    n = x.size
    side = 32
    img = x.reshape(-1, 16, side, side)
    pcg = np.random.default_rng(0)
    methods: dict[str, Callable[[], object]] = {
        "memcpy (np.copyto)": lambda: np.copyto(out, x),
        "Philox words alone (numpy backend random_bits)": lambda: b.random_bits(gen.draw(), n),
        "dropkit.dropout (fused kernel)": lambda: dropkit.dropout(x, p, rng=gen),
        "dropkit.drop_path (dropout, noise (N, 1, 1, 1))": lambda: dropkit.drop_path(
            img, p, rng=gen
        ),
        "dropkit.alpha_dropout": lambda: dropkit.alpha_dropout(x, p, rng=gen),
        "dropkit.gaussian_dropout": lambda: dropkit.gaussian_dropout(x, p, rng=gen),
        "dropkit.gaussian_noise": lambda: dropkit.gaussian_noise(x, 0.1, rng=gen),
        "dropkit.dropblock2d block 3": lambda: dropkit.dropblock2d(img, 0.1, block_size=3, rng=gen),
        "dropkit.dropblock2d block 7": lambda: dropkit.dropblock2d(img, 0.1, block_size=7, rng=gen),
        "NumPy PCG64 normals alone (rng.standard_normal, float32)": lambda: pcg.standard_normal(
            n, dtype=np.float32
        ),
    }
    try:
        import torch
        import torch.nn.functional as F  # noqa: N812
    except ImportError:
        print("torch not installed: PyTorch rows skipped")
    else:
        xt = torch.from_numpy(x)
        methods["PyTorch CPU F.alpha_dropout"] = lambda: F.alpha_dropout(xt, p, training=True)
        methods["PyTorch CPU x * (1 + s randn) (Gaussian dropout)"] = lambda: (
            xt * (1 + (p / (1 - p)) ** 0.5 * torch.randn_like(xt))
        )
        methods["dropkit.gaussian_dropout on a torch tensor"] = lambda: dropkit.gaussian_dropout(
            xt, p, rng=gen
        )
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    return methods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1 << 22)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--p", type=float, default=0.2)
    args = parser.parse_args()

    x = np.random.default_rng(0).standard_normal(args.size, dtype=np.float32)
    methods = _methods(x, args.p)
    print(
        f"{_cpu()}, {os.cpu_count()} cpus, numpy {np.__version__}; "
        f"{args.size} float32, p={args.p}, {args.repeats} rounds"
    )
    for fn in methods.values():  # warm-up: compiled kernels, page faults
        fn()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)

    med = {name: statistics.median(t) for name, t in times.items()}
    base = med["memcpy (np.copyto)"]
    print("| method | median ms | x memcpy |\n|---|---:|---:|")
    for name, t in med.items():
        print(f"| {name} | {t * 1e3:.1f} | {t / base:.1f} |")


if __name__ == "__main__":
    main()
