"""GPU check of torch's direct CUDA path (NVRTC + driver launch); for benchmarks/gpu_check.sh.

Run on a machine with a CUDA GPU and torch built for CUDA:

    uv run python benchmarks/_gpu_torch_cuda.py

Checks (an AssertionError names the first that fails), then prints timings:

1. the engine of cuda:0 is the direct launcher (not CuPy, not torch operations);
   the first compilation prints its notice, a fresh process reads the cubin
   from the disk cache and prints none;
2. bit for bit: every dtype (float32, float64, float16, bfloat16), with and
   without ReLU, contiguous, strided, in place, tails (n % 4 != 0), misaligned
   views (the scalar path), a seed tensor on the GPU, against the torch
   operations path (``_op.CUDA_KERNELS = False``) and, for float32 and
   float64, against the NumPy backend; channel dropout (the mask kernel),
   words, and the ReLU-dropout backward;
3. the kernels run on torch's current stream: a side stream busy with
   ``torch.cuda._sleep`` and then writing ``x`` must see the dropout read the
   written ``x``;
4. a CUDA graph captures the launch (seed on the GPU) and replays it; the
   public call with ``rng=None`` (the route without the dispatcher, the seed
   drawn on the GPU) is captured too, each replay draws a new mask, and the
   dispatcher was not used for it;
5. per call, (8, 8) and (256, 800) float32, interleaved medians with CUDA
   synchronisation per loop: ``F.dropout``, dropkit on the direct engine, and
   dropkit on the CuPy engine where CuPy is installed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import timeit

os.environ.setdefault("DROPKIT_CACHE_DIR", tempfile.mkdtemp(prefix="dropkit-cache-"))

import numpy as np
import torch
from dropkit_torch import _nvrtc, _op, cuda

import dropkit

DEV = torch.device("cuda", 0)
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def _bits(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().view(-1).view(torch.uint8).cpu().numpy()


def _both(fn):  # the direct engine, then the torch operations
    got = fn()
    _op.CUDA_KERNELS = False
    try:
        want = fn()
    finally:
        _op.CUDA_KERNELS = True
    return got, want


def check_engine() -> None:
    engine = cuda.engine(0)
    assert type(engine) is _nvrtc.Launcher, f"cuda:0 engine is {engine!r}"
    code = "import torch; from dropkit_torch import cuda; print(type(cuda.engine(0)).__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "Launcher", done.stdout + done.stderr
    assert "compiling" not in done.stderr, f"the cubin was not read from the cache: {done.stderr}"
    print("1. engine: direct launcher; a second process read the cubin from the disk cache")


def check_bits() -> None:
    gen = torch.Generator(device=DEV).manual_seed(0)
    seed = torch.tensor([5, 0, 7, 0], device=DEV)
    t, scale = dropkit.keep_threshold(0.3), 1 / 0.7
    for dtype in DTYPES:
        for n in (37 * 11, (1 << 20) + 3):
            base = torch.randn(n + 1, generator=gen, device=DEV).to(dtype)
            base[:4] = torch.tensor([float("nan"), float("inf"), -0.0, 1e-45])
            for x in (base[:n], base[1:]):  # aligned, then misaligned (scalar path)
                for relu in (False, True):
                    got, want = _both(
                        lambda x=x, r=relu, n=n: _op.dropout_op(x, seed, [n], t, scale, r)
                    )
                    assert (_bits(got) == _bits(want)).all(), (dtype, n, relu)
                    m = x.reshape(-1, 1)[: (n // 8) * 8].reshape(-1, 8).T  # strided
                    got, want = _both(
                        lambda m=m, r=relu: _op.dropout_op(m, seed, list(m.shape), t, scale, r)
                    )
                    assert (_bits(got) == _bits(want)).all(), (dtype, "strided", relu)
            inplace = base.clone()
            _op.dropout_inplace_op(inplace, seed, [n + 1], t, scale, False)
            want = _op.dropout_op(base, seed, [n + 1], t, scale, False)
            assert (_bits(inplace) == _bits(want)).all(), (dtype, "in place")
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(1001, 7, generator=gen, device=DEV).to(dtype)
        got = dropkit.dropout(x, 0.5, rng=11)
        want = dropkit.dropout(x.cpu().numpy(), 0.5, rng=11)
        assert (got.cpu().numpy() == want).all(), (dtype, "NumPy backend")
    x = torch.randn(4, 6, 5, 5, generator=gen, device=DEV)
    got, want = _both(lambda: dropkit.dropout2d(x, 0.5, rng=3))
    assert (_bits(got) == _bits(want)).all(), "channel dropout"
    got, want = _both(lambda: _op.words(3, 4, 1001, DEV, offset=5))
    assert torch.equal(got, want), "words"
    for dtype in DTYPES:
        leaf = torch.randn(300, 7, generator=gen, device=DEV).to(dtype)

        def grad(leaf=leaf, dtype=dtype):
            x = leaf.clone().requires_grad_(True)
            h = _op.dropout_op(x, seed, list(x.shape), t, 2.0, True)
            h.backward(torch.linspace(-3, 3, x.numel(), device=DEV).reshape(x.shape).to(dtype))
            return x.grad

        got, want = _both(grad)
        assert (_bits(got) == _bits(want)).all(), (dtype, "ReLU backward")
    print("2. bit for bit: every dtype, layout, seed on the GPU, channels, words, backward")


def check_stream() -> None:
    x = torch.zeros(1 << 22, device=DEV)
    seed = torch.tensor([1, 0, 0, 0], device=DEV)
    side = torch.cuda.Stream()
    torch.cuda.synchronize()
    with torch.cuda.stream(side):
        torch.cuda._sleep(200_000_000)  # the side stream is busy, then writes x
        x.fill_(1.0)
        y = _op.dropout_op(x, seed, [x.numel()], 2**31, 2.0, False)
    side.synchronize()
    assert float(y.max()) == 2.0, "the kernel did not run after the side stream's write"
    print("3. stream: the launch was ordered on torch's current (side) stream")


def check_graph() -> None:
    x = torch.randn(4096, device=DEV)
    seed = torch.tensor([9, 0, 2, 0], device=DEV)
    eager = _op.dropout_op(x, seed, [4096], 2**31, 2.0, False)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = _op.dropout_op(x, seed, [4096], 2**31, 2.0, False)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured, eager), "graph replay differs from the eager call"
    # the public call, rng=None: no dispatcher (unwatched_cuda), the seed drawn on the GPU
    ones = torch.ones(4096, device=DEV)
    assert _op.unwatched_cuda(ones), "a plain CUDA tensor should skip the dispatcher"
    dispatched = []
    raw = _op._RAW
    _op._RAW = lambda *args: dispatched.append(args) or raw(*args)
    try:
        dropkit.dropout(ones, 0.5)  # warm-up outside the capture
        public = torch.cuda.CUDAGraph()
        with torch.cuda.graph(public):
            drawn = dropkit.dropout(ones, 0.5)
        masks = []
        for _ in range(2):
            public.replay()
            torch.cuda.synchronize()
            masks.append(drawn.clone())
    finally:
        _op._RAW = raw
    assert not dispatched, "the public call on a CUDA tensor went through the dispatcher"
    assert not torch.equal(masks[0], masks[1]), "rng=None replayed the same mask"
    assert set(masks[0].unique().tolist()) <= {0.0, 2.0}
    print("4. CUDA graph: captured and replayed; rng=None draws anew at each replay")


def per_call(rounds: int = 15) -> None:
    variants = {"F.dropout": lambda x: torch.nn.functional.dropout(x, 0.5, training=True)}
    variants["dropkit (direct)"] = lambda x: dropkit.dropout(x, 0.5, rng=0)
    try:
        from dropkit_torch import _cuda_cupy

        variants["dropkit (CuPy engine)"] = lambda x: _cuda_cupy.dropout(
            x, torch.empty_like(x), 0, 0, 2**31, 2.0, False
        )
    except Exception as exc:  # no CuPy: the row is left out
        print(f"   (no CuPy row: {type(exc).__name__}: {exc})")
    for shape in ((8, 8), (256, 800)):
        x = torch.randn(*shape, device=DEV)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, fn in variants.items():
                torch.cuda.synchronize()
                t = timeit.timeit(lambda fn=fn, x=x: fn(x), number=200)
                torch.cuda.synchronize()
                times[name].append(t / 200 * 1e6)
        anchor = times["F.dropout"]
        print(f"5. per call {shape} float32 (medians, ratio to F.dropout):")
        for name, ts in times.items():
            ratio = statistics.median(a / b for a, b in zip(ts, anchor, strict=True))
            print(f"   {name:<24} {statistics.median(ts):8.2f} us  {ratio:5.2f}x")


if __name__ == "__main__":
    assert torch.cuda.is_available(), "no CUDA device"
    print(f"torch {torch.__version__} CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
    check_engine()
    check_bits()
    check_stream()
    check_graph()
    per_call()
