"""The Python time per call of ``dropkit.dropout`` on CuPy arrays, measured without a GPU.

Used by ``benchmarks/bench_percall.py`` (:func:`groups`); runs alone too:
``uv run python benchmarks/_host_cupy.py`` prints the same rows.

The arrays are :class:`dropkit_cupy.fake.FakeArray` (NumPy arrays with CuPy's
``data.ptr`` and ``device``) and the backend's modules are imported against
the fake CuPy of :mod:`dropkit_cupy.fake`, whose kernel launch does nothing:
what is timed is the Python between ``dropkit.dropout`` and the launch, the
part of the GPU per-call cost that dropkit controls. The fake's array type is
routed to the fake backend exactly as a CuPy array type is after its first
call (``dropkit.selection.BY_TYPE``), so the path is the one a CuPy array
takes.

Anchor: the fake's bare launch: allocate the output (``cupy.empty``) and call
the kernel with an argument tuple built from values prepared beforehand. That
is the Python a hand-written ``cupy.RawKernel`` dropout needs per call on the
same fake; the ratio to it is dropkit's Python overhead. (NumPy's ``x * 2``
would not do: for (256, 800) it times the multiply, not the call.) On the GPU
both sides add CuPy's own argument handling and the driver's launch, the same
for every launch of this kernel.

Variants: ``dropkit.dropout(x, 0.5, rng=0)`` (the whole path) and the
backend's ``mask_scale`` called directly (the backend's part alone; the
difference is dropkit's core).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np

import dropkit
from dropkit.backend import capabilities
from dropkit.selection import BY_TYPE

SHAPES: list[tuple[int, ...]] = [(8, 8), (256, 800)]
Variant = tuple[str, Callable[[], object]]


_LAUNCHES = [0]


def _count(name: str, ieee: bool, grid: Any, block: Any, args: Any) -> None:
    """The stubbed launch: counts, so that :func:`groups` can check each variant launches."""
    _LAUNCHES[0] += 1


@contextlib.contextmanager
def _quiet_build() -> Iterator[None]:
    """The fake's first build: its marker in a temporary folder, its notice not printed."""
    saved = os.environ.get("CUPY_CACHE_DIR")
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stderr(io.StringIO()):
        os.environ["CUPY_CACHE_DIR"] = folder
        try:
            yield
        finally:
            if saved is None:
                del os.environ["CUPY_CACHE_DIR"]
            else:
                os.environ["CUPY_CACHE_DIR"] = saved


def _bare_launch(cupy: Any, x: Any, threshold: int) -> Callable[[], object]:
    """The anchor: ``cupy.empty`` and the kernel called with arguments prepared beforehand."""
    n, shape = x.size, x.shape
    kernel = cupy.RawModule(code="fake", options=()).get_function("dk_dropout_f32")
    grid, block = (min(-(-n // 4 // 256), 32),), (256,)
    scalars = (np.int64(n), np.float32(2.0), np.int32(3), np.uint32(threshold))
    prepared = (*scalars, *(np.uint32(0),) * 4, np.uint64(0))

    def bare() -> object:
        y = cupy.empty(shape, np.float32)
        kernel(grid, block, (x, y, *prepared))
        return y

    return bare


def groups() -> list[tuple[str, list[Variant]]]:
    """Per shape: the title and the variants (the anchor first), ready to time."""
    from dropkit_cupy.fake import FakeArray, as_fake, fake_cupy, load_backend

    cupy = fake_cupy(_count)
    loaded = load_backend(cupy)
    backend = loaded.backend
    BY_TYPE[FakeArray] = capabilities(backend, ("cupy",))
    threshold = dropkit.keep_threshold(0.5)
    draw = (0, 0)
    found: list[tuple[str, list[Variant]]] = []
    for shape in SHAPES:
        x = as_fake(np.ones(shape, dtype=np.float32))
        bare = _bare_launch(cupy, x, threshold)

        def primitive(x: Any = x, shape: tuple[int, ...] = shape) -> Any:
            return backend.mask_scale(
                x, draw, noise_shape=shape, threshold=threshold, scale=2.0, relu=False, out=None
            )

        variants: list[Variant] = [
            ("bare launch: cupy.empty + kernel(args)", bare),
            ("dropkit.dropout(x, 0.5, rng=0)", partial(dropkit.dropout, x, 0.5, rng=0)),
            ("backend.mask_scale (no core)", primitive),
        ]
        for name, fn in variants:  # each one launch, not a fallback to the reference path
            before = _LAUNCHES[0]
            with _quiet_build():
                fn()
            if _LAUNCHES[0] != before + 1:
                raise RuntimeError(f"{name} made {_LAUNCHES[0] - before} launches, not 1")
        found.append(
            (f"CuPy path on the host (fake CuPy, launch stubbed) {shape} float32", variants)
        )
    return found


def main() -> None:
    """Time the groups as bench_percall.py does (interleaved rounds, medians)."""
    import argparse

    from bench_percall import run_group

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (15)")
    parser.add_argument("--target-ms", type=float, default=20.0, help="ms per loop (20)")
    args = parser.parse_args()
    for title, variants in groups():
        run_group(title, variants, args.rounds, args.target_ms / 1000, lambda: None)


if __name__ == "__main__":
    main()
