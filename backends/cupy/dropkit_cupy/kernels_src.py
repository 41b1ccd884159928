"""CUDA C source of the CuPy backend's kernels, shared with a CPU test harness and torch.

One text, :data:`KERNEL_SOURCE` (the file ``kernels.cu`` of the core package,
``dropkit/_cuda/``, which the torch backend compiles too), compiles with NVRTC
(inside ``cupy.RawModule``) and with a host C compiler (:mod:`dropkit_cupy.host`
builds it with ``cc`` and the tests compare it with the array-API reference), so
everything but the
thread index and the vector loads is checked bit for bit on machines without
a GPU. Each kernel is a thin ``__global__`` wrapper around a ``*_range``
function that runs a grid-stride loop from ``start`` by ``stride``; the host
harness calls the same function with ``(t, T)`` for ``t < T`` to imitate ``T``
threads.

Layout of the dropout kernels: one thread per Philox block (4 elements): the
block's 4 words are computed in registers (10 rounds unrolled), then the 4
values are loaded with one 128-bit load (float32), one 64-bit load
(float16/bfloat16) or two 128-bit loads (float64), compared, scaled and stored
the same way. The last, partial block and arrays whose pointers are not
aligned for the vector loads (flag ``DK_VEC`` clear) take a scalar path. The
in-place form passes the same pointer as ``x`` and ``y``. The kernels that
draw take the draw as ``(threshold, k0, k1, c2, c3, seed)``: ``seed``, when
not NULL, points to the four words in device memory (the torch op's seed
tensor), so a seed that lives on the GPU never makes a round trip to the host.

Floating-point semantics
------------------------
CuPy compiles every kernel, its own and users' ``RawModule`` alike, with
``-ftz=true`` appended after the caller's options (``cupy/cuda/compiler.py``:
``options += ('-ftz=true',)``; NVRTC honours the last occurrence, so it cannot
be turned off by an option): float32 arithmetic and comparisons read
subnormal inputs as zero and write subnormal results as zero. float64 is not
affected, and CuPy's float16 arithmetic runs in float32, where float16's
subnormals are normal numbers. The macro ``DK_IEEE_F32`` picks the semantics:

- ``0`` (the CuPy arrays' module): plain C arithmetic, flushed by CuPy's
  ``-ftz=true`` exactly as CuPy's own element-wise operations are, so a
  fused kernel equals the array-API path on CuPy bit for bit, subnormals
  included. The host harness imitates the flush explicitly (``dk_ftz``).
- ``1`` (torch CUDA tensors' module): IEEE float32 whatever the flags, as
  PyTorch computes (inline PTX ``mul.rn.f32``, which no flag rewrites, and an
  integer test for ``v <= 0``).

Like the array-API path (which multiplies only when the factor is not 1), the
kernels multiply only when the flag ``DK_SCALE`` is set: with a scale of 1 a
kept value passes through untouched, subnormals included. Every module is
compiled with ``--fmad=false`` so that no multiply-add is contracted into a
fused multiply-add (the array-API path rounds after each operation; the fused
SGD must too).

float16 values are handled as their 16-bit patterns: comparisons are integer
tests; the product is ``mul.rn.f16`` on the device (correctly rounded, the
same as CuPy's and NumPy's float16 product) and a float32 product rounded to
nearest-even on the host (exact: 11-bit by 11-bit significands fit float32).
bfloat16 values are widened to float32 (exact), multiplied in float32 under
the module's semantics and rounded to nearest-even (as ``torch`` and
``__float2bfloat16_rn`` round).
"""

from __future__ import annotations

from dropkit._cuda import (
    DK_DECAY,
    DK_MOMENTUM,
    DK_NESTEROV,
    DK_RELU,
    DK_SCALE,
    DK_VEC,
    KERNEL_NAMES,
    KERNEL_SOURCE,
    NVRTC_OPTIONS,
)

__all__ = [
    "DK_DECAY",
    "DK_MOMENTUM",
    "DK_NESTEROV",
    "DK_RELU",
    "DK_SCALE",
    "DK_VEC",
    "KERNEL_NAMES",
    "KERNEL_SOURCE",
    "NVRTC_OPTIONS",
]
