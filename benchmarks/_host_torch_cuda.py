"""Python time per call of torch's direct CUDA path, measured on the host with the launch stubbed.

No GPU needed: CPU tensors stand in for CUDA tensors (their ``get_device()`` is
-1, the index this module's stand-in launcher serves) and ``cuLaunchKernel`` is
a C function that returns 0 at once, compiled here with ``cc`` and called
through ctypes with the driver's argument types, so the foreign call costs
what the real one costs in Python. The stream and current-device look-ups are
C builtins in place of ``torch._C._cuda_getCurrentRawStream`` and
``torch._C._cuda_getDevice``. Everything else is the code that runs on a GPU:
:mod:`dropkit_torch.cuda` builds the arguments, :class:`dropkit_torch._nvrtc.Launcher`
packs them into the kernel's buffer and calls the driver.

Anchor: the same stubbed ``cuLaunchKernel`` called once with a prepared
buffer, the floor of any Python launch through ctypes (CuPy's and torch's own
launches are C++ and pay no such call; the GPU rows of ``bench_percall.py``
compare with ``F.dropout`` itself). Variants:

- ``cuda.dropout`` into a preallocated output: the kernel entry point;
- ``torch.ops.dropkit.dropout`` (the dispatcher, ``_compute``'s checks, the
  output's allocation, then the launch), as a CUDA tensor's call takes it;
  the op's two module switches are set and restored around each call (two
  attribute writes, included in the time) so that other groups of the same
  process keep the CPU kernels;
- ``dropkit.dropout(x, 0.5, rng=0)``, the CUDA route: the public call as a
  CUDA tensor takes it when nothing watches (core, backend, the cached seed
  tensor, :func:`dropkit_torch._op.unwatched_cuda`, the op's checks and
  the output's allocation, then the launch; no dispatcher). The CPU tensors
  are routed as CUDA tensors by the module switches set and restored around
  each call (five attribute writes, included in the time).

The allocation of ``(256, 800)`` outputs is the CPU allocator's here, the
CUDA caching allocator's on a GPU.

Run alone:  uv run python benchmarks/_host_torch_cuda.py   (torch CPU wheel and cc)
"""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_NOOP = """
int cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   unsigned bz, unsigned shared, void *stream, void **params, void **extra) {
    return 0;
}
"""
SHAPES = [(8, 8), (256, 800)]


def _noop_launch() -> Any:
    """A ctypes ``cuLaunchKernel`` that does nothing, typed as the driver's."""
    folder = Path(tempfile.mkdtemp(prefix="dropkit-noop-driver-"))
    (folder / "noop.c").write_text(_NOOP)
    library = folder / "libnoop.so"
    subprocess.run(
        ["cc", "-O2", "-shared", "-fPIC", "-o", str(library), str(folder / "noop.c")], check=True
    )
    launch = ctypes.CDLL(str(library)).cuLaunchKernel
    p, u = ctypes.c_void_p, ctypes.c_uint
    launch.argtypes = [p, u, u, u, u, u, u, u, p, p, p]
    launch.restype = ctypes.c_int
    return launch


def _never(x: object) -> bool:
    return False


def groups() -> list[tuple[str, list[tuple[str, Callable[[], object]]]]]:
    """The benchmark groups (title, variants; the first variant is the anchor)."""
    import torch
    from dropkit_torch import _nvrtc, _op, cuda
    from dropkit_torch.keys import seed_from_ints

    import dropkit
    from dropkit._cuda import KERNEL_NAMES

    launch = _noop_launch()
    handles = {name: 1 + i for i, name in enumerate(KERNEL_NAMES)}
    launcher = _nvrtc.Launcher(-1, handles, 132, launch, abs, (1).__neg__)
    cuda._engines[-1] = launcher  # CPU tensors only: index -1 serves nothing else
    kernel = launcher._kernels["dk_dropout_f32"]  # the anchor's prepared buffer
    function, extra = kernel.function, kernel.extra

    def bare() -> object:
        return launch(function, 1, 1, 1, 256, 1, 1, 0, 0, None, extra)

    from dropkit_torch import functional

    raw = torch.ops.dropkit.dropout.default
    real = _op._cuda_kernels
    cpu_route = _op.unwatched

    def cuda_route(call: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            _op.CPU_KERNELS, _op._cuda_kernels = False, lambda device: cuda
            _op.unwatched = functional.unwatched = _never
            _op.unwatched_cuda = cpu_route  # the stand-ins answer as CUDA tensors would
            try:
                return call()
            finally:
                _op.CPU_KERNELS, _op._cuda_kernels = True, real
                _op.unwatched = functional.unwatched = cpu_route
                _op.unwatched_cuda = cuda_unwatched

        return run

    cuda_unwatched = _op.unwatched_cuda

    def as_cuda(call: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            _op.CPU_KERNELS, _op._cuda_kernels = False, lambda device: cuda
            try:
                return call()
            finally:
                _op.CPU_KERNELS, _op._cuda_kernels = True, real

        return run

    out: list[tuple[str, list[tuple[str, Callable[[], object]]]]] = []
    t, scale = dropkit.keep_threshold(0.5), 2.0
    for shape in SHAPES:
        x = torch.randn(*shape)
        y = torch.empty_like(x)
        seed = seed_from_ints(7, 0, x.device)
        dims = list(shape)
        variants: list[tuple[str, Callable[[], object]]] = [
            ("bare cuLaunchKernel via ctypes (stub)", bare),
            (
                "cuda.dropout (kernel entry)",
                lambda x=x, y=y: cuda.dropout(x, y, 7, 0, t, scale, False),
            ),
            (
                "torch.ops.dropkit.dropout (dispatcher)",
                as_cuda(lambda x=x, dims=dims, seed=seed: raw(x, seed, dims, t, scale, False)),
            ),
            (
                "dropkit.dropout(x, 0.5, rng=0), CUDA route",
                cuda_route(lambda x=x: dropkit.dropout(x, 0.5, rng=0)),
            ),
        ]
        title = f"torch CUDA path, Python per call, launch stubbed (host) {shape} float32"
        out.append((title, variants))
    return out


if __name__ == "__main__":
    import statistics
    import timeit

    for title, variants in groups():
        rounds: list[list[float]] = [[] for _ in variants]
        for _ in range(15):
            for i, (_, fn) in enumerate(variants):
                rounds[i].append(timeit.timeit(fn, number=2000) / 2000 * 1e6)
        print(title)
        for (name, _), times in zip(variants, rounds, strict=True):
            ratio = statistics.median(a / b for a, b in zip(times, rounds[0], strict=True))
            print(f"  {name:<44} {statistics.median(times):8.2f} us  {ratio:6.2f}x")
