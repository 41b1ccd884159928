"""What machine a benchmark ran on: CPU model, vector width, cores, GPU (imported by the scripts).

Run:  uv run python benchmarks/machine.py
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo, lscpu, or the platform's word for it)."""
    name = _cpuinfo().get("model name", "")
    if not name:
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                name = line.partition(":")[2].strip()
                break
    return name or platform.processor() or platform.machine()


def vector_width() -> str:
    """The widest SIMD the CPU reports (x86 flags; 'unknown' elsewhere)."""
    flags = set(_cpuinfo().get("flags", "").split())
    if "avx512f" in flags:
        return "AVX-512 (512-bit)"
    if "avx2" in flags:
        return "AVX2 (256-bit)"
    if "avx" in flags:
        return "AVX (256-bit float, 128-bit integer)"
    if "sse2" in flags:
        return "SSE2 (128-bit)"
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "NEON (128-bit)"
    return "unknown"


def describe() -> str:
    """One line: CPU model, vector width, usable cores, machine."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    return f"CPU {cpu_model()}, {vector_width()}, {cores} usable cores ({platform.machine()})"


def gpu_name() -> str | None:
    """The current CUDA device's name through CuPy, or None without one."""
    try:
        import cupy
    except ImportError:
        return None
    try:
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    except Exception:  # no driver, no device: just no GPU line
        return None
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


if __name__ == "__main__":
    print(describe())
    print(f"GPU {gpu_name() or 'none'}")
