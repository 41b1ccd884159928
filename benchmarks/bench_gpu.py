"""Dropout on the GPU: dropkit's CuPy kernels vs PyTorch CUDA and the copy bandwidth.

Forward and backward (mask regenerated from the generator state) on float32
and float16, timed with CUDA events, methods interleaved round by round;
medians, effective GB/s (bytes read + written) and ratios. Part of
benchmarks/gpu_check.sh. Run:  python benchmarks/bench_gpu.py [--size N]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import cupy

import dropkit


def _timer(fn: Callable[[], object]) -> float:
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    fn()
    end.record()
    end.synchronize()
    return cupy.cuda.get_elapsed_time(start, end) * 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1 << 27)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    n, p = args.size, 0.5
    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    print(f"{props['name'].decode()}, cupy {cupy.__version__}, {n} elements, p={p}")
    try:
        import torch
        import torch.nn.functional as F  # noqa: N812
    except ImportError:
        torch = None
        print("torch not installed: PyTorch rows skipped")
    rows = []
    for dtype in ("float32", "float16"):
        x = cupy.random.default_rng(0).standard_normal(n, dtype=cupy.float32).astype(dtype)
        g = cupy.ones_like(x)
        out = cupy.empty_like(x)
        gen = dropkit.Generator(0)
        methods: dict[str, Callable[[], object]] = {
            "copy (cupy.copyto)": lambda x=x, out=out: cupy.copyto(out, x),
            "dropkit forward": lambda x=x, gen=gen: dropkit.dropout(x, p, rng=gen),
            "dropkit backward (regenerated mask)": lambda g=g: dropkit.dropout_backward(
                g, p, rng=7
            ),
        }
        if torch is not None:
            xt = torch.as_tensor(x, device="cuda")
            gt = torch.ones_like(xt)
            _, mask = torch.native_dropout(xt, p, True)
            methods["PyTorch F.dropout forward"] = lambda xt=xt: F.dropout(xt, p, training=True)
            methods["PyTorch dropout backward (stored mask)"] = lambda gt=gt, mask=mask: (
                torch.ops.aten.native_dropout_backward(gt, mask, 2.0)
            )
        for fn in methods.values():
            fn()
        times: dict[str, list[float]] = {k: [] for k in methods}
        for _ in range(args.repeats):
            for name, fn in methods.items():
                times[name].append(_timer(fn))
        med = {k: statistics.median(v) for k, v in times.items()}
        moved = 2 * n * x.itemsize  # one read, one write
        for name, t in med.items():
            rows.append(
                (
                    dtype,
                    name,
                    t,
                    moved / t / 1e9,
                    med["copy (cupy.copyto)"] / t,
                    t / med[f"PyTorch F.dropout {'forward'}"] if torch else None,
                )
            )
        del x, g, out
        cupy.get_default_memory_pool().free_all_blocks()
    print("| dtype | method | median us | GB/s | x copy bandwidth | time x PyTorch fwd |")
    print("|---|---|---:|---:|---:|---:|")
    for dtype, name, t, gbs, frac, vs in rows:
        vs_text = f"{vs:.2f}" if vs is not None else "n/a"
        print(f"| {dtype} | {name} | {t * 1e6:.1f} | {gbs:.0f} | {frac:.2f} | {vs_text} |")


if __name__ == "__main__":
    main()
