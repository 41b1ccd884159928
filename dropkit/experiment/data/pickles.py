"""Read pickles that hold only plain containers and NumPy arrays, sized by the file.

A pickle is a program: ``numpy``'s own reconstruction functions allocate
whatever shape a file declares (``_reconstruct(ndarray, (100000, 3072), ...)``
is 300 MB of uninitialised memory from a 151-byte file). So nothing from
NumPy is ever called with the file's arguments. The few globals NumPy pickles
name (``_reconstruct``, ``ndarray``, ``dtype``, ``scalar``, ``_frombuffer``,
under ``numpy.core`` or ``numpy._core``) resolve to stand-ins that record their
arguments; after loading, each array is rebuilt from the file's own bytes,
after checking that the byte count equals the declared shape times the item
size. Only plain numeric, boolean and fixed-width string dtypes are allowed
(no objects, no structured dtypes). Before anything is built, every length the
pickle declares (bytes, strings, frames) is checked against the file, so a
tiny file cannot make the unpickler allocate gigabytes. Protocols 0 to 5
(in-band buffers) are read.

Examples
--------
>>> import pickle, tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "ok.pkl"
>>> _ = p.write_bytes(pickle.dumps({"a": np.arange(3), "e": np.empty((0, 2))}, protocol=5))
>>> got = safe_unpickle(p)
>>> got["a"].tolist(), got["e"].shape
([0, 1, 2], (0, 2))
"""

from __future__ import annotations

import codecs
import io
import pickle
import pickletools
from pathlib import Path
from typing import Any

import numpy as np

from .checks import DataFileError, open_data_file

__all__ = ["MAX_DEPTH", "safe_unpickle"]

#: Containers nested deeper than this are refused (a CIFAR batch is a dict of lists).
MAX_DEPTH = 64
_DTYPE_KINDS = "biufcSU"


class _Refused(pickle.UnpicklingError):
    pass


class _Frozen:
    """No instance attributes can be set: a pickle's BUILD on it fails.

    Every object :meth:`_Unpickler.find_class` hands out is one of these, so a
    crafted ``BUILD`` cannot set attributes on the loader's own functions or
    classes (which would persist into later loads).
    """

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise _Refused(f"a pickle may not set attribute {name!r} on {self!r}")


