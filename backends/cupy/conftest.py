"""Collect the CuPy backend's modules (their doctests) only where they can import.

``backend.py`` and ``kernels.py`` need CuPy and a CUDA device; ``host.py``
needs a C compiler.
"""

import shutil

import dropkit

_info = {b.name: b for b in dropkit.list_backends()}.get("cupy")
_gpu = _info is not None and _info.available
collect_ignore = []
if not _gpu:
    collect_ignore += ["dropkit_cupy/backend.py", "dropkit_cupy/kernels.py"]
if shutil.which("cc") is None and shutil.which("gcc") is None:
    collect_ignore.append("dropkit_cupy/host.py")
