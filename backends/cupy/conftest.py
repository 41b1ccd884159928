"""Collect the CuPy backend module (its doctests) only where the backend can load."""

import dropkit

_info = {b.name: b for b in dropkit.list_backends()}.get("cupy")
collect_ignore = [] if _info is not None and _info.available else ["dropkit_cupy/backend.py"]
