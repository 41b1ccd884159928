"""The CUDA kernels' source built for the CPU, to test their arithmetic without a GPU.

:func:`host_kernels` compiles :data:`~dropkit_cupy.kernels_src.KERNEL_SOURCE`
with the host C compiler (``cc``) into a shared library whose entry points
``h_<kernel>`` run the kernel's grid-stride loop as ``threads`` consecutive
"threads" (thread ``t`` starts at ``t`` and strides by ``threads``, as on the
device). :meth:`HostKernels.launch` takes the ``(name, args)`` pairs that
:mod:`dropkit_cupy.launch` builds for the CuPy launcher, checks every argument's
NumPy type against the kernel's C signature and calls the host function with
NumPy arrays in place of device arrays.

What this cannot check: the thread indexing, the vector loads themselves and
the device's conversions (``cvt``, ``mul.rn.f16``); the GPU run of
``benchmarks/gpu_check.sh`` does.

Examples
--------
>>> import numpy as np
>>> from dropkit_cupy.launch import bits_call
>>> k = host_kernels(ieee=False)
>>> out = np.empty(4, dtype=np.uint32)
>>> k.launch(*bits_call(out, 0, 1, 0, 0, vec=True))
>>> [hex(int(w)) for w in out]
['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .kernels_src import KERNEL_SOURCE
from .launch import SIGNATURES

__all__ = ["HOST_WRAPPERS", "HostKernels", "compiler", "host_kernels"]

_T = "dk_i64 threads"
_LOOP = "for (dk_i64 t = 0; t < threads; ++t)"
_PHILOX = "dk_u32 threshold, dk_u32 k0, dk_u32 k1, dk_u32 c2, dk_u32 c3, const dk_i64 *seed"
_ARGS = "threshold, k0, k1, c2, c3, t, threads"
_SEED = "dk_seed(seed, &k0, &k1, &c2, &c3);"


def _wrappers() -> str:
    lines = [
        f"void h_dk_bits(dk_u32 *out, dk_u64 first, dk_i64 nblocks, int flags, dk_u32 k0, "
        f"dk_u32 k1, dk_u32 c2, dk_u32 c3, {_T}) {{ {_LOOP} "
        "dk_bits_range(out, first, nblocks, flags, k0, k1, c2, c3, t, threads); }",
        f"void h_dk_keep_mask(unsigned char *keep, dk_i64 n, int flags, {_PHILOX}, {_T}) "
        f"{{ {_SEED} {_LOOP} dk_keep_mask_range(keep, n, flags, {_ARGS}); }}",
        f"void h_dk_dropout_f32(const float *x, float *y, dk_i64 n, float scale, int flags, "
        f"{_PHILOX}, {_T}) {{ {_SEED} {_LOOP} "
        f"dk_dropout_f32_range(x, y, n, scale, flags, {_ARGS}); }}",
        f"void h_dk_dropout_f64(const double *x, double *y, dk_i64 n, double scale, int flags, "
        f"{_PHILOX}, {_T}) {{ {_SEED} {_LOOP} "
        f"dk_dropout_f64_range(x, y, n, scale, flags, {_ARGS}); }}",
        f"void h_dk_dropout_f16(const dk_u16 *x, dk_u16 *y, dk_i64 n, dk_u32 scale, int flags, "
        f"{_PHILOX}, {_T}) {{ {_SEED} {_LOOP} "
        f"dk_dropout_16_range(x, y, n, 0, scale, 0.0f, flags, {_ARGS}); }}",
        f"void h_dk_dropout_bf16(const dk_u16 *x, dk_u16 *y, dk_i64 n, float scale, int flags, "
        f"{_PHILOX}, {_T}) {{ {_SEED} {_LOOP} "
        f"dk_dropout_16_range(x, y, n, 1, 0u, scale, flags, {_ARGS}); }}",
    ]
    for kind, t, st in (
        ("f32", "float", "float"),
        ("f64", "double", "double"),
        ("f16", "dk_u16", "dk_u32"),
        ("bf16", "dk_u16", "float"),
    ):
        lines.append(
            f"void h_dk_masked_{kind}(const {t} *x, {t} *y, const unsigned char *keep, dk_i64 n, "
            f"dk_i64 block, dk_i64 inner, {st} scale, int flags, {_T}) {{ {_LOOP} "
            f"dk_masked_{kind}_range(x, y, keep, n, block, inner, scale, flags, t, threads); }}"
        )
        lines.append(
            f"void h_dk_relu_backward_{kind}(const {t} *g, const {t} *h, {t} *y, dk_i64 n, "
            f"{st} scale, int flags, {_T}) {{ {_LOOP} "
            f"dk_relu_backward_{kind}_range(g, h, y, n, scale, flags, t, threads); }}"
        )
    for kind, t in (("f32", "float"), ("f64", "double")):
        lines.append(
            f"void h_dk_sgd_{kind}({t} *w, const {t} *g, {t} *v, dk_i64 n, {t} lr, "
            f"{t} momentum, {t} decay, int flags, {_T}) {{ {_LOOP} "
            f"dk_sgd_{kind}_range(w, g, v, n, lr, momentum, decay, flags, t, threads); }}"
        )
    return "\n".join(lines) + "\n"


#: C source of the host entry points ``h_<kernel>(<kernel's arguments>, threads)``.
HOST_WRAPPERS = _wrappers()

_CTYPES = {
    "ptr": ctypes.c_void_p,
    "i32": ctypes.c_int32,
    "i64": ctypes.c_int64,
    "u32": ctypes.c_uint32,
    "u64": ctypes.c_uint64,
    "f32": ctypes.c_float,
    "f64": ctypes.c_double,
}
_NUMPY: dict[str, type[np.generic]] = {
    "i32": np.int32,
    "i64": np.int64,
    "u32": np.uint32,
    "u64": np.uint64,
    "f32": np.float32,
    "f64": np.float64,
}


def compiler() -> str | None:
    """The host C compiler (``cc`` or ``gcc``), or None."""
    return shutil.which("cc") or shutil.which("gcc")


class HostKernels:
    """The kernels compiled for the CPU (see the module docs).

    Parameters
    ----------
    library : ctypes.CDLL
        The built library.
    ieee : bool
        Whether it was built with ``DK_IEEE_F32=1``.
    """

    def __init__(self, library: ctypes.CDLL, ieee: bool) -> None:
        self.ieee = ieee
        self._lib = library
        for name, signature in SIGNATURES.items():
            fn = getattr(library, f"h_{name}")
            fn.argtypes = [_CTYPES[t] for t in signature] + [ctypes.c_int64]
            fn.restype = None

    def launch(self, name: str, args: tuple[Any, ...], *, threads: int = 3) -> None:
        """Run kernel ``name`` with ``args`` (NumPy arrays for pointers) as ``threads`` threads.

        Raises ``TypeError`` when an argument's type is not the kernel's C
        type (what CuPy would pass with the wrong size).
        """
        signature = SIGNATURES[name]
        if len(args) != len(signature):
            raise TypeError(f"{name} takes {len(signature)} arguments, got {len(args)}")
        converted: list[int | float | None] = []
        for i, (arg, kind) in enumerate(zip(args, signature, strict=True)):
            if kind == "ptr":
                if type(arg) is np.uint64 and arg == 0:  # NULL: 8 zero bytes, as CuPy passes it
                    converted.append(None)
                    continue
                if not isinstance(arg, np.ndarray):
                    raise TypeError(f"{name} argument {i} must be an array, got {type(arg)}")
                converted.append(arg.ctypes.data)
                continue
            if type(arg) is not _NUMPY[kind]:
                raise TypeError(
                    f"{name} argument {i} must be numpy.{_NUMPY[kind].__name__} "
                    f"(C type {kind}), got {type(arg).__name__}"
                )
            converted.append(arg.item())
        getattr(self._lib, f"h_{name}")(*converted, threads)


@functools.cache
def host_kernels(*, ieee: bool) -> HostKernels:
    """Build (once per process) and load the kernels for the CPU.

    ``ieee=False`` is the CuPy arrays' module (float32 flushed as by CuPy's
    ``-ftz=true``, imitated on the host), ``ieee=True`` the torch tensors'.
    Raises ``RuntimeError`` without a C compiler.
    """
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc or gcc) to build the host harness")
    source = KERNEL_SOURCE + HOST_WRAPPERS
    digest = hashlib.sha256(f"{ieee}{source}".encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"dropkit-cupy-host-{digest}"
    folder.mkdir(exist_ok=True)
    library = folder / f"kernels-{int(ieee)}.so"
    if not library.exists():
        c_file = folder / "kernels.c"
        c_file.write_text(source)
        partial = folder / f"kernels-{int(ieee)}.{id(source)}.tmp"
        command = [
            cc,
            "-O2",
            "-std=c99",
            "-ffp-contract=off",  # no fused multiply-add: one rounding per operation
            "-fno-strict-aliasing",
            "-shared",
            "-fPIC",
            f"-DDK_IEEE_F32={int(ieee)}",
            "-o",
            str(partial),
            str(c_file),
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"building the host harness failed:\n{result.stderr}")
        partial.replace(library)
    return HostKernels(ctypes.CDLL(str(library)), ieee)
