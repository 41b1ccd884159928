"""MNIST (and Fashion-MNIST) in the IDX format, raw or gzipped, with bounded memory.

An IDX file is a 4-byte magic number (``0x0803``: unsigned bytes, 3
dimensions), one big-endian 4-byte size per dimension, then the data. The
reader takes the header first and checks the declared size against the file
before allocating anything: a raw file must be exactly header + data; a gzip
stream is decompressed in 1 MiB pieces up to the declared size and no further
(a gzip of *n* bytes cannot inflate to more than about 1032 *n*, so a header
declaring more is refused at once), and must end there. Memory therefore
stays proportional to the data really present, whatever the header or the
compressed stream claim.

Examples
--------
>>> import gzip, pathlib, tempfile
>>> p = pathlib.Path(tempfile.mkdtemp()) / "labels.gz"
>>> _ = p.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9])))
>>> read_idx(p, 0x0801, 1).tolist()
[7, 0, 9]
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .checks import DataFileError, check_folder, check_labels, open_data_file

__all__ = ["MNIST_FILES", "load_mnist_idx", "read_idx"]

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IMAGES, _LABELS = 0x00000803, 0x00000801
#: Deflate's best ratio is 1032:1 (a 258-byte match in two 1-bit codes); plus slack.
_GZIP_MAX_RATIO, _GZIP_SLACK = 1032, 1 << 16
_CHUNK = 1 << 20


def _describe_magic(magic: int) -> str:
    return f"type byte {(magic >> 8) & 0xFF:#04x}, {magic & 0xFF} dimensions"


def _read_upto(f: BinaryIO, n: int) -> bytearray:
    """Read up to ``n`` bytes in pieces (never asking the stream for more than 1 MiB)."""
    buf = bytearray()
    while len(buf) < n:
        piece = f.read(min(_CHUNK, n - len(buf)))
        if not piece:
            break
        buf += piece
    return buf


def _check_header(path: Path, head: bytes, magic: int, ndim: int) -> list[int]:
    header = 4 + 4 * ndim
    if head[:2] == b"\x1f\x8b" and path.suffix != ".gz":
        raise DataFileError(
            f"{path}: this file is gzip-compressed: rename it to {path.name}.gz (or gunzip it)"
        )
    if len(head) < 4 or int.from_bytes(head[:4], "big") != magic:
        found = int.from_bytes(head[:4], "big") if len(head) >= 4 else None
        raise DataFileError(
            f"{path}: not an IDX file of {ndim}-d unsigned bytes: expected magic {magic:#010x}, "
            f"found {'nothing' if found is None else hex(found)}"
            + ("" if found is None else f" ({_describe_magic(found)})")
        )
    if len(head) < header:
        raise DataFileError(
            f"{path}: {len(head)} bytes, shorter than the {header}-byte IDX header: truncated"
        )
    return [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]


def read_idx(path: str | Path, magic: int, ndim: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes (``.gz`` decompressed on the fly).

    Parameters
    ----------
    path : path
        The file; a name ending in ``.gz`` is read as gzip.
    magic : int
        The expected magic number (``0x0803`` images, ``0x0801`` labels).
    ndim : int
        The number of dimensions ``magic`` declares.

    Returns
    -------
    numpy.ndarray
        A writable uint8 array of the declared shape.

    Raises
    ------
    DataFileError
        Empty, truncated, longer than declared, a wrong magic number, a corrupt
        gzip stream; the message names the file and the sizes.
    """
    path = Path(path)
    header = 4 + 4 * ndim
    gz = path.suffix == ".gz"
    f, size = open_data_file(path)
    try:
        with f:
            if size == 0:
                raise DataFileError(
                    f"{path}: empty file (0 bytes): expected an IDX file (magic {magic:#010x})"
                )
            if gz and f.read(2) != b"\x1f\x8b":
                raise DataFileError(
                    f"{path}: named .gz but not gzip-compressed: rename it to {path.stem} "
                    "(or gzip it)"
                )
            f.seek(0)
            stream: BinaryIO = gzip.GzipFile(fileobj=f, mode="rb") if gz else f  # type: ignore[assignment]
            dims = _check_header(path, bytes(_read_upto(stream, header)), magic, ndim)
            n = 1
            for d in dims:
                n *= d
            if gz:
                data = _read_gzip_payload(path, stream, n, size, dims)
            else:
                if size != header + n:
                    raise DataFileError(
                        f"{path}: header says {dims} -> {header + n} bytes, file has {size}: "
                        + ("truncated" if size < header + n else "extra bytes at the end")
                        + " or corrupt"
                    )
                data = _read_upto(stream, n)
                if len(data) != n:
                    raise DataFileError(f"{path}: shrank while being read ({len(data)} of {n})")
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, PermissionError | FileNotFoundError):
            raise
        raise DataFileError(f"{path}: cannot read ({exc}): truncated or corrupt gzip?") from exc
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _read_gzip_payload(path: Path, stream: BinaryIO, n: int, size: int, dims: list) -> bytearray:
    if n > _GZIP_MAX_RATIO * size + _GZIP_SLACK:
        raise DataFileError(
            f"{path}: header {dims} declares {n} bytes of data, more than a gzip of {size} "
            f"bytes can inflate to (at most ~{_GZIP_MAX_RATIO}x): corrupt or crafted file"
        )
    data = _read_upto(stream, n)
    if len(data) < n:
        raise DataFileError(
            f"{path}: header {dims} declares {n} bytes of data, the gzip holds only "
            f"{len(data)}: truncated"
        )
    if stream.read(1):
        raise DataFileError(
            f"{path}: the gzip stream goes on beyond the {n} bytes its header {dims} declares: "
            "corrupt, or not this IDX file (refused without reading the rest)"
        )
    return data


