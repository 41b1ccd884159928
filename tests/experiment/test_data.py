"""Datasets: MNIST-1D equals the reference package; loaders read small files in the real formats."""

import gzip
import os
import pickle

import numpy as np
import pytest

from dropkit.experiment.data import DataFileError, load_dataset, standardize
from dropkit.experiment.data.files import load_cifar10, load_mnist_idx
from dropkit.experiment.data.mnist1d import make_mnist1d


def test_mnist1d_equals_the_reference_package():
    mnist1d_data = pytest.importorskip("mnist1d.data")
    state = np.random.get_state()  # make_dataset reseeds NumPy's global generator
    try:
        ref = mnist1d_data.make_dataset()
    finally:
        np.random.set_state(state)
    mine = make_mnist1d()
    for key in ("y", "y_test"):
        np.testing.assert_array_equal(mine[key], ref[key])
    for key in ("x", "x_test"):
        assert mine[key].shape == ref[key].shape
        np.testing.assert_allclose(mine[key], ref[key], rtol=0, atol=1e-12)
    assert mine["x"].shape == (4000, 40) and mine["x_test"].shape == (1000, 40)


def test_mnist1d_leaves_numpys_global_state_alone():
    before = np.random.get_state()[1].copy()
    make_mnist1d(num_samples=20)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_standardize_guards_zero_variance():
    x = np.array([[1.0, 7.0, 0.0], [3.0, 7.0, 0.0], [5.0, 7.0, 0.0]])
    tr, te = standardize(x, x + 1)
    assert tr.dtype == np.float32
    np.testing.assert_allclose(tr[:, 0], [-1.2247449, 0, 1.2247449], rtol=1e-6)
    assert np.all(tr[:, 1:] == 0) and np.all(np.isfinite(te))
    np.testing.assert_allclose(te[:, 1], 1.0)  # shifted by 1, not divided by 0


def test_train_size_keeps_the_first_examples_and_checks_range():
    d = load_dataset("mnist1d", train_size=100)
    assert d.x_train.shape == (100, 40) and d.n_classes == 10
    with pytest.raises(ValueError, match="train_size must be between 1 and 4000"):
        load_dataset("mnist1d", train_size=5000)


def test_digits_dataset():
    pytest.importorskip("sklearn")
    d = load_dataset("digits")
    assert d.x_train.shape[1] == 64 and d.n_classes == 10
    assert d.x_train.shape[0] + d.x_test.shape[0] == 1797


def test_unknown_dataset_and_missing_data_dir():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; choose one of mnist1d"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="pass --data-dir"):
        load_dataset("cifar10")


# ---- CIFAR-10 -------------------------------------------------------------------------


def _cifar_arrays(n, seed):
    rs = np.random.default_rng(seed)
    return rs.integers(0, 256, (n, 3072), dtype=np.uint8), rs.integers(0, 10, n).tolist()


def _write_cifar_python(folder, n=6):
    folder.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data, labels = _cifar_arrays(n, i)
        batch = {
            b"batch_label": b"batch",
            b"labels": labels,
            b"data": data,
            b"filenames": [b"x.png"] * n,
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def _write_cifar_binary(folder, n=6):
    folder.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data, labels = _cifar_arrays(n, i)
        records = np.concatenate([np.array(labels, np.uint8)[:, None], data], axis=1)
        (folder / f"{name}.bin").write_bytes(records.tobytes())


def test_cifar10_python_and_binary_forms_agree(tmp_path):
    _write_cifar_python(tmp_path / "py" / "cifar-10-batches-py")
    _write_cifar_binary(tmp_path / "bin" / "cifar-10-batches-bin")
    a = load_cifar10(tmp_path / "py")
    b = load_cifar10(tmp_path / "bin" / "cifar-10-batches-bin")  # the folder itself works too
    for key in ("x", "y", "x_test", "y_test"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["x"].shape == (30, 3072) and a["x_test"].shape == (6, 3072)
    data, labels = _cifar_arrays(6, 0)
    np.testing.assert_array_equal(a["x"][:6], data)
    assert a["y"][:6].tolist() == labels
    d = load_dataset("cifar10", data_dir=tmp_path / "py")
    assert d.x_train.dtype == np.float32 and d.n_features == 3072


def test_cifar10_pickle_cannot_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar_python(folder)

    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    with pytest.raises(DataFileError, match=r"data_batch_3.*refusing to load global.*system"):
        load_cifar10(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_cifar10_truncated_and_corrupt_files(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    _write_cifar_binary(folder)
    path = folder / "data_batch_2.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataFileError, match=r"data_batch_2.bin: expected a whole number of 3073"):
        load_cifar10(tmp_path)
    folder = tmp_path / "p" / "cifar-10-batches-py"
    _write_cifar_python(folder)
    raw = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFileError, match="test_batch: not a readable CIFAR-10 python batch"):
        load_cifar10(tmp_path / "p")


def test_cifar10_missing_files_say_what_is_expected(tmp_path):
    _write_cifar_python(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_5").unlink()
    with pytest.raises(FileNotFoundError, match=r"expected cifar-10-batches-py/.*data_batch_5"):
        load_cifar10(tmp_path)


# ---- MNIST IDX ------------------------------------------------------------------------


def _idx(array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(folder, gz):
    folder.mkdir(parents=True, exist_ok=True)
    rs = np.random.default_rng(3)
    arrays = {
        "train-images-idx3-ubyte": (rs.integers(0, 256, (7, 28, 28)), 0x803),
        "train-labels-idx1-ubyte": (rs.integers(0, 10, 7), 0x801),
        "t10k-images-idx3-ubyte": (rs.integers(0, 256, (3, 28, 28)), 0x803),
        "t10k-labels-idx1-ubyte": (rs.integers(0, 10, 3), 0x801),
    }
    for name, (a, magic) in arrays.items():
        raw = _idx(a, magic)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_reads_raw_and_gzipped(tmp_path, gz):
    arrays = _write_mnist(tmp_path, gz)
    d = load_mnist_idx(tmp_path)
    np.testing.assert_array_equal(d["x"], arrays["train-images-idx3-ubyte"][0].reshape(7, 784))
    np.testing.assert_array_equal(d["y_test"], arrays["t10k-labels-idx1-ubyte"][0])
    assert load_dataset("mnist", data_dir=tmp_path).n_features == 784


def test_mnist_idx_errors_name_the_file(tmp_path):
    _write_mnist(tmp_path, gz=False)
    labels = tmp_path / "train-labels-idx1-ubyte"
    good = labels.read_bytes()
    labels.write_bytes(good[:-2])
    with pytest.raises(DataFileError, match=r"train-labels-idx1-ubyte: header says \[7\]"):
        load_mnist_idx(tmp_path)
    labels.write_bytes(b"\x00\x00\x08\x03" + good[4:])
    with pytest.raises(DataFileError, match=r"expected magic 0x00000801, found 0x803"):
        load_mnist_idx(tmp_path)
    labels.unlink()
    with pytest.raises(FileNotFoundError, match=r"train-labels-idx1-ubyte\[.gz\] not found"):
        load_mnist_idx(tmp_path)


def test_mnist_corrupt_gzip(tmp_path):
    _write_mnist(tmp_path, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataFileError, match=r"t10k-images-idx3-ubyte.gz: cannot read"):
        load_mnist_idx(tmp_path)
