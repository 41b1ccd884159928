"""Reliability of the data loaders: hostile but ordinary files and options (issue 11, "Data files").

Every file is small, written in ``tmp_path`` in the real formats (IDX, optionally gzipped,
for MNIST; python pickles and binary records for CIFAR-10). The two decompression/pickle
bombs are measured in a subprocess: its peak RSS (``resource.getrusage``) may grow by at most
200 MB over its baseline after the imports; the bombs would need gigabytes if read whole.
"""

from __future__ import annotations

import codecs
import gzip
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dropkit.experiment.data import DataFileError, load_dataset, standardize
from dropkit.experiment.data.files import load_cifar10, load_mnist_idx, safe_unpickle
from dropkit.experiment.data.mnist1d import make_mnist1d

_reconstruct = np.ndarray.__reduce__(np.empty(0))[0]
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False

# ---- writers of small files in the real formats --------------------------------------------


def _idx(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _mnist_arrays(train_side: int = 28, test_side: int = 28) -> dict:
    rs = np.random.default_rng(3)
    return {
        "train-images-idx3-ubyte": (rs.integers(0, 256, (7, train_side, train_side)), 0x803),
        "train-labels-idx1-ubyte": (rs.integers(0, 10, 7), 0x801),
        "t10k-images-idx3-ubyte": (rs.integers(0, 256, (3, test_side, test_side)), 0x803),
        "t10k-labels-idx1-ubyte": (rs.integers(0, 10, 3), 0x801),
    }


def _write_mnist(folder: Path, gz: bool = False, arrays: dict | None = None) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = arrays or _mnist_arrays()
    for name, (a, magic) in arrays.items():
        raw = _idx(np.asarray(a), magic)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


def _cifar_arrays(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rs = np.random.default_rng(seed)
    return rs.integers(0, 256, (n, 3072), dtype=np.uint8), rs.integers(0, 10, n).tolist()


CIFAR_NAMES = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]


def _write_cifar_python(folder: Path, n: int = 4, protocol: int = 2, **override) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(CIFAR_NAMES):
        data, labels = _cifar_arrays(n, i)
        batch = {b"batch_label": b"b", b"labels": labels, b"data": data}
        batch.update(override.get(name, {}))
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    return folder


def _write_cifar_binary(folder: Path, n: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(CIFAR_NAMES):
        data, labels = _cifar_arrays(n, i)
        records = np.concatenate([np.array(labels, np.uint8)[:, None], data], axis=1)
        (folder / f"{name}.bin").write_bytes(records.tobytes())
    return folder


class _Reduce:
    """Pickles as ``func(*args)`` (and ``BUILD state`` when given): a crafted pickle."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        if self.state is None:
            return (self.func, self.args)
        return (self.func, self.args, self.state)


def _peak_rss_extra_mb(code: str) -> tuple[float, str]:
    """Run ``code`` in a fresh interpreter; return its peak RSS growth (MB) and its output.

    The child caps its address space at 4 GiB so that a regression fails the test with a
    MemoryError instead of exhausting the machine.
    """
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
        "import numpy as np\n"
        "from dropkit.experiment.data import load_dataset\n"
        "from dropkit.experiment.data.files import load_cifar10, load_mnist_idx\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n" + "".join("    " + line + "\n" for line in code.splitlines()) + ""
        "except BaseException as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print('EXTRA_MB', (peak - base) / 1024)\n"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    out = done.stdout + done.stderr
    extra = [line for line in out.splitlines() if line.startswith("EXTRA_MB")]
    assert extra, out
    return float(extra[-1].split()[1]), out


# ==== MNIST IDX: decompression bombs and declared sizes ====================================


# case: a small .gz whose stream goes on for 1 GiB after the declared images (gzip bomb)
def test_mnist_gzip_bomb_is_refused_with_bounded_memory(tmp_path):
    _write_mnist(tmp_path, gz=True)
    images = np.zeros((1000, 28, 28), np.uint8)
    zeros = gzip.compress(b"\0" * (16 << 20), compresslevel=9)  # 16 MiB -> ~16 KB
    bomb = gzip.compress(_idx(images, 0x803)) + zeros * 64  # members concatenate: +1 GiB
    assert len(bomb) < 3 << 20
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(bomb)
    with pytest.raises(DataFileError, match=r"train-images-idx3-ubyte.gz: .*beyond the"):
        load_mnist_idx(tmp_path)
    extra, out = _peak_rss_extra_mb(f"load_mnist_idx({str(tmp_path)!r})")
    assert "DataFileError" in out and "beyond the" in out, out
    assert extra < 200, out


# case: a .gz whose header declares far more pixels than any gzip of its size can inflate to
def test_mnist_gzip_header_declaring_more_than_the_file_can_hold(tmp_path):
    _write_mnist(tmp_path, gz=True)
    header = (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (60000, 28, 28))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + b"\1" * 100))
    with pytest.raises(DataFileError, match=r"declares 47040000 bytes.*gzip of \d+ bytes"):
        load_mnist_idx(tmp_path)


# case: a .gz that inflates to less than its header declares (truncated stream)
def test_mnist_gzip_shorter_than_its_header(tmp_path):
    _write_mnist(tmp_path, gz=True)
    raw = _idx(np.zeros((7, 28, 28)), 0x803)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(DataFileError, match=r"declares 5488 bytes.*only 5478: truncated"):
        load_mnist_idx(tmp_path)


# case: a .gz that inflates to a few bytes more than its header declares
def test_mnist_gzip_with_extra_trailing_bytes(tmp_path):
    _write_mnist(tmp_path, gz=True)
    raw = _idx(np.zeros(7), 0x801)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw + b"\0\0"))
    with pytest.raises(DataFileError, match=r"train-labels-idx1-ubyte.gz: .*beyond the 7 bytes"):
        load_mnist_idx(tmp_path)


# case: a raw IDX file whose header declares 2**32-1 images of 2**32-1 squared pixels
def test_mnist_raw_header_declaring_huge_sizes(tmp_path):
    _write_mnist(tmp_path)
    huge = b"".join((2**32 - 1).to_bytes(4, "big") for _ in range(3))
    (tmp_path / "train-images-idx3-ubyte").write_bytes((0x803).to_bytes(4, "big") + huge + b"x")
    with pytest.raises(DataFileError, match=r"header says \[4294967295, .*file has 17"):
        load_mnist_idx(tmp_path)


# case: a raw IDX file with extra trailing bytes
def test_mnist_raw_with_extra_trailing_bytes(tmp_path):
    _write_mnist(tmp_path)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\n")
    with pytest.raises(DataFileError, match=r"t10k-labels-idx1-ubyte: header says \[3\] -> 11"):
        load_mnist_idx(tmp_path)


# case: zero-length files, raw and gzipped
@pytest.mark.parametrize("gz", [False, True])
def test_mnist_zero_length_file(tmp_path, gz):
    _write_mnist(tmp_path, gz=gz)
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(b"")
    with pytest.raises(DataFileError, match=r"train-images-idx3-ubyte(.gz)?: empty file \(0 bytes"):
        load_mnist_idx(tmp_path)


# case: a file shorter than the IDX header
def test_mnist_file_shorter_than_the_header(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00")
    with pytest.raises(DataFileError, match=r"5 bytes, shorter than the 16-byte IDX header"):
        load_mnist_idx(tmp_path)


# case: wrong magic numbers (labels file in place of images, random bytes)
def test_mnist_wrong_magic_numbers(tmp_path):
    _write_mnist(tmp_path)
    labels = (tmp_path / "train-labels-idx1-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(labels)
    with pytest.raises(
        DataFileError, match=r"expected magic 0x00000803, found 0x801 \(type byte 0x08, 1 dim"
    ):
        load_mnist_idx(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(DataFileError, match=r"train-images-idx3-ubyte: not an IDX file"):
        load_mnist_idx(tmp_path)


# case: a gzipped file without the .gz suffix
def test_mnist_gzip_content_without_gz_suffix(tmp_path):
    _write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(DataFileError, match=r"gzip-compressed: rename it to .*\.gz"):
        load_mnist_idx(tmp_path)


# case: a .gz of garbage: garbage bytes named .gz, and garbage bytes gzipped
def test_mnist_gz_of_garbage(tmp_path):
    _write_mnist(tmp_path, gz=True)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"garbage" + bytes(range(256)))
    with pytest.raises(DataFileError, match=r"t10k-labels-idx1-ubyte.gz: named .gz but not gzip"):
        load_mnist_idx(tmp_path)
    path.write_bytes(gzip.compress(b"garbage" + bytes(range(256))))
    with pytest.raises(DataFileError, match=r"t10k-labels-idx1-ubyte.gz: not an IDX file"):
        load_mnist_idx(tmp_path)


# case: a raw IDX file named .gz (not compressed)
def test_mnist_raw_file_named_gz(tmp_path):
    _write_mnist(tmp_path, gz=True)
    raw = _idx(np.zeros(7), 0x801)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(raw)
    with pytest.raises(DataFileError, match=r"named .gz but not gzip-compressed: rename it to"):
        load_mnist_idx(tmp_path)


# case: a .gz with a valid gzip header but a corrupt deflate stream (zlib.error)
def test_mnist_gz_with_corrupt_deflate_stream(tmp_path):
    _write_mnist(tmp_path, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    good = path.read_bytes()
    path.write_bytes(good[:10] + b"\xff" * (len(good) - 10))
    with pytest.raises(DataFileError, match=r"t10k-images-idx3-ubyte.gz: cannot read"):
        load_mnist_idx(tmp_path)


# case: a .gz whose CRC does not match its data
def test_mnist_gz_with_bad_crc(tmp_path):
    _write_mnist(tmp_path, gz=True)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    good = bytearray(path.read_bytes())
    good[-8] ^= 0xFF  # the CRC32 of the trailer
    path.write_bytes(bytes(good))
    with pytest.raises(DataFileError, match=r"t10k-labels-idx1-ubyte.gz: cannot read.*CRC"):
        load_mnist_idx(tmp_path)


# case: a truncated .gz (the original test's case, kept: clear)
def test_mnist_truncated_gz(tmp_path):
    _write_mnist(tmp_path, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataFileError, match=r"t10k-images-idx3-ubyte.gz: "):
        load_mnist_idx(tmp_path)


# ==== MNIST: what the files hold ===========================================================


# case: MNIST label 255 (would build a 256-class net)
@pytest.mark.parametrize("bad", [255, 10])
def test_mnist_label_out_of_range_names_file_and_index(tmp_path, bad):
    arrays = _mnist_arrays()
    arrays["train-labels-idx1-ubyte"] = (np.array([1, 2, 3, 4, bad, 5, bad]), 0x801)
    _write_mnist(tmp_path, arrays=arrays)
    with pytest.raises(DataFileError, match=rf"train-labels-idx1-ubyte: label {bad} at index 4 "):
        load_mnist_idx(tmp_path)
    with pytest.raises(DataFileError, match=r"outside 0..9"):
        load_dataset("mnist", data_dir=tmp_path)


# case: MNIST train and test images of different sizes
def test_mnist_train_and_test_image_sizes_differ(tmp_path):
    _write_mnist(tmp_path, arrays=_mnist_arrays(train_side=28, test_side=32))
    with pytest.raises(DataFileError, match=r"28x28 .*t10k-images-idx3-ubyte.* 32x32"):
        load_dataset("mnist", data_dir=tmp_path)


# case: images and labels differ in number (names both files)
def test_mnist_images_and_labels_differ_in_number(tmp_path):
    arrays = _mnist_arrays()
    arrays["t10k-labels-idx1-ubyte"] = (np.array([1, 2]), 0x801)
    _write_mnist(tmp_path, arrays=arrays)
    with pytest.raises(DataFileError, match=r"t10k-images-idx3-ubyte holds 3 images.*labels.* 2"):
        load_mnist_idx(tmp_path)


# case: a file declaring zero images, or images of zero pixels
@pytest.mark.parametrize("shape", [(0, 28, 28), (7, 0, 28)])
def test_mnist_empty_images(tmp_path, shape):
    arrays = _mnist_arrays()
    arrays["train-images-idx3-ubyte"] = (np.zeros(shape), 0x803)
    if shape[0] == 0:
        arrays["train-labels-idx1-ubyte"] = (np.zeros(0), 0x801)
    _write_mnist(tmp_path, arrays=arrays)
    with pytest.raises(DataFileError, match=r"train-images-idx3-ubyte: .*(no images|0 pixels)"):
        load_mnist_idx(tmp_path)


# case: a directory where an IDX file should be
def test_mnist_directory_instead_of_file(tmp_path):
    _write_mnist(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.unlink()
    path.mkdir()
    with pytest.raises(DataFileError, match=r"train-labels-idx1-ubyte is a directory, not a file"):
        load_mnist_idx(tmp_path)


# case: a device file (/dev/zero, endless) linked in place of an IDX file
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_mnist_device_file_instead_of_file(tmp_path):
    _write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.unlink()
    path.symlink_to("/dev/zero")
    with pytest.raises(DataFileError, match=r"train-images-idx3-ubyte is not a regular file"):
        load_mnist_idx(tmp_path)


# case: an unreadable file (permission denied; simulated when running as root)
def test_mnist_unreadable_file(tmp_path, monkeypatch):
    _write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    if ROOT:
        real_open = open

        def deny(file, *args, **kwargs):
            if Path(file) == path:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr("builtins.open", deny)
    else:
        path.chmod(0)
    try:
        with pytest.raises(PermissionError, match=r"train-images-idx3-ubyte: permission denied"):
            load_mnist_idx(tmp_path)
    finally:
        path.chmod(0o644)


# case: symlinks to valid files load; a dangling symlink is "not found"
def test_mnist_symlinks(tmp_path):
    arrays = _write_mnist(tmp_path / "real", gz=True)
    (tmp_path / "links").mkdir()
    for name in arrays:
        (tmp_path / "links" / (name + ".gz")).symlink_to(tmp_path / "real" / (name + ".gz"))
    d = load_mnist_idx(tmp_path / "links")
    np.testing.assert_array_equal(d["y"], arrays["train-labels-idx1-ubyte"][0])
    (tmp_path / "real" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\[.gz\] not found"):
        load_mnist_idx(tmp_path / "links")


# case: a symlink loop where an IDX file should be
def test_mnist_symlink_loop(tmp_path):
    _write_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.unlink()
    path.symlink_to(path)
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\[.gz\] not found"):
        load_mnist_idx(tmp_path)


# case: gzipped and raw files mixed in one folder load (correct acceptance)
def test_mnist_mixed_raw_and_gz(tmp_path):
    arrays = _write_mnist(tmp_path, gz=True)
    raw = tmp_path / "train-images-idx3-ubyte"
    raw.write_bytes(gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes()))
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    d = load_mnist_idx(tmp_path)
    np.testing.assert_array_equal(d["x"], arrays["train-images-idx3-ubyte"][0].reshape(7, 784))
    assert d["x"].flags.writeable


# case: a multi-member .gz that holds exactly the declared bytes loads (correct acceptance)
def test_mnist_multi_member_gzip_loads(tmp_path):
    arrays = _write_mnist(tmp_path, gz=True)
    raw = _idx(arrays["train-images-idx3-ubyte"][0], 0x803)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(raw[:100]) + gzip.compress(raw[100:]))
    np.testing.assert_array_equal(
        load_mnist_idx(tmp_path)["x"], arrays["train-images-idx3-ubyte"][0].reshape(7, 784)
    )


# ==== CIFAR-10 python pickles: arrays rebuilt only from the file's bytes ===================


def _bomb_batch(n: int) -> dict:
    """A batch whose arrays are _reconstruct calls with a declared shape and no data."""
    return {
        b"data": _Reduce(_reconstruct, (np.ndarray, (n, 3072), b"B")),
        b"labels": _Reduce(_reconstruct, (np.ndarray, (n,), "i8")),  # fresh zero pages
    }


# case: a ~200-byte CIFAR pickle whose _reconstruct declares (100000, 3072) and no data
def test_cifar_reconstruct_bomb_is_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(_bomb_batch(100_000), protocol=2))
    assert path.stat().st_size < 400
    with pytest.raises(DataFileError, match=r"data_batch_1: .*array with no data"):
        safe_unpickle(path)


# case: the same bomb in all six batches, measured: memory stays bounded
def test_cifar_reconstruct_bomb_memory_is_bounded(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in CIFAR_NAMES:
        (folder / name).write_bytes(pickle.dumps(_bomb_batch(100_000), protocol=2))
    extra, out = _peak_rss_extra_mb(f"load_cifar10({str(tmp_path)!r})")
    assert "DataFileError" in out, out
    assert extra < 200, out


# case: _reconstruct + BUILD whose declared shape does not match the bytes given
def test_cifar_array_whose_shape_does_not_match_its_bytes(tmp_path):
    state = (1, (100_000, 3072), np.dtype("u1"), False, b"\0" * 12)
    path = tmp_path / "data_batch_1"
    path.write_bytes(
        pickle.dumps({b"data": _Reduce(_reconstruct, (np.ndarray, (0,), b"b"), state)}, 2)
    )
    with pytest.raises(DataFileError, match=r"data_batch_1: .*307200000 bytes.* 12"):
        safe_unpickle(path)


# case: numpy.ndarray called directly with a huge shape (uninitialised memory)
def test_cifar_ndarray_constructor_is_not_callable(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Reduce(np.ndarray, ((100_000, 3072),))}, 2))
    with pytest.raises(DataFileError, match=r"data_batch_1: not a readable"):
        safe_unpickle(path)


# case: builtins.bytes(10**12) (a huge allocation from a tiny file)
def test_cifar_bytes_with_a_huge_size_is_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Reduce(bytes, (10**12,))}, 2))
    with pytest.raises(DataFileError, match=r"data_batch_1: .*bytes\(\) only"):
        safe_unpickle(path)


# case: _codecs.encode with a codec other than latin1 (e.g. a bytes-to-bytes codec)
def test_cifar_codecs_encode_only_latin1(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Reduce(codecs.encode, (b"x" * 10, "zlib"))}, 2))
    with pytest.raises(DataFileError, match=r"data_batch_1: .*latin1"):
        safe_unpickle(path)


# case: object arrays (a pickle that rebuilds arbitrary objects through an array)
def test_cifar_object_arrays_are_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": np.array([1, "a"], dtype=object)}, 2))
    with pytest.raises(DataFileError, match=r"data_batch_1: .*dtype .*object"):
        safe_unpickle(path)


# case: an opcode declaring 64 GiB of bytes in a tiny file (MemoryError before)
def test_cifar_pickle_declaring_huge_bytes(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 2**36) + b"abc.")
    with pytest.raises(DataFileError, match=r"data_batch_1: not a readable.*only 4 remain"):
        safe_unpickle(path)


# case: a protocol-4 frame declaring 64 GiB in a tiny file
def test_cifar_pickle_declaring_a_huge_frame(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x04\x95" + struct.pack("<Q", 2**36) + b"N.")
    with pytest.raises(DataFileError, match=r"data_batch_1: not a readable.*frame"):
        safe_unpickle(path)


# case: extra trailing bytes after the pickle's STOP
def test_cifar_pickle_with_trailing_bytes(tmp_path):
    _write_cifar_python(tmp_path)
    path = tmp_path / "data_batch_4"
    path.write_bytes(path.read_bytes() + b"\0" * 5)
    with pytest.raises(DataFileError, match=r"data_batch_4: .*5 bytes after the end"):
        load_cifar10(tmp_path)


# case: a pickle nested far deeper than any batch (100000 lists, each in the next)
def test_cifar_deeply_nested_pickle(tmp_path):
    n = 100_000
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02" + b"]" * n + b"a" * (n - 1) + b".")  # EMPTY_LIST, APPEND
    with pytest.raises(DataFileError, match=r"data_batch_1: .*nested deeper than"):
        safe_unpickle(path)


# case: a cyclic pickle (a list holding itself) with an array inside loads without looping
def test_cifar_cyclic_pickle(tmp_path):
    cyc: list = [np.arange(3)]
    cyc.append(cyc)
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(cyc, 2))
    got = safe_unpickle(path)
    assert got[1] is got and got[0].tolist() == [0, 1, 2]


# case: NumPy pickles of protocol 5 (numpy._core.numeric._frombuffer) load
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar_every_pickle_protocol_loads(tmp_path, protocol):
    _write_cifar_python(tmp_path, protocol=protocol)
    d = load_cifar10(tmp_path)
    data, labels = _cifar_arrays(4, 0)
    np.testing.assert_array_equal(d["x"][:4], data)
    assert d["y"][:4].tolist() == labels
    assert d["x"].flags.writeable


# case: NumPy 1.x module names (numpy.core.*) in protocol 2 and 5 pickles
@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_numpy1_module_names_load(tmp_path, protocol):
    raw = pickle.dumps({b"data": np.arange(6, dtype=np.uint8)}, protocol)
    if protocol == 2:  # GLOBAL opcodes: text lines
        raw = raw.replace(b"numpy._core.", b"numpy.core.")
    else:  # drop the FRAME (optional), then shorten the length-prefixed module name
        assert raw[2] == 0x95
        raw = raw[:2] + raw[11:]
        raw = raw.replace(b"\x8c\x13numpy._core.numeric", b"\x8c\x12numpy.core.numeric")
    assert b"numpy.core." in raw and b"_core" not in raw
    path = tmp_path / "x.pkl"
    path.write_bytes(raw)
    assert safe_unpickle(path)[b"data"].tolist() == [0, 1, 2, 3, 4, 5]


# case: empty arrays (protocol 2 writes builtins.bytes() for b"") load
@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_empty_arrays_load(tmp_path, protocol):
    empty = {b"data": np.empty((0, 3072), np.uint8), b"labels": []}
    _write_cifar_python(tmp_path, protocol=protocol, data_batch_3=empty)
    d = load_cifar10(tmp_path)
    assert d["x"].shape == (16, 3072) and d["y"].shape == (16,)


# case: Fortran-order, big-endian and other plain dtypes are rebuilt exactly
@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_array_layouts_and_dtypes_round_trip(tmp_path, protocol):
    arrays = {
        b"f": np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
        b"be": np.arange(5, dtype=">i4"),
        b"b": np.array([True, False]),
        b"s": np.array([b"ab", b"c"]),
        b"u": np.array(["x", "yz"]),
        b"c": np.array([1 + 2j]),
        b"z": np.zeros((2, 0, 3)),
        b"scalar": np.int64(7),
        b"dt": np.dtype("<f8"),
    }
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol))
    got = safe_unpickle(path)
    for key, want in arrays.items():
        if isinstance(want, np.ndarray):
            np.testing.assert_array_equal(got[key], want)
            assert got[key].dtype == want.dtype and got[key].shape == want.shape
        else:
            assert got[key] == want and type(got[key]) is type(want)


# case: labels given as NumPy integers (np.int64 scalars, an int array) load
def test_cifar_numpy_integer_labels_load(tmp_path):
    over = {
        "data_batch_1": {b"labels": list(np.arange(4, dtype=np.int64))},
        "data_batch_2": {b"labels": np.array([0, 9, 2, 3], np.uint8)},
    }
    _write_cifar_python(tmp_path, **over)
    d = load_cifar10(tmp_path)
    assert d["y"][:8].tolist() == [0, 1, 2, 3, 0, 9, 2, 3] and d["y"].dtype == np.int64


# ==== CIFAR-10: what the batches hold ======================================================


# case: a non-integer label (3.7 was truncated to 3)
def test_cifar_float_label_is_refused(tmp_path):
    _write_cifar_python(tmp_path, data_batch_2={b"labels": [1, 2, 3.7, 4]})
    with pytest.raises(DataFileError, match=r"data_batch_2: label 3.7 at index 2 is not an int"):
        load_cifar10(tmp_path)


# case: labels as strings (bytes or str) and as booleans
@pytest.mark.parametrize("bad", [b"3", "3", True, None, [1]])
def test_cifar_non_integer_label_types_are_refused(tmp_path, bad):
    _write_cifar_python(tmp_path, test_batch={b"labels": [1, bad, 3, 4]})
    with pytest.raises(DataFileError, match=r"test_batch: label .* at index 1 is not an integer"):
        load_cifar10(tmp_path)


# case: labels as a float array, or a string array
@pytest.mark.parametrize("bad", [np.array([1.0, 2.0, 3.0, 4.0]), np.array(["1", "2", "3", "4"])])
def test_cifar_label_arrays_of_the_wrong_dtype(tmp_path, bad):
    _write_cifar_python(tmp_path, data_batch_5={b"labels": bad})
    with pytest.raises(DataFileError, match=r"data_batch_5: labels must be integers.*dtype"):
        load_cifar10(tmp_path)


# case: labels out of range (10, -1, a huge integer)
@pytest.mark.parametrize("bad", [10, -1, 10**30])
def test_cifar_label_out_of_range(tmp_path, bad):
    _write_cifar_python(tmp_path, data_batch_1={b"labels": [1, 2, 3, bad]})
    with pytest.raises(DataFileError, match=rf"data_batch_1: label {bad} at index 3 is outside"):
        load_cifar10(tmp_path)


# case: labels not a list at all, or a 2-d array
@pytest.mark.parametrize("bad", [7, b"0123", np.zeros((2, 2), np.int64)])
def test_cifar_labels_not_a_sequence(tmp_path, bad):
    _write_cifar_python(tmp_path, data_batch_1={b"labels": bad})
    with pytest.raises(DataFileError, match=r"data_batch_1: .*labels"):
        load_cifar10(tmp_path)


# case: non-finite pixels (NaN, inf) in float data
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_cifar_non_finite_pixels(tmp_path, bad):
    data = np.ones((4, 3072))
    data[2, 17] = bad
    _write_cifar_python(tmp_path, data_batch_4={b"data": data})
    with pytest.raises(DataFileError, match=r"data_batch_4: non-finite pixel .* at \(2, 17\)"):
        load_cifar10(tmp_path)


# case: finite float pixels load (correct acceptance)
def test_cifar_finite_float_pixels_load(tmp_path):
    _write_cifar_python(tmp_path, data_batch_4={b"data": np.full((4, 3072), 0.5)})
    d = load_dataset("cifar10", data_dir=tmp_path)
    assert np.isfinite(d.x_train).all() and d.n_features == 3072


# case: finite float pixels so large that standardising overflows (1e308)
def test_cifar_huge_float_pixels(tmp_path):
    data = np.zeros((4, 3072))
    data[0, 0], data[1, 0] = 1e308, -1e308
    _write_cifar_python(tmp_path, data_batch_1={b"data": data})
    with pytest.raises(ValueError, match=r"too large to standardise"):
        load_dataset("cifar10", data_dir=tmp_path)


# case: pixels of a non-numeric dtype (strings, booleans, complex)
@pytest.mark.parametrize("dtype", ["S1", "U1", "?", "c16"])
def test_cifar_pixels_of_the_wrong_dtype(tmp_path, dtype):
    _write_cifar_python(tmp_path, test_batch={b"data": np.zeros((4, 3072), dtype)})
    with pytest.raises(DataFileError, match=r"test_batch: .*pixels must be real numbers"):
        load_cifar10(tmp_path)


# case: data of the wrong shape, and data not an array (kept: already clear)
@pytest.mark.parametrize("bad", [np.zeros((4, 32, 32, 3), np.uint8), [[0] * 3072] * 4, None])
def test_cifar_data_of_the_wrong_shape_or_type(tmp_path, bad):
    _write_cifar_python(tmp_path, data_batch_1={b"data": bad})
    with pytest.raises(DataFileError, match=r"data_batch_1: expected"):
        load_cifar10(tmp_path)


# case: a batch that is not a dict (kept: already clear)
def test_cifar_batch_not_a_dict(tmp_path):
    _write_cifar_python(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps([1, 2, 3], 2))
    with pytest.raises(DataFileError, match=r"test_batch: expected a dict batch, got list"):
        load_cifar10(tmp_path)


# case: zero-length and garbage python batches
@pytest.mark.parametrize("content", [b"", b"garbage that is not a pickle", b"\x80\x02}q\x00"])
def test_cifar_zero_length_and_garbage_python_batches(tmp_path, content):
    _write_cifar_python(tmp_path)
    (tmp_path / "data_batch_2").write_bytes(content)
    with pytest.raises(DataFileError, match=r"data_batch_2: "):
        load_cifar10(tmp_path)


# case: a directory where a batch file should be
@pytest.mark.parametrize("binary", [False, True])
def test_cifar_directory_instead_of_batch(tmp_path, binary):
    if binary:
        _write_cifar_binary(tmp_path)
        path = tmp_path / "data_batch_1.bin"
    else:
        _write_cifar_python(tmp_path)
        path = tmp_path / "data_batch_1"
    path.unlink()
    path.mkdir()
    with pytest.raises(DataFileError, match=r"data_batch_1(.bin)? is a directory, not a file"):
        load_cifar10(tmp_path)


# case: an unreadable batch (permission denied; simulated when running as root)
def test_cifar_unreadable_batch(tmp_path, monkeypatch):
    _write_cifar_python(tmp_path)
    path = tmp_path / "data_batch_1"
    if ROOT:
        real_open = open

        def deny(file, *args, **kwargs):
            if Path(file) == path:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr("builtins.open", deny)
    else:
        path.chmod(0)
    try:
        with pytest.raises(PermissionError, match=r"data_batch_1: permission denied"):
            load_cifar10(tmp_path)
    finally:
        path.chmod(0o644)


# case: batches reached through symlinks load; a dangling link counts as missing
def test_cifar_symlinks(tmp_path):
    real = _write_cifar_python(tmp_path / "real")
    links = tmp_path / "links"
    links.mkdir()
    for name in CIFAR_NAMES:
        (links / name).symlink_to(real / name)
    assert load_cifar10(links)["x"].shape == (20, 3072)
    (real / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match=r"no CIFAR-10 files under"):
        load_cifar10(links)


# case: binary batches with a label byte out of range
def test_cifar_binary_label_out_of_range(tmp_path):
    folder = _write_cifar_binary(tmp_path)
    path = folder / "data_batch_3.bin"
    raw = bytearray(path.read_bytes())
    raw[2 * 3073] = 200
    path.write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match=r"data_batch_3.bin: label 200 at index 2 is outside"):
        load_cifar10(tmp_path)


# case: zero-length and partial-record binary batches (kept: already clear)
@pytest.mark.parametrize("cut", [None, 100])
def test_cifar_binary_zero_length_and_partial(tmp_path, cut):
    folder = _write_cifar_binary(tmp_path)
    path = folder / "test_batch.bin"
    path.write_bytes(b"" if cut is None else path.read_bytes()[:-cut])
    with pytest.raises(DataFileError, match=r"test_batch.bin: expected a whole number"):
        load_cifar10(tmp_path)


# case: data_dir is a file, or does not exist
def test_cifar_data_dir_is_a_file_or_missing(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"f is not a folder"):
        load_cifar10(tmp_path / "f")
    with pytest.raises(NotADirectoryError, match=r"f is not a folder"):
        load_mnist_idx(tmp_path / "f")
    with pytest.raises(FileNotFoundError, match=r"nope does not exist"):
        load_dataset("cifar10", data_dir=tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"nope does not exist"):
        load_dataset("mnist", data_dir=tmp_path / "nope")


# case: several threads load the same files at once (loaders keep no shared state)
def test_concurrent_loads_agree(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    _write_mnist(tmp_path / "m", gz=True)
    _write_cifar_python(tmp_path / "c", protocol=5)
    with ThreadPoolExecutor(4) as pool:
        mnist = list(pool.map(lambda _: load_mnist_idx(tmp_path / "m"), range(4)))
        cifar = list(pool.map(lambda _: load_cifar10(tmp_path / "c"), range(4)))
    for got in (mnist, cifar):
        for d in got[1:]:
            for key in ("x", "y", "x_test", "y_test"):
                np.testing.assert_array_equal(d[key], got[0][key])


# ==== load_dataset options ================================================================


# case: train_size of the wrong type (float, string, bool)
@pytest.mark.parametrize("bad", [2.5, "10", True, [5]])
def test_train_size_of_the_wrong_type(bad):
    with pytest.raises(TypeError, match=r"train_size must be an integer"):
        load_dataset("mnist1d", train_size=bad)


# case: train_size as a NumPy integer (correct acceptance)
def test_train_size_numpy_integer():
    assert load_dataset("mnist1d", train_size=np.int64(50)).x_train.shape == (50, 40)


# case: train_size zero, negative, too large (kept: already clear)
@pytest.mark.parametrize("bad", [0, -1, 4001])
def test_train_size_out_of_range(bad):
    with pytest.raises(ValueError, match=rf"train_size must be between 1 and 4000 .*got {bad}"):
        load_dataset("mnist1d", train_size=bad)


# case: a dataset name of the wrong type
@pytest.mark.parametrize("bad", [None, 3, b"mnist1d"])
def test_dataset_name_of_the_wrong_type(bad):
    with pytest.raises(ValueError, match=r"unknown dataset .*choose one of mnist1d"):
        load_dataset(bad)


# case: data_dir given for a dataset that has no files (it would be silently ignored)
def test_data_dir_for_a_generated_dataset(tmp_path):
    with pytest.raises(ValueError, match=r"'mnist1d' is generated.*data_dir"):
        load_dataset("mnist1d", data_dir=tmp_path)


# case: an empty training or test set from the files (CIFAR batches of no images)
def test_empty_cifar_training_set(tmp_path):
    empty = {b"data": np.empty((0, 3072), np.uint8), b"labels": []}
    _write_cifar_python(tmp_path, **{n: empty for n in CIFAR_NAMES})
    with pytest.raises(DataFileError, match=r"no training images"):
        load_cifar10(tmp_path)


# case: the data error reaches the command line as a message, exit 2, no traceback
def test_cli_reports_a_bad_data_file(tmp_path, capsys):
    from dropkit.experiment.cli import main

    arrays = _mnist_arrays()
    arrays["train-labels-idx1-ubyte"] = (np.array([1, 2, 3, 4, 255, 5, 6]), 0x801)
    _write_mnist(tmp_path / "d", arrays=arrays)
    argv = ["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "d")]
    status = main([*argv, "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and "label 255 at index 4" in err and "Traceback" not in err


# case: --data-dir with the default (generated) dataset was silently ignored
def test_cli_data_dir_with_the_generated_dataset(tmp_path, capsys):
    from dropkit.experiment.cli import main

    argv = ["train", "--data-dir", str(tmp_path), "--epochs", "1", "--quiet"]
    status = main([*argv, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2 and "'mnist1d' is generated" in err and "Traceback" not in err


# case: --train-size 0 and a --train-size larger than the data (kept: clear)
@pytest.mark.parametrize(
    ("size", "message"),
    [("0", "--train-size must be at least 1, got 0"), ("4001", "between 1 and 4000")],
)
def test_cli_train_size_out_of_range(tmp_path, capsys, size, message):
    from dropkit.experiment.cli import main

    argv = ["train", "--train-size", size, "--epochs", "1", "--quiet"]
    status = main([*argv, "--out", str(tmp_path / "run")])
    assert status == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # a refused start writes nothing


# ==== standardize =========================================================================


# case: non-finite features
def test_standardize_non_finite():
    x = np.ones((3, 2))
    x[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"x_train holds a non-finite value nan at \(1, 1\)"):
        standardize(x, np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"x_test holds a non-finite value inf at \(0, 0\)"):
        standardize(np.ones((3, 2)), np.array([[np.inf, 0.0]]))


# case: features too large to standardise (the variance overflows)
def test_standardize_overflow():
    x = np.array([[1e308], [-1e308]])
    with pytest.raises(ValueError, match=r"too large to standardise"):
        standardize(x, x)


# case: mismatched widths, wrong ndim, empty training set
def test_standardize_shapes():
    with pytest.raises(ValueError, match=r"x_train has 2 features and x_test 3"):
        standardize(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"2-d arrays"):
        standardize(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"x_train has no rows"):
        standardize(np.ones((0, 2)), np.ones((1, 2)))


# case: eps negative, NaN or not a number
@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf, "a"])
def test_standardize_eps(bad):
    with pytest.raises((ValueError, TypeError), match=r"eps must be a finite number >= 0"):
        standardize(np.ones((2, 2)), np.ones((2, 2)), eps=bad)


# case: integer and float32 inputs standardise as before (correct acceptance)
def test_standardize_accepts_integers():
    a = np.array([[1, 5], [3, 5]])
    assert standardize(a, a)[0].tolist() == [[-1.0, 0.0], [1.0, 0.0]]


# ==== make_mnist1d options =================================================================


# case: every generator option with a bad value
@pytest.mark.parametrize(
    "key, bad, match",
    [
        ("num_samples", 0, r"num_samples must be an integer >= 10"),
        ("num_samples", -5, r"num_samples must be an integer >= 10"),
        ("num_samples", 2.5, r"num_samples must be an integer"),
        ("num_samples", True, r"num_samples must be an integer"),
        ("train_split", 0.0, r"train_split must be a number in \(0, 1\)"),
        ("train_split", 1.0, r"train_split must be a number in \(0, 1\)"),
        ("train_split", float("nan"), r"train_split must be a number in \(0, 1\)"),
        ("train_split", "0.8", r"train_split must be a number"),
        ("train_split", 1e-9, r"leaves 0 training and 5000 test examples"),
        ("template_len", 0, r"template_len must be an integer >= 1"),
        ("padding", (60, 36), r"padding must be two integers 0 <= low <= high"),
        ("padding", (-1, 5), r"padding must be two integers 0 <= low <= high"),
        ("padding", 5, r"padding must be two integers"),
        ("scale_coeff", float("inf"), r"scale_coeff must be a finite number >= 0"),
        ("scale_coeff", -0.1, r"scale_coeff must be a finite number >= 0"),
        ("max_translation", 0, r"max_translation must be an integer >= 1"),
        ("corr_noise_scale", float("nan"), r"corr_noise_scale must be a finite number"),
        ("iid_noise_scale", -1.0, r"iid_noise_scale must be a finite number >= 0"),
        ("shear_scale", float("-inf"), r"shear_scale must be a finite number"),
        ("final_seq_length", 0, r"final_seq_length must be an integer >= 1"),
        ("seed", -1, r"seed must be an integer in 0..2\*\*32-1"),
        ("seed", 2**32, r"seed must be an integer in 0..2\*\*32-1"),
        ("seed", "a", r"seed must be an integer"),
    ],
)
def test_mnist1d_bad_options(key, bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make_mnist1d(**{key: bad})


# case: unknown option (kept: already clear)
def test_mnist1d_unknown_option():
    with pytest.raises(TypeError, match=r"unknown MNIST-1D parameters \['seeed'\]"):
        make_mnist1d(seeed=1)


# case: NumPy scalars and edge values accepted (correct acceptance)
def test_mnist1d_numpy_scalars_and_edges():
    d = make_mnist1d(num_samples=np.int64(10), seed=np.uint32(2**32 - 1), train_split=0.5)
    assert d["x"].shape == (5, 40) and d["x_test"].shape == (5, 40)
    d = make_mnist1d(num_samples=20, max_translation=1, padding=(0, 0), scale_coeff=0.0)
    assert np.isfinite(d["x"]).all()


# ==== safe_unpickle on its own (public) ====================================================


# case: a global outside the allowed few (kept: already refused, no code run)
def test_safe_unpickle_refuses_other_globals(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({b"d": _Reduce(os.system, ("echo pwned",))}, 2))
    with pytest.raises(DataFileError, match=r"refusing to load global .*system"):
        safe_unpickle(path)
    path.write_bytes(pickle.dumps(_Reduce(eval, ("1",)), 2))
    with pytest.raises(DataFileError, match=r"refusing to load global"):
        safe_unpickle(path)


# case: a dtype whose state adds fields (structured dtype smuggling an object field)
def test_safe_unpickle_refuses_structured_dtype_state(tmp_path):
    state = (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0x3F)
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(_Reduce(np.dtype, ("V8", False, True), state), 2))
    with pytest.raises(DataFileError, match=r"x.pkl: not a readable"):
        safe_unpickle(path)


# case: BUILD on an allowed global (would set attributes on the loader's own functions/classes)
@pytest.mark.parametrize(
    "raw",
    [
        b"\x80\x02cnumpy\ndtype\nN}X\x08\x00\x00\x00__init__K\x01s\x86b.",  # slot state
        b"\x80\x02cnumpy\ndtype\n}X\x01\x00\x00\x00xK\x01sb.",  # dict state
        b"\x80\x02c_codecs\nencode\nN}X\x0c\x00\x00\x00__defaults__)s\x86b.",
        b"\x80\x02cnumpy\nndarray\n}X\x01\x00\x00\x00xK\x01sb.",
        b"\x80\x02cnumpy\nndarray\n.",  # a bare global as the result
    ],
)
def test_safe_unpickle_globals_cannot_be_modified(tmp_path, raw):
    path = tmp_path / "x.pkl"
    path.write_bytes(raw)
    with pytest.raises(DataFileError, match=r"x.pkl: not a readable"):
        safe_unpickle(path)
    path.write_bytes(pickle.dumps({"a": np.arange(3, dtype=np.uint8), "b": b"xy"}, 2))
    got = safe_unpickle(path)  # the loader is unchanged
    assert got["a"].tolist() == [0, 1, 2] and got["b"] == b"xy"


# case: a BUILD state of the wrong form for an array
@pytest.mark.parametrize(
    "state",
    [
        (1, (2,), np.dtype("u1"), False, [1, 2]),  # an object-array state
        (1, (-2,), np.dtype("u1"), False, b""),  # negative shape
        (1, (2.0,), np.dtype("u1"), False, b"\0\0"),  # float shape
        "junk",
    ],
)
def test_safe_unpickle_refuses_bad_array_states(tmp_path, state):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(_Reduce(_reconstruct, (np.ndarray, (0,), b"b"), state), 2))
    with pytest.raises(DataFileError, match=r"x.pkl: not a readable"):
        safe_unpickle(path)


# case: the result is a plain copy: writable, owning its memory, not a view of the file
def test_safe_unpickle_arrays_are_writable(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"a": np.arange(4)}, 5))
    a = safe_unpickle(path)["a"]
    a[0] = 9
    assert a.tolist() == [9, 1, 2, 3]
