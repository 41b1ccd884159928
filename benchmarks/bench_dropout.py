"""Dropout forward, per call (256, 512) and 16M float32 elements, side by side in one run.

Run:  uv run python benchmarks/bench_dropout.py [--size N] [--repeats R] [--calls C]
Optional: PyTorch CPU (``uv pip install --find-links "$PIP_FIND_LINKS" torch==2.13.0``).

Two tables, each against the same references: memcpy (``np.copyto``, the
memory limit), a plain multiply ``x * 2`` (the cost of any one-pass
element-wise NumPy call, Python overhead included), dropkit, and PyTorch
``F.dropout``. Every method is timed in round-robin order (one call of each per
round) so machine noise hits them alike; the tables give medians and ratios.
The first line names the CPU model and the vector width the kernels compile for.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numba
import numpy as np
from dropkit_numpy._philox_numpy import random_bits_numpy
from machine import describe

import dropkit

try:
    import torch
    import torch.nn.functional as F  # noqa: N812
except ImportError:
    torch = None


def _methods(x: np.ndarray, p: float) -> dict[str, Callable[[], object]]:
    keep = 1.0 - p
    gen = dropkit.Generator(0)
    threshold = dropkit.keep_threshold(p)
    pcg = np.random.default_rng(0)
    methods: dict[str, Callable[[], object]] = {
        **_core(x, p, gen),
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
    }
    if x.size % (1024 * 256) == 0:  # channel dropout on (N, 1024, 16, 16) maps
        n = x.size // (1024 * 256)
        x4 = x.reshape(n, 1024, 16, 16)
        x4l = x.reshape(n, 16, 16, 1024)
        methods[f"dropkit.dropout2d, {x4.shape}"] = lambda: dropkit.dropout2d(x4, p, rng=gen)
        methods[f"dropkit.dropout2d, channels last {x4l.shape}"] = lambda: dropkit.dropout2d(
            x4l, p, rng=gen, channel_axis=-1
        )
        methods["dropout2d, generic where over the broadcast mask"] = lambda: np.where(
            dropkit.dropout_mask((n, 1024, 1, 1), p, rng=gen), x4 * np.float32(1 / keep), 0
        )
        if torch is not None:
            xt4 = torch.from_numpy(x).reshape(n, 1024, 16, 16)
            methods["PyTorch CPU F.dropout2d"] = lambda: F.dropout2d(xt4, p, training=True)
    return methods


def _core(x: np.ndarray, p: float, gen: dropkit.Generator) -> dict[str, Callable[[], object]]:
    """The rows of both tables: memcpy, multiply, dropkit (API and kernel), PyTorch."""
    out = np.empty_like(x)
    two = x.dtype.type(2)
    backend = dropkit.get_backend("numpy")
    threshold, scale = dropkit.keep_threshold(p), 1 / (1 - p)
    rows: dict[str, Callable[[], object]] = {
        "memcpy (np.copyto)": lambda: np.copyto(out, x),
        "plain multiply x * 2 (NumPy)": lambda: x * two,
        "dropkit.dropout (numpy backend)": lambda: dropkit.dropout(x, p, rng=gen),
        "dropkit fused kernel alone": lambda: backend.mask_scale(
            x, (1, 2), noise_shape=x.shape, threshold=threshold, scale=scale
        ),
        # into a preallocated array, as memcpy writes (no page faults of a fresh output)
        "dropkit fused kernel, preallocated output": lambda: backend.mask_scale(
            x, (1, 2), noise_shape=x.shape, threshold=threshold, scale=scale, out=out
        ),
    }
    if torch is not None:
        xt = torch.from_numpy(x)
        rows["PyTorch CPU F.dropout"] = lambda: F.dropout(xt, p, training=True)
    return rows


def _table(
    title: str, methods: dict[str, Callable[[], object]], repeats: int, block: int = 1
) -> None:
    """Time ``repeats`` rounds; a round runs each method ``block`` times in a row.

    With ``block > 1`` the first call of each block is not counted: another
    library's worker threads (PyTorch's OpenMP pool spins after each parallel
    op) slow the call that follows them, which is not the cost of that call.
    """
    for fn in methods.values():  # warm-up: compiled kernels, page faults
        fn()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            for i in range(block):
                start = time.perf_counter()
                fn()
                if i or block == 1:
                    times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    base = med["memcpy (np.copyto)"]
    mul = med["plain multiply x * 2 (NumPy)"]
    torch_t = med.get("PyTorch CPU F.dropout")
    unit, factor = ("us", 1e6) if base < 1e-3 else ("ms", 1e3)
    calls = f"{repeats} rounds" if block == 1 else f"{repeats} rounds of {block} calls"
    print(f"\n{title}, median of {calls}")
    print(f"| method | median {unit} | x memcpy | x multiply | x PyTorch |")
    print("|---|---:|---:|---:|---:|")
    for name, t in med.items():
        vs_torch = f"{t / torch_t:.3f}" if torch_t else "n/a"
        print(f"| {name} | {t * factor:.1f} | {t / base:.2f} | {t / mul:.2f} | {vs_torch} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1 << 24, help="elements of the large array")
    parser.add_argument("--repeats", type=int, default=15, help="rounds for the large array")
    parser.add_argument("--calls", type=int, default=50, help="rounds for the (256, 512) one")
    parser.add_argument("--p", type=float, default=0.5)
    args = parser.parse_args()

    backend = dropkit.get_backend("numpy")
    print(
        f"{describe()}; numpy {np.__version__}, numba {numba.__version__}; "
        f"dropkit numpy kernels={backend.kernels}; p={args.p}"
    )
    if torch is not None:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    else:
        print("torch not installed: PyTorch rows skipped")
    gen = dropkit.Generator(0)
    small = np.random.default_rng(0).standard_normal((256, 512), dtype=np.float32)
    _table("Per call, (256, 512) float32", _core(small, args.p, gen), args.calls, block=41)
    x = np.random.default_rng(0).standard_normal(args.size, dtype=np.float32)
    _table(f"{args.size} float32", _methods(x, args.p), args.repeats)


if __name__ == "__main__":
    main()
