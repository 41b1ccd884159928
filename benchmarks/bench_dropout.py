"""Dropout forward on 16M float32 elements, side by side in one run.

Run:  uv run python benchmarks/bench_dropout.py [--size N] [--repeats R]
Optional: PyTorch CPU (``uv pip install --find-links "$PIP_FIND_LINKS" torch==2.13.0``).

Every method is timed in round-robin order (one call of each per round) so
machine noise hits them alike; the table gives medians and ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
from dropkit_numpy._philox_numpy import random_bits_numpy

import dropkit


def _methods(x: np.ndarray, p: float) -> dict[str, Callable[[], object]]:
    keep = 1.0 - p
    gen = dropkit.Generator(0)
    threshold = dropkit.keep_threshold(p)
    out = np.empty_like(x)
    pcg = np.random.default_rng(0)
    x4 = x.reshape(64, 1024, 16, 16)
    x4l = x.reshape(64, 16, 16, 1024)
    methods: dict[str, Callable[[], object]] = {
        "memcpy (np.copyto)": lambda: np.copyto(out, x),
        "dropkit.dropout (numpy backend)": lambda: dropkit.dropout(x, p, rng=gen),
        "dropkit, pure-NumPy kernels": lambda: np.where(
            random_bits_numpy(*gen.draw(), x.size).reshape(x.shape) >= threshold,
            x * np.float32(1 / keep),
            np.float32(0),
        ),
        "article: ranf < keep, divide, multiply": lambda: (
            x * ((np.random.ranf(x.shape) < keep) / keep)
        ),
        "NumPy PCG64 raw bits alone, no dropout (native bits)": lambda: pcg.integers(
            0, 2**32, x.shape, dtype=np.uint32
        ),
        "dropout with NumPy PCG64 bits (not portable)": lambda: np.where(
            pcg.integers(0, 2**32, x.shape, dtype=np.uint32) >= threshold,
            x * np.float32(1 / keep),
            np.float32(0),
        ),
        "dropkit.dropout2d, (64, 1024, 16, 16)": lambda: dropkit.dropout2d(x4, p, rng=gen),
        "dropkit.dropout2d, channels last (64, 16, 16, 1024)": lambda: dropkit.dropout2d(
            x4l, p, rng=gen, channel_axis=-1
        ),
        "dropout2d, generic where over the broadcast mask": lambda: np.where(
            dropkit.dropout_mask((64, 1024, 1, 1), p, rng=gen), x4 * np.float32(1 / keep), 0
        ),
    }
    try:
        import torch
        import torch.nn.functional as F  # noqa: N812
    except ImportError:
        print("torch not installed: PyTorch row skipped")
    else:
        xt = torch.from_numpy(x)
        methods["PyTorch CPU F.dropout"] = lambda: F.dropout(xt, p, training=True)
        xt4 = xt.reshape(64, 1024, 16, 16)
        methods["PyTorch CPU F.dropout2d"] = lambda: F.dropout2d(xt4, p, training=True)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    return methods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1 << 24)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--p", type=float, default=0.5)
    args = parser.parse_args()

    x = np.random.default_rng(0).standard_normal(args.size, dtype=np.float32)
    methods = _methods(x, args.p)
    backend = dropkit.get_backend("numpy")
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, numpy "
        f"{np.__version__}, dropkit numpy kernels={backend.kernels}; "
        f"{args.size} float32, p={args.p}"
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
    torch_t = med.get("PyTorch CPU F.dropout")
    header = "| method | median ms | x memcpy | x PyTorch |"
    print(header + "\n|---|---:|---:|---:|")
    for name, t in med.items():
        vs_torch = f"{t / torch_t:.3f}" if torch_t else "n/a"
        print(f"| {name} | {t * 1e3:.1f} | {t / base:.2f} | {vs_torch} |")


if __name__ == "__main__":
    main()
