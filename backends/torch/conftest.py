"""Collect the torch backend's modules (their doctests) only where torch is installed.

torch is an optional, machine-specific install (CPU or CUDA build), never a
locked dependency: on a machine without it these modules cannot be imported,
and the torch tests in ``tests/`` skip with the reason.
"""

import importlib.util

_TORCH_MODULES = [
    "_op.py",
    "backend.py",
    "cuda.py",
    "functional.py",
    "keys.py",
    "layer.py",
    "nn.py",
    "nn_family.py",
]

collect_ignore = (
    [] if importlib.util.find_spec("torch") else [f"dropkit_torch/{m}" for m in _TORCH_MODULES]
)
# The CuPy fallback of the CUDA path imports CuPy: collected only where CuPy is installed.
if importlib.util.find_spec("cupy") is None or importlib.util.find_spec("torch") is None:
    collect_ignore.append("dropkit_torch/_cuda_cupy.py")
