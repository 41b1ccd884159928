"""NumPy arrays of ml_dtypes' bfloat16 are dropped out like float16/32/64 (NumPy >= 2.5 refuses
them in ``isdtype`` and ``finfo``; dropkit asks ml_dtypes for these dtypes)."""

import numpy as np
import pytest

import dropkit

ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes is not installed")
BF16 = np.dtype(ml_dtypes.bfloat16)


def _inputs(shape):
    x32 = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    x = x32.astype(BF16)
    return x, x.astype(np.float32)  # the same values in both dtypes


@pytest.mark.parametrize(
    ("op", "shape", "p", "kwargs"),
    [
        (dropkit.dropout, (8, 33), 0.3, {}),
        (dropkit.dropout, (8, 33), 0.3, {"mode": "vanilla"}),
        (dropkit.dropout_backward, (8, 33), 0.3, {}),
        (dropkit.relu_dropout, (8, 33), 0.5, {}),
        (dropkit.dropout1d, (4, 3, 9), 0.5, {}),
        (dropkit.dropout2d, (2, 3, 5, 4), 0.25, {}),
        (dropkit.drop_path, (6, 7), 0.5, {}),
    ],
)
def test_masks_equal_float32_and_kept_values_are_rounded_products(op, shape, p, kwargs):
    x, x32 = _inputs(shape)
    y = op(x, p, rng=7, **kwargs)
    y32 = op(x32, p, rng=7, **kwargs)
    assert y.dtype == BF16
    np.testing.assert_array_equal(y == 0, y32 == 0)  # the mask does not depend on the dtype
    scale = 1.0 if kwargs.get("mode") == "vanilla" else 1.0 / (1.0 - p)
    kept = y32 != 0
    want = (x * np.asarray(scale, BF16))[kept]  # the factor rounded to bfloat16 first
    np.testing.assert_array_equal(y[kept], want)


def test_in_place_and_returned_masks():
    x, _ = _inputs((5, 16))
    out, mask = dropkit.dropout(x, 0.5, rng=3, return_mask=True)
    buf = x.copy()
    assert dropkit.dropout(buf, 0.5, rng=3, inplace=True) is buf
    np.testing.assert_array_equal(buf, out)
    np.testing.assert_array_equal(mask, dropkit.dropout(x.astype(np.float32), 0.5, rng=3) != 0)


@pytest.mark.parametrize(
    ("op", "shape", "kwargs"),
    [
        (dropkit.gaussian_dropout, (8, 16), {}),
        (dropkit.alpha_dropout, (8, 16), {}),
        (dropkit.feature_alpha_dropout, (2, 4, 3, 3), {}),
        (dropkit.dropblock2d, (2, 3, 8, 8), {"block_size": 3}),
    ],
)
def test_the_family_keeps_bfloat16_and_agrees_with_float32(op, shape, kwargs):
    x, x32 = _inputs(shape)
    y, y32 = op(x, 0.3, rng=5, **kwargs), op(x32, 0.3, rng=5, **kwargs)
    assert y.dtype == BF16 and np.isfinite(y.astype(np.float32)).all()
    # bfloat16 keeps 8 significant bits: a few roundings apart at most
    np.testing.assert_allclose(y.astype(np.float32), y32, rtol=2**-6, atol=2**-6)


def test_an_integer_dtype_of_ml_dtypes_is_refused_with_the_fix():
    x = np.ones(4, ml_dtypes.int4)
    with pytest.raises(TypeError, match=r"real floating dtype .*int4.*astype"):
        dropkit.dropout(x, 0.5, rng=1)
