"""CuPy backend on a real GPU: masks equal the CPU's, non-contiguous and float16 inputs, training.

Skipped, with the reason, where the cupy backend cannot load (no CuPy, no CUDA
device). benchmarks/gpu_check.sh runs this file on a GPU machine.
"""

import json

import numpy as np
import pytest

import dropkit
from dropkit.cli import main

_info = {b.name: b for b in dropkit.list_backends()}.get("cupy")
if _info is None or not _info.available:
    pytest.skip(
        f"cupy backend unavailable here: {_info.reason if _info else 'dropkit-cupy not installed'}",
        allow_module_level=True,
    )

import cupy  # noqa: E402


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_same_mask_as_numpy_for_every_dtype(dtype, p):
    a = np.random.default_rng(0).standard_normal((33, 65)).astype(dtype)
    y_gpu, m_gpu = dropkit.dropout(cupy.asarray(a), p, rng=2**63 + 5, return_mask=True)
    y_cpu, m_cpu = dropkit.dropout(a, p, rng=2**63 + 5, return_mask=True)
    np.testing.assert_array_equal(m_gpu.get(), m_cpu)
    fused = dropkit.dropout(cupy.asarray(a), p, rng=2**63 + 5)  # fused kernel path
    np.testing.assert_array_equal(fused.get(), y_cpu)
    np.testing.assert_array_equal(y_gpu.get(), y_cpu)


def test_non_contiguous_input_and_regenerated_backward():
    a = np.random.default_rng(1).standard_normal((300, 200)).astype(np.float32)
    x = cupy.asarray(a)[::3, 1::2]
    assert not x.flags.c_contiguous
    y = dropkit.dropout(x, 0.3, rng=9)
    np.testing.assert_array_equal(y.get(), dropkit.dropout(a[::3, 1::2], 0.3, rng=9))
    dx = dropkit.dropout_backward(cupy.ones_like(x), 0.3, rng=9)
    np.testing.assert_array_equal(dx.get() != 0, y.get() != 0)


def test_relu_dropout_in_place_and_channel_dropout():
    a = np.random.default_rng(2).standard_normal((8, 16, 5, 5)).astype(np.float32)
    x = cupy.asarray(a)
    out = dropkit.relu_dropout(x, 0.5, rng=4, inplace=True)
    assert out is x
    np.testing.assert_array_equal(x.get(), dropkit.relu_dropout(a, 0.5, rng=4))
    y, mask = dropkit.dropout2d(cupy.asarray(a), 0.5, rng=4, return_mask=True)
    assert mask.shape == (8, 16, 1, 1)
    np.testing.assert_array_equal(y.get(), dropkit.dropout2d(a, 0.5, rng=4))


def test_large_array_chunks_equal_the_whole():
    b = dropkit.get_backend("cupy")
    whole = b.random_bits(3, 4, 10_000_019).get()
    part = b.random_bits(3, 4, 1_000_003, offset=4_000_001).get()
    np.testing.assert_array_equal(whole[4_000_001:5_000_004], part)


def test_compare_runs_on_cupy(tmp_path):
    out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                "--backend",
                "cupy",
                "--epochs",
                "3",
                "--train-size",
                "300",
                "--hidden",
                "64",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dropout"]["config"]["backend"] == "cupy"
    assert 0 <= summary["dropout"]["best_test_acc"] <= 1
