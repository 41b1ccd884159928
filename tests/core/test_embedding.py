"""`dropkit.dropout` on every installed library's arrays: same kind of array back, same mask."""

import json

import array_api_compat
import numpy as np
import pytest
from dk_helpers import backend_or_skip

import dropkit
from dropkit.experiment.cli import main
from dropkit.testing.strategies import to_numpy

# ops on plain arrays go to the backend under test (dropkit.testing's plugin)
pytestmark = pytest.mark.usefixtures("dropkit_use_backend")


def test_same_mask_as_numpy_and_same_array_kind(dropkit_backend):
    a = np.random.default_rng(0).standard_normal((37, 29)).astype(np.float32)
    x = dropkit_backend.xp.asarray(a)
    y, mask = dropkit.dropout(x, 0.35, rng=2**64 - 11, return_mask=True)
    assert type(y) is type(x)
    assert array_api_compat.device(y) == array_api_compat.device(x) and y.dtype == x.dtype
    want_y, want_mask = dropkit.dropout(a, 0.35, rng=2**64 - 11, return_mask=True, backend="numpy")
    np.testing.assert_array_equal(to_numpy(mask), want_mask)
    np.testing.assert_array_equal(to_numpy(y), want_y)
    g = dropkit.Generator(3)
    first = to_numpy(dropkit.dropout(x, 0.35, rng=g))
    np.testing.assert_array_equal(
        first, dropkit.dropout(a, 0.35, rng=dropkit.Generator(3), backend="numpy")
    )


def test_compare_runs_on_torch(tmp_path):
    backend_or_skip("torch")
    out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                "--backend",
                "torch",
                "--epochs",
                "3",
                "--train-size",
                "300",
                "--hidden",
                "32",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    numpy_out = tmp_path / "np"
    assert (
        main(
            [
                "compare",
                "--backend",
                "numpy",
                "--epochs",
                "3",
                "--train-size",
                "300",
                "--hidden",
                "32",
                "--quiet",
                "--out",
                str(numpy_out),
            ]
        )
        == 0
    )
    reference = json.loads((numpy_out / "summary.json").read_text())
    # same weights and masks; matrix products round differently, accuracies stay close
    for net in ("standard", "dropout"):
        assert abs(summary[net]["best_test_acc"] - reference[net]["best_test_acc"]) < 0.05
