"""What machine a benchmark ran on: CPU model, vector width, cores, library versions.

Imported by the benchmarks (run from the repository root: ``benchmarks/`` is the
script's folder, so ``import machine`` works).

Examples
--------
>>> "cpus" in describe()
True
"""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def vector_width() -> str:
    """The widest x86 vector extension the compiler (LLVM, as Numba uses it) targets here."""
    try:
        import llvmlite.binding as llvm

        features = set(llvm.get_host_cpu_features().flatten().split(","))
    except Exception:  # no llvmlite, or a platform it cannot query
        return "unknown vector width"
    if "+avx512f" in features:
        return "AVX-512 (512-bit vectors)"
    if "+avx2" in features:
        return "AVX2 (256-bit vectors)"
    if "+sse2" in features:
        return "SSE2 (128-bit vectors)"
    return "no x86 vector extension reported (" + platform.machine() + ")"


def describe() -> str:
    """One line: CPU model, vector width, CPU count, NumPy and Numba versions."""
    import numpy as np

    try:
        import numba

        numba_version = numba.__version__
    except ImportError:
        numba_version = "not installed"
    return (
        f"CPU: {cpu_model()}, {vector_width()}, {os.cpu_count()} cpus; "
        f"numpy {np.__version__}, numba {numba_version}"
    )


if __name__ == "__main__":
    print(describe())