def _find_files(data_dir: Path) -> dict[str, Path]:
    paths = {}
    for key, name in MNIST_FILES.items():
        found = [p for p in (data_dir / name, data_dir / (name + ".gz")) if p.exists()]
        if not found:
            raise FileNotFoundError(
                f"MNIST file {name}[.gz] not found in {data_dir}; expected the four IDX files "
                f"{', '.join(MNIST_FILES.values())}"
            )
        paths[key] = found[0]
    return paths


def load_mnist_idx(data_dir: str | Path) -> dict[str, np.ndarray]:
    """Load MNIST (or Fashion-MNIST) from the four IDX files, each raw or gzipped.

    Returns ``x`` (n, rows*cols) uint8, ``y`` int64 in ``0..9``, ``x_test``,
    ``y_test``. Labels outside 0..9, images and labels that differ in number,
    empty files and train and test images of different sizes are refused with a
    message naming the file (and the first bad index).

    Examples
    --------
    >>> load_mnist_idx("/no/such/folder")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: data folder /no/such/folder does not exist...
    """
    data_dir = check_folder(data_dir)
    paths = _find_files(data_dir)
    out: dict[str, Any] = {}
    for which, images_key, labels_key in (
        ("x", "train_images", "train_labels"),
        ("x_test", "test_images", "test_labels"),
    ):
        images = read_idx(paths[images_key], _IMAGES, 3)
        labels = read_idx(paths[labels_key], _LABELS, 1)
        if images.shape[0] == 0:
            raise DataFileError(f"{paths[images_key]}: holds no images (the header says 0)")
        if images.shape[1] * images.shape[2] == 0:
            raise DataFileError(
                f"{paths[images_key]}: images of {images.shape[1]}x{images.shape[2]} = 0 pixels"
            )
        if images.shape[0] != labels.shape[0]:
            raise DataFileError(
                f"{paths[images_key]} holds {images.shape[0]} images but {paths[labels_key]} "
                f"holds {labels.shape[0]} labels: they must match one to one"
            )
        out[which] = images.reshape(len(images), -1)
        out["y" if which == "x" else "y_test"] = check_labels(labels, paths[labels_key])
        out[which + "_shape"] = images.shape[1:]
    train_shape, test_shape = out.pop("x_shape"), out.pop("x_test_shape")
    if train_shape != test_shape:
        raise DataFileError(
            f"{paths['train_images']} holds images of {train_shape[0]}x{train_shape[1]} pixels "
            f"but {paths['test_images']} of {test_shape[0]}x{test_shape[1]}: train and test "
            "images must have one size (files of two different datasets?)"
        )
    return out