class _NdarraySentinel(_Frozen):
    """Stands for ``numpy.ndarray`` in a pickle; deliberately not callable."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<numpy.ndarray (not callable here)>"


class _Global(_Frozen):
    """An allowed callable, wrapped so that a pickle can call it but not modify it."""

    __slots__ = ("_func",)
    _func: Any

    def __init__(self, func: Any) -> None:
        object.__setattr__(self, "_func", func)

    def __call__(self, *args: Any) -> Any:
        return self._func(*args)

    def __repr__(self) -> str:
        return f"<allowed {getattr(self._func, '__name__', self._func)}>"


_NDARRAY = _NdarraySentinel()


class _Dtype:
    """Stands for ``numpy.dtype(spec, align, copy)`` followed by ``BUILD state``."""

    __slots__ = ("dtype",)

    def __init__(self, spec: Any, align: Any = False, copy: Any = True) -> None:
        if not isinstance(spec, str | bytes):
            raise _Refused(f"dtype spec must be a string, got {type(spec).__name__}")
        text = spec.decode("latin1") if isinstance(spec, bytes) else spec
        if len(text) > 16:
            raise _Refused(f"dtype spec {text[:20]!r}... is not a plain dtype")
        try:
            dtype = np.dtype(text)
        except (TypeError, ValueError) as exc:
            raise _Refused(f"unknown dtype {text!r}") from exc
        self.dtype = _plain(dtype)

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (8, 9):
            raise _Refused("dtype state of an unknown form")
        _version, endian, subdescr, names, fields, elsize, _align, _flags = state[:8]
        if isinstance(endian, bytes):  # Python 2 pickles read with encoding="bytes"
            endian = endian.decode("latin1")
        if subdescr is not None or names is not None or fields is not None:
            raise _Refused("structured or sub-array dtypes are not allowed")
        if not isinstance(elsize, int) or elsize not in (-1, self.dtype.itemsize):
            raise _Refused(f"dtype {self.dtype} with a stated item size of {elsize!r}")
        if endian not in ("<", ">", "|", "="):
            raise _Refused(f"dtype byte order {endian!r}")
        if endian in "<>" and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(endian)


def _plain(dtype: np.dtype) -> np.dtype:
    if dtype.hasobject or dtype.kind not in _DTYPE_KINDS or dtype.fields or dtype.subdtype:
        raise _Refused(f"dtype {dtype} is not allowed (only plain numbers and strings; no object)")
    if dtype.itemsize == 0:
        raise _Refused(f"dtype {dtype} has no item size")
    return dtype


def _as_dtype(value: Any) -> np.dtype:
    if isinstance(value, _Dtype):
        return value.dtype
    raise _Refused(f"expected a dtype, got {type(value).__name__}")


def _as_shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, tuple) or len(value) > 32:
        raise _Refused(f"array shape must be a tuple of at most 32 sizes, got {value!r:.60}")
    for n in value:
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise _Refused(f"array shape {value!r:.60} is not a tuple of non-negative integers")
    return value


def _build(shape: Any, dtype: Any, fortran: bool, raw: Any) -> np.ndarray:
    """An array of ``shape`` and ``dtype`` copied from ``raw``, whose size must match."""
    shape, dtype = _as_shape(shape), _as_dtype(dtype)
    if isinstance(raw, pickle.PickleBuffer):
        raw = raw.raw()
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise _Refused(f"array data must be bytes, got {type(raw).__name__}")
    count = 1
    for n in shape:
        count *= n
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise _Refused(
            f"an array of shape {shape} and dtype {dtype} needs {expected} bytes, the file "
            f"gives {len(raw)}"
        )
    flat = np.frombuffer(raw, dtype=dtype, count=count).copy()
    return flat.reshape(shape, order="F" if fortran else "C")


class _Array:
    """Stands for an array until loading ends; filled by ``BUILD`` or at creation."""

    __slots__ = ("array", "scalar")

    def __init__(self, array: np.ndarray | None = None, scalar: bool = False) -> None:
        self.array, self.scalar = array, scalar

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused("array state of an unknown form")
        if self.array is not None:
            raise _Refused("array state given twice")
        shape, dtype, fortran, raw = state[-4:]
        self.array = _build(shape, dtype, bool(fortran), raw)

    def value(self) -> Any:
        if self.array is None:
            raise _Refused("an array with no data (a _reconstruct never filled): crafted file")
        return self.array[()] if self.scalar else self.array


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> _Array:
    if subtype is not _NDARRAY:
        raise _Refused("_reconstruct of something other than numpy.ndarray")
    return _Array()  # the declared shape is ignored: the data and its shape come in BUILD


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> _Array:
    if order not in ("C", "F"):
        raise _Refused(f"array order {order!r}")
    return _Array(_build(shape, dtype, order == "F", buf))


def _scalar(dtype: Any, raw: Any = None) -> _Array:
    if raw is None:
        raise _Refused("a NumPy scalar without data")
    return _Array(_build((), dtype, False, raw), scalar=True)


def _bytes(*args: Any) -> bytes:
    if not args:
        return b""
    if len(args) == 1 and isinstance(args[0], bytes | bytearray):
        return bytes(args[0])
    raise _Refused("builtins.bytes() only with no argument or a bytes object")


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("_codecs.encode only of a str to latin1 (how Python 3 writes bytes)")
    return codecs.encode(text, "latin1")


_ALLOWED: dict[tuple[str, str], _Frozen] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Global(_Dtype),
    ("_codecs", "encode"): _Global(_encode),
    ("builtins", "bytes"): _Global(_bytes),
    ("__builtin__", "bytes"): _Global(_bytes),
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _Global(_reconstruct)
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = _Global(_scalar)
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _Global(_frombuffer)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise _Refused(
                f"refusing to load global {module}.{name}: only NumPy arrays are allowed"
            )
        return found


def _check_lengths(raw: bytes) -> None:
    """Walk the opcodes: every declared length and frame must fit in the file."""
    stream = io.BytesIO(raw)
    for opcode, arg, pos in pickletools.genops(stream):
        if opcode.name == "FRAME" and isinstance(arg, int) and arg > len(raw) - stream.tell():
            raise _Refused(
                f"a frame of {arg} bytes at offset {pos}, but only "
                f"{len(raw) - stream.tell()} remain: truncated or crafted"
            )
        if opcode.name == "STOP":
            break
    extra = len(raw) - stream.tell()
    if extra:
        raise _Refused(f"{extra} bytes after the end of the pickle: corrupt or not one pickle")


def _materialise(obj: Any, depth: int = 0, seen: dict[int, Any] | None = None) -> Any:
    """Replace the stand-ins by arrays and dtypes throughout ``obj``."""
    if isinstance(obj, _Array):
        return obj.value()
    if isinstance(obj, _Dtype):
        return obj.dtype
    if isinstance(obj, _Frozen):
        raise _Refused(f"a bare global {obj!r} in the data")
    if not isinstance(obj, dict | list | tuple | set | frozenset):
        return obj
    if depth >= MAX_DEPTH:
        raise _Refused(f"containers nested deeper than {MAX_DEPTH} levels")
    seen = {} if seen is None else seen
    if id(obj) in seen:
        return seen[id(obj)]
    if isinstance(obj, list):
        seen[id(obj)] = obj
        obj[:] = [_materialise(v, depth + 1, seen) for v in obj]
    elif isinstance(obj, dict):
        seen[id(obj)] = obj
        for key in list(obj):
            _plain_key(key)
            obj[key] = _materialise(obj[key], depth + 1, seen)
    elif isinstance(obj, tuple):
        new = tuple(_materialise(v, depth + 1, seen) for v in obj)
        seen[id(obj)] = obj = new
    else:
        for item in obj:
            _plain_key(item)
    return obj


def _plain_key(key: Any) -> None:
    if isinstance(key, _Array | _Dtype | _Frozen):
        raise _Refused("an array or dtype used as a dict key or set member")


def safe_unpickle(path: str | Path, what: str = "pickle of NumPy arrays") -> Any:
    """Unpickle ``path`` allowing nothing but plain containers and NumPy arrays.

    Parameters
    ----------
    path : path
        A pickle file (any protocol; in-band buffers only).
    what : str
        What the file should be, for error messages.

    Returns
    -------
    object
        The unpickled object; arrays are fresh writable copies of the file's bytes.

    Raises
    ------
    DataFileError
        The file is not such a pickle: a refused global, a dtype that is not
        plain, an array whose declared size does not match its bytes, a length
        beyond the end of the file, trailing bytes, nesting deeper than
        :data:`MAX_DEPTH`. The message names the file.

    Examples
    --------
    >>> import pickle, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "ok.pkl"
    >>> _ = p.write_bytes(pickle.dumps({b"data": np.arange(3)}, protocol=2))
    >>> safe_unpickle(p)[b"data"].tolist()
    [0, 1, 2]
    """
    path = Path(path)
    f, size = open_data_file(path)
    with f:
        raw = f.read(size + 1)
    if not raw:
        raise DataFileError(f"{path}: empty file (0 bytes): not a pickle")
    try:
        _check_lengths(raw)
        obj = _Unpickler(io.BytesIO(raw), encoding="bytes").load()
        return _materialise(obj)
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        IndexError,
        OverflowError,
        RecursionError,
    ) as exc:
        raise DataFileError(f"{path}: not a readable {what} ({exc})") from exc
