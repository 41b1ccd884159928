"""dropkit on torch CPU tensors vs PyTorch's own dropout: speed, saved bytes, peak memory.

Run:  uv run python benchmarks/bench_torch.py [--repeats R]
Needs PyTorch (CPU wheel: ``uv pip install --find-links "$PIP_FIND_LINKS" torch==2.13.0``).

1. Speed, float32 (and bfloat16), training mode, p = 0.5: ``dropkit_torch.nn.Dropout``
   (the custom op on the NumPy backend's Numba kernel, zero-copy) against
   ``torch.nn.functional.dropout``, forward alone and forward + backward, and
   the same data as a NumPy array through ``dropkit.dropout``. The
   methods run in round-robin order, one call each per round, so machine noise
   hits them alike; the table gives medians and the median of the within-round
   ratios.
2. Bytes autograd saves for backward (``saved_tensors_hooks``): one dropout
   layer, dropkit vs ``nn.Dropout``.
3. Peak memory of forward + backward of a deep MLP with dropout after every
   hidden layer: each variant in its own fresh process (Linux), the peak RSS
   during the step (``VmHWM`` reset through ``/proc/self/clear_refs``) above the
   RSS before it, with glibc's large blocks always mmapped so that freed
   tensors leave the RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _speed(shape: tuple[int, int], dtype: object, repeats: int) -> None:
    import torch
    import torch.nn.functional as F  # noqa: N812
    from dropkit_torch import nn as dnn

    import dropkit

    x = torch.randn(shape).to(dtype)
    # the same data as a NumPy array, through the NumPy backend (float32 only)
    a = x.numpy() if dtype == torch.float32 else None
    gen = dropkit.Generator(0)
    xg = x.clone().requires_grad_()
    g = torch.ones_like(x)
    layer = dnn.Dropout(0.5)

    def fwd_bwd(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], object]:
        def run() -> None:
            xg.grad = None
            fn(xg).backward(g)

        return run

    methods = {
        "dropkit forward": lambda: layer(x),
        "F.dropout forward": lambda: F.dropout(x, 0.5, training=True),
        "dropkit forward+backward": fwd_bwd(layer),
        "F.dropout forward+backward": fwd_bwd(lambda t: F.dropout(t, 0.5, training=True)),
    }
    if a is not None:
        methods["dropkit on the NumPy array"] = lambda: dropkit.dropout(a, 0.5, rng=gen)
    for fn in methods.values():  # warm-up: kernels compiled, pages touched
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    name = f"{shape[0]}x{shape[1]} {str(dtype).removeprefix('torch.')}"
    for what in ("forward", "forward+backward"):
        ours, theirs = times[f"dropkit {what}"], times[f"F.dropout {what}"]
        ratio = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
        print(
            f"| {name} | {what} | {statistics.median(ours) * 1e6:.0f} | "
            f"{statistics.median(theirs) * 1e6:.0f} | {ratio:.2f} |"
        )
    if a is not None:
        on_numpy = times["dropkit on the NumPy array"]
        ratio = statistics.median(
            a / b for a, b in zip(times["dropkit forward"], on_numpy, strict=True)
        )
        print(
            f"| {name} | forward, NumPy array instead | {statistics.median(on_numpy) * 1e6:.0f} "
            f"| | tensor path / NumPy path: {ratio:.2f} |"
        )


def _saved_bytes() -> None:
    import torch
    from dropkit_torch import nn as dnn

    def saved(layer: torch.nn.Module, x: torch.Tensor) -> int:
        sizes: list[int] = []

        def pack(t: torch.Tensor) -> torch.Tensor:
            sizes.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            layer(x)
        return sum(sizes)

    x = torch.randn(4096, 4096, requires_grad=True)
    for label, layer in (
        ("dropkit_torch.nn.Dropout(0.5)", dnn.Dropout(0.5)),
        ("dropkit_torch.nn.Dropout(0.5, rng=0)", dnn.Dropout(0.5, rng=0)),
        ("torch.nn.Dropout(0.5)", torch.nn.Dropout(0.5)),
    ):
        print(f"| {label} | {saved(layer, x):,} |")


_PEAK_SCRIPT = r"""
import json, sys, torch
from dropkit_torch import nn as dnn
kind, width, depth, batch = sys.argv[1], *map(int, sys.argv[2:5])
torch.manual_seed(0)
drop = (lambda: dnn.Dropout(0.5)) if kind == "dropkit" else (lambda: torch.nn.Dropout(0.5))
layers = [torch.nn.Linear(width, width)]
for _ in range(depth - 1):
    layers += [torch.nn.ReLU(), drop(), torch.nn.Linear(width, width)]
model = torch.nn.Sequential(*layers)
x = torch.randn(batch, width)
for _ in range(2):  # warm-up: kernels, gradient buffers allocated
    model(x).sum().backward()
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS")
model(x).sum().backward()
print(json.dumps({"step_peak": status("VmHWM") - before}))
"""


def _peak_memory(width: int, depth: int, batch: int) -> None:
    # Large blocks always mmapped (no dynamic threshold): freed memory leaves the RSS
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    mb = {}
    for kind in ("dropkit", "torch"):
        out = subprocess.run(
            [sys.executable, "-c", _PEAK_SCRIPT, kind, str(width), str(depth), str(batch)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
        mb[kind] = json.loads(out.stdout.strip().splitlines()[-1])["step_peak"] / 2**20
    print(f"| dropkit_torch.nn.Dropout | {mb['dropkit']:.0f} |")
    print(f"| torch.nn.Dropout | {mb['torch']:.0f} |")
    print(f"ratio dropkit / torch: {mb['dropkit'] / mb['torch']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--large-repeats", type=int, default=9)
    parser.add_argument("--mlp", default="2048,6,2048", help="width,depth,batch of the MLP")
    args = parser.parse_args()

    import numpy as np
    import torch

    print(
        f"{cpu_model()}, {os.cpu_count()} cpus; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numpy {np.__version__}"
    )
    print("\n| input | pass | dropkit µs | F.dropout µs | dropkit / F.dropout |")
    print("|---|---|---:|---:|---:|")
    _speed((256, 512), torch.float32, args.repeats)
    _speed((4096, 4096), torch.float32, args.large_repeats)
    _speed((256, 512), torch.bfloat16, args.repeats)
    _speed((4096, 4096), torch.bfloat16, args.large_repeats)
    print("\n| layer, input 4096x4096 float32 | bytes saved for backward |")
    print("|---|---:|")
    _saved_bytes()
    width, depth, batch = (int(v) for v in args.mlp.split(","))
    print(
        f"\nPeak memory of one forward + backward, MLP {depth} x Linear({width}, {width}), "
        f"batch {batch}, ReLU + dropout(0.5) between layers, float32 (MiB above the RSS "
        "before the step)"
    )
    print("| dropout | peak MiB |\n|---|---:|")
    _peak_memory(width, depth, batch)


if __name__ == "__main__":
    main()
