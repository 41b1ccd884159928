"""Reading an ``.npz`` file with memory bounded by the file's size.

``numpy.load`` allocates what a member's ``.npy`` header declares before it
reads the data: a crafted file of a megabyte can ask for gigabytes. Here every
member is checked first: stored, not compressed (as ``numpy.savez`` writes),
inside the file, and its header's shape times item size equal to the bytes
the member really holds. Only then is it read, so the arrays together never
take more memory than the file's size. Nothing is unpickled.

Examples
--------
>>> import io
>>> import numpy as np
>>> buffer = io.BytesIO()
>>> np.savez(buffer, w=np.arange(3.0))
>>> read_npz(buffer, "example.npz")["w"].tolist()
[0.0, 1.0, 2.0]
"""

from __future__ import annotations

import math
import zipfile
from typing import IO

import numpy as np

__all__ = ["NpzError", "read_npz"]


class NpzError(ValueError):
    """An ``.npz`` file is corrupt, truncated, or declares more than it holds."""


def _header(f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype, int]:
    major, _ = np.lib.format.read_magic(f)
    if major == 1:
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif major in (2, 3):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:  # pragma: no cover - read_magic accepts only these
        raise ValueError(f"unsupported .npy version {major}")
    del fortran
    return shape, dtype, f.tell()


def read_npz(file: IO[bytes], name: str) -> dict[str, np.ndarray]:
    """Read every array of the ``.npz`` open as ``file``; ``name`` is used in messages.

    Raises
    ------
    NpzError
        A member that is compressed, lies outside the file, is not an ``.npy``
        array, holds an object dtype, or whose header declares a size other
        than the bytes it holds (before anything that size is allocated).
    """
    file.seek(0, 2)
    size = file.tell()
    file.seek(0)
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise NpzError(f"{name} is not a readable .npz (zip) file ({exc})") from None
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for info in archive.infolist():
            where = f"{name}: member {info.filename!r}"
            if not info.filename.endswith(".npy"):
                raise NpzError(f"{where} is not an .npy array")
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise NpzError(f"{where} is compressed; dropkit writes stored members only")
            if info.header_offset + info.compress_size > size:
                raise NpzError(f"{where} lies beyond the end of the file ({size} bytes): truncated")
            try:
                with archive.open(info) as f:
                    shape, dtype, header = _header(f)
                    if dtype.hasobject:
                        raise NpzError(f"{where} holds Python objects, which are never loaded")
                    need = math.prod(shape) * dtype.itemsize
                    if need != info.file_size - header:
                        raise NpzError(
                            f"{where}: its header declares {shape} {dtype} ({need} bytes), the "
                            f"member holds {info.file_size - header} bytes"
                        )
                with archive.open(info) as f:
                    array = np.lib.format.read_array(f, allow_pickle=False)
            except NpzError:
                raise
            except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
                raise NpzError(f"{where} is corrupt ({exc})") from None
            arrays[info.filename[: -len(".npy")]] = array
    return arrays
