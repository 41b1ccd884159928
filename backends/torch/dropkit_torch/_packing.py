"""The kernels' parameters packed as the CUDA driver reads them from one buffer.

``cuLaunchKernel`` takes a kernel's parameters either as an array of pointers,
one per parameter, or as one buffer laid out as a C struct of the parameters
(``CU_LAUNCH_PARAM_BUFFER_POINTER``; PyCUDA's prepared calls launch this way).
The buffer needs one ``struct.pack_into`` per call, where the pointer array
needs a ctypes object per parameter, so the torch backend's launcher
(:mod:`dropkit_torch._nvrtc`) packs each call's values with the
:class:`struct.Struct` of :func:`layout`, built once per kernel from the C
signature in :data:`dropkit._cuda.SIGNATURES`.

The layout is the C one: every parameter at the next multiple of its size
(the natural alignment of the kernels' scalar and pointer types), no trailing
padding. Standard sizes (``=``) and explicit pad bytes keep it independent of
the host's own struct rules; the tests read the bytes back with a
``ctypes.Structure`` of the same C types.

Examples
--------
>>> s = layout(("ptr", "i32", "i64", "f32"))
>>> s.format, s.size
('=Qi4xqf', 28)
"""

from __future__ import annotations

import struct

__all__ = ["CODES", "layout"]

#: C parameter type -> (struct code, size in bytes = alignment).
CODES = {
    "ptr": ("Q", 8),
    "i32": ("i", 4),
    "i64": ("q", 8),
    "u32": ("I", 4),
    "u64": ("Q", 8),
    "f32": ("f", 4),
    "f64": ("d", 8),
}


def layout(signature: tuple[str, ...]) -> struct.Struct:
    """The packed parameter buffer of a kernel whose C parameter types are ``signature``.

    Raises ``KeyError`` for a type that is not one of :data:`CODES`.
    """
    parts, offset = ["="], 0
    for kind in signature:
        code, size = CODES[kind]
        pad = -offset % size
        if pad:
            parts.append(f"{pad}x")
        parts.append(code)
        offset += pad + size
    return struct.Struct("".join(parts))
