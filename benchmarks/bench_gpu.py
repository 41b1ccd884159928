"""Dropout on the GPU: dropkit's CuPy kernels vs the device's copy and PyTorch CUDA.

Every GPU ratio of issue 12, measured in one process, methods interleaved
round by round, medians:

1. large arrays (default 2**28 elements) in float32, float16 and bfloat16:
   dropkit forward, backward (mask regenerated), ReLU variant and in place on
   CuPy arrays, and the same op on torch CUDA tensors (the custom op running
   the CuPy kernels through DLPack), each as a ratio to the device copy of the
   same bytes and to PyTorch's ``F.dropout`` (CUDA events; targets: <= 1.10x
   copy, <= 0.75x ``F.dropout``);
2. the per-call cost on (256, 800) float32: wall clock per call of a loop
   (target: <= 1.25x ``F.dropout``), with a bare CuPy element-wise launch;
3. one training step (forward, backward, SGD with momentum; batch 256, dropout
   0.5 on both hidden layers) of 3072-2000-800-10 and 40-512-256-10, dropkit on
   CuPy vs the same model in PyTorch CUDA eager (wall clock per step, device
   synchronised; target: <= 1.0x).

Part of benchmarks/gpu_check.sh. Run:  python benchmarks/bench_gpu.py [--size N]
Needs CuPy, a CUDA GPU and dropkit-cupy; PyTorch (CUDA) for the PyTorch rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import numpy as np

import dropkit


def _require_gpu() -> Any:
    """CuPy with a CUDA device and the dropkit cupy backend, or exit (status 1) with the reason."""
    try:
        import cupy
    except ImportError as exc:
        sys.exit(f"bench_gpu.py needs CuPy and a CUDA GPU: CuPy is not installed ({exc})")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        sys.exit(f"bench_gpu.py needs a CUDA GPU: CuPy finds no usable device ({exc})")
    if count < 1:
        sys.exit("bench_gpu.py needs a CUDA GPU: no device found")
    info = {b.name: b for b in dropkit.list_backends()}.get("cupy")
    if info is None or not info.available:
        reason = info.reason if info is not None else "dropkit-cupy is not installed"
        sys.exit(f"bench_gpu.py needs the dropkit cupy backend: {reason}")
    return cupy


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        print("torch not installed: PyTorch rows skipped")
        return None
    if not torch.cuda.is_available():
        print("torch has no CUDA: PyTorch rows skipped")
        return None
    try:
        import dropkit_torch  # noqa: F401 (registers the custom op)
    except ImportError as exc:
        print(f"dropkit_torch not importable ({exc}): torch-tensor rows skipped")
    return torch


def _event_timer(cupy: Any) -> Callable[[Callable[[], object]], float]:
    def timed(fn: Callable[[], object]) -> float:
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(start, end) * 1e-3

    return timed


def _interleaved(
    methods: dict[str, Callable[[], object]], timer: Callable[[Callable[[], object]], float], rounds
) -> dict[str, float]:
    for name, fn in list(methods.items()):  # warm-up: compile, allocate
        try:
            fn()
            fn()
        except Exception as exc:  # one failing method must not hide the others' rows
            print(f"| {name} | FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:160]} |")
            del methods[name]
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, fn in methods.items():
            times[name].append(timer(fn))
    return {name: statistics.median(v) for name, v in times.items()}


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def large_arrays(cupy: Any, torch: Any, n: int, rounds: int, p: float) -> None:
    """Section 1: bandwidth-bound forward/backward/ReLU/in-place vs copy and F.dropout."""
    timer = _event_timer(cupy)
    print(f"\n## 1. {n} elements, p={p}: CUDA events, median of {rounds} interleaved rounds")
    print("| dtype | method | median ms | GB/s | x copy | x F.dropout |")
    print("|---|---|---:|---:|---:|---:|")
    F = torch.nn.functional if torch is not None else None
    for dtype in ("float32", "float16", "bfloat16"):
        methods: dict[str, Callable[[], object]] = {}
        keep: list[Any] = []
        itemsize = 4 if dtype == "float32" else 2
        cupy_dtype = _cupy_dtype(dtype)
        if cupy_dtype is not None:
            x = cupy.random.default_rng(0).standard_normal(n, dtype=cupy.float32).astype(cupy_dtype)
            g, out, buf = cupy.ones_like(x), cupy.empty_like(x), x.copy()
            gen = dropkit.Generator(0)
            keep += [x, g, out, buf]
            methods["copy (cupy)"] = lambda x=x, out=out: cupy.copyto(out, x)
            methods["dropkit forward (cupy)"] = lambda x=x, gen=gen: dropkit.dropout(x, p, rng=gen)
            methods["dropkit backward, regenerated (cupy)"] = lambda g=g: dropkit.dropout_backward(
                g, p, rng=7
            )
            methods["dropkit relu_dropout (cupy)"] = lambda x=x, gen=gen: dropkit.relu_dropout(
                x, p, rng=gen
            )
            methods["dropkit in place (cupy)"] = lambda b=buf, gen=gen: dropkit.dropout(
                b, p, rng=gen, inplace=True
            )
        else:
            print(f"| {dtype} | CuPy arrays | n/a | | | (this CuPy has no {dtype}) |")
        if torch is not None:
            tdt = getattr(torch, dtype)
            xt = torch.randn(n, device="cuda").to(tdt)
            gt, yt, bt = torch.ones_like(xt), torch.empty_like(xt), xt.clone()
            keep += [xt, gt, yt, bt]
            methods["copy (torch)"] = lambda xt=xt, yt=yt: yt.copy_(xt)
            methods["F.dropout"] = lambda xt=xt: F.dropout(xt, p, training=True)
            methods["F.dropout in place"] = lambda bt=bt: F.dropout(bt, p, True, inplace=True)
            if "dropkit_torch" in sys.modules:
                methods["dropkit forward (torch tensor)"] = lambda xt=xt: dropkit.dropout(
                    xt, p, rng=7
                )
                methods["dropkit backward (torch tensor)"] = lambda gt=gt: dropkit.dropout_backward(
                    gt, p, rng=7
                )
                methods["dropkit relu_dropout (torch tensor)"] = lambda xt=xt: dropkit.relu_dropout(
                    xt, p, rng=7
                )
                methods["dropkit in place (torch tensor)"] = lambda bt=bt: dropkit.dropout(
                    bt, p, rng=7, inplace=True
                )
        if not methods:
            continue
        med = _interleaved(methods, timer, rounds)
        copy = med.get("copy (cupy)", med.get("copy (torch)"))
        ref = med.get("F.dropout")
        for name, t in med.items():
            gbs = 2 * n * itemsize / t / 1e9
            print(
                f"| {dtype} | {name} | {t * 1e3:.3f} | {gbs:.0f} | {_ratio(t, copy)} | "
                f"{_ratio(t, ref)} |"
            )
        del keep, methods
        cupy.get_default_memory_pool().free_all_blocks()
        if torch is not None:
            torch.cuda.empty_cache()


def _cupy_dtype(name: str) -> Any:
    if name != "bfloat16":
        return name
    try:
        import cupy
        import ml_dtypes

        cupy.zeros(1, dtype=ml_dtypes.bfloat16)
    except Exception:
        return None
    return ml_dtypes.bfloat16


def per_call(cupy: Any, torch: Any, rounds: int, calls: int, p: float) -> None:
    """Section 2: wall clock per call on (256, 800) float32 (host-side cost included)."""
    x = cupy.random.default_rng(0).standard_normal((256, 800), dtype=cupy.float32)
    gen = dropkit.Generator(0)
    methods: dict[str, Callable[[], object]] = {
        "dropkit.dropout (cupy)": lambda: dropkit.dropout(x, p, rng=gen),
        "bare CuPy element-wise (x * 2)": lambda: x * 2,
    }
    if torch is not None:
        xt = torch.randn(256, 800, device="cuda")
        methods["F.dropout"] = lambda: torch.nn.functional.dropout(xt, p, training=True)
        if "dropkit_torch" in sys.modules:
            methods["dropkit.dropout (torch tensor)"] = lambda: dropkit.dropout(xt, p, rng=7)

    def timer(fn: Callable[[], object]) -> float:
        cupy.cuda.Device().synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        cupy.cuda.Device().synchronize()
        return (time.perf_counter() - start) / calls

    med = _interleaved(methods, timer, rounds)
    ref = med.get("F.dropout")
    print(f"\n## 2. per call, (256, 800) float32: wall clock of {calls} calls, median of {rounds}")
    print("| method | median us per call | x F.dropout |\n|---|---:|---:|")
    for name, t in med.items():
        print(f"| {name} | {t * 1e6:.1f} | {_ratio(t, ref)} |")


def _dropkit_step(cupy: Any, sizes: list[int], batch: int) -> Callable[[], None]:
    from dropkit.experiment.nn import MLP, softmax_cross_entropy
    from dropkit.experiment.optim import SGD
    from dropkit.experiment.plugins import new_plugin_manager, sgd_kernel

    backend = dropkit.get_backend("cupy")
    xp = backend.xp
    net = MLP(sizes, backend=backend, rng=dropkit.Generator(0), p_hidden=0.5)
    kernel = sgd_kernel(new_plugin_manager(), xp)  # the application's fused step, if offered
    opt = SGD(
        xp, net.params, momentum=0.9, weight_decay=1e-3, decay=net.decay_mask(), kernel=kernel
    )
    rs = cupy.random.default_rng(0)
    x = rs.standard_normal((batch, sizes[0]), dtype=cupy.float32)
    y = rs.integers(0, sizes[-1], batch)

    def step() -> None:
        _, dlogits = softmax_cross_entropy(xp, net.forward(x, training=True), y)
        opt.step(net.backward(dlogits), 1e-3)

    return step


def _torch_step(torch: Any, sizes: list[int], batch: int) -> Callable[[], None]:
    torch.manual_seed(0)
    layers = [torch.nn.Linear(a, b) for a, b in pairwise(sizes)]
    parts: list[Any] = []
    for i, layer in enumerate(layers):
        parts.append(layer)
        if i < len(layers) - 1:
            parts += [torch.nn.ReLU(), torch.nn.Dropout(0.5)]
    model = torch.nn.Sequential(*parts).cuda()
    weights = [lin.weight for lin in layers]
    biases = [lin.bias for lin in layers]
    opt = torch.optim.SGD(
        [{"params": weights, "weight_decay": 1e-3}, {"params": biases, "weight_decay": 0.0}],
        lr=1e-3,
        momentum=0.9,
    )
    x = torch.randn(batch, sizes[0], device="cuda")
    y = torch.randint(0, sizes[-1], (batch,), device="cuda")
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def training_step(cupy: Any, torch: Any, rounds: int, batch: int) -> None:
    """Section 3: one training step, wall clock with the device synchronised after it."""

    def timer(fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        fn()
        cupy.cuda.Device().synchronize()
        return time.perf_counter() - start

    print(f"\n## 3. one training step, batch {batch}: wall clock, median of {rounds} steps")
    print("| net | method | median ms | x PyTorch CUDA eager |\n|---|---|---:|---:|")
    for sizes in ([3072, 2000, 800, 10], [40, 512, 256, 10]):
        methods: dict[str, Callable[[], object]] = {
            "dropkit on CuPy": _dropkit_step(cupy, sizes, batch)
        }
        if torch is not None:
            methods["PyTorch CUDA eager"] = _torch_step(torch, sizes, batch)
        med = _interleaved(methods, timer, rounds)
        ref = med.get("PyTorch CUDA eager")
        for name, t in med.items():
            print(f"| {'-'.join(map(str, sizes))} | {name} | {t * 1e3:.3f} | {_ratio(t, ref)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1 << 28, help="elements of section 1")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=1000, help="calls per round, section 2")
    parser.add_argument("--steps", type=int, default=40, help="steps timed, section 3")
    parser.add_argument("--p", type=float, default=0.5)
    args = parser.parse_args()
    cupy = _require_gpu()
    torch = _torch()
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    versions = f"cupy {cupy.__version__}, numpy {np.__version__}"
    if torch is not None:
        versions += f", torch {torch.__version__} (CUDA {torch.version.cuda})"
    print(f"{name}, {props['multiProcessorCount']} SMs; {versions}")
    large_arrays(cupy, torch, args.size, args.rounds, args.p)
    per_call(cupy, torch, args.rounds, args.calls, args.p)
    training_step(cupy, torch, args.steps, 256)


if __name__ == "__main__":
    main()
