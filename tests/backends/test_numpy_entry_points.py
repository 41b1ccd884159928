"""The NumPy kernels' entry points (issue 20): the fast way in gives what the dispatcher gives.

``fused_dropout`` calls the serial kernel's compiled entry point, which skips
Numba's typing of the arguments and so trusts the caller for what unboxing does
not check (layout, alignment, dtype of ``out``). Every input that is not what
the entry point was compiled for must take the dispatcher, with the same result.
"""

import numpy as np
import pytest
from dropkit_numpy import _philox_numba as k
from dropkit_numpy._philox_numpy import random_bits_numpy

import dropkit
from dropkit._core import selected


def _want(x, key, counter, threshold, scale, relu=False):
    bits = random_bits_numpy(key, counter, x.size).reshape(x.shape)
    keep = bits >= threshold
    if relu:
        keep &= ~(x <= 0)
    return np.where(keep, x * x.dtype.type(scale), 0).astype(x.dtype)


def _inputs(dtype):
    rng = np.random.default_rng(3)
    plain = rng.standard_normal((7, 9)).astype(dtype)
    raw = np.zeros(plain.nbytes + 1, np.uint8)  # the same values one byte off alignment
    unaligned = raw[1:].view(dtype).reshape(plain.shape)
    unaligned[...] = plain
    readonly = plain.copy()
    readonly.flags.writeable = False
    return {
        "plain": plain,
        "0-d": np.asarray(dtype(1.5)),
        "1-d strided": rng.standard_normal(40).astype(dtype)[::3],  # reshape(-1) keeps strides
        "transposed": plain.T,
        "unaligned": unaligned,
        "read-only": readonly,
        "empty": np.empty((0, 3), dtype),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(_inputs(np.float32)))
@pytest.mark.parametrize("relu", [False, True])
def test_every_input_form_gives_the_reference(dtype, name, relu):
    x = _inputs(dtype)[name]
    for key in (5, 2**64 - 1):  # and a key whose int64 form is negative
        got = k.fused_dropout(x, key, 2**63 + 7, 3 << 30, 4.0, relu, None)
        np.testing.assert_array_equal(got, _want(x, key, 2**63 + 7, 3 << 30, 4.0, relu))
        assert got.shape == x.shape and got.dtype == x.dtype


def test_an_out_of_another_dtype_or_unaligned_takes_the_dispatcher():
    x = np.linspace(-1, 1, 12, dtype=np.float32)
    want = _want(x, 9, 0, 2**31, 2.0)
    wide = np.empty(12, np.float64)
    k.fused_dropout(x, 9, 0, 2**31, 2.0, False, wide)
    np.testing.assert_array_equal(wide, want.astype(np.float64))
    raw = np.zeros(12 * 4 + 1, np.uint8)
    unaligned_out = raw[1:].view(np.float32)
    k.fused_dropout(x, 9, 0, 2**31, 2.0, False, unaligned_out)
    np.testing.assert_array_equal(unaligned_out, want)
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        k.fused_dropout(x, 9, 0, 2**31, 2.0, False, np.empty(24, np.float32)[::2])


def test_in_place_through_the_entry_point():
    x = np.linspace(-1, 1, 64, dtype=np.float64).reshape(8, 8)
    want = _want(x, 1, 2, 2**30, 1 / 0.75)
    assert k.fused_dropout(x, 1, 2, 2**30, 1 / 0.75, False, x) is x
    np.testing.assert_array_equal(x, want)


def test_the_public_kernel_converts_numpy_scalars():
    x = np.ones(9, np.float32)
    got = k.dropout_fused_numba(
        x, np.uint64(2**64 - 2), np.int64(3), np.uint32(2**31), np.float32(2.0), relu=np.bool_(0)
    )
    np.testing.assert_array_equal(got, _want(x, 2**64 - 2, 3, 2**31, 2.0))


def test_the_entry_point_checks_the_types_it_unboxes():
    import numba as nb

    array = nb.types.Array(nb.float32, 1, "C")
    run = k.entry_point(
        k._dropout_serial, (array, array, nb.int64, nb.float64, nb.boolean, nb.int64, nb.int64)
    )
    y = np.empty(4, np.float32)
    with pytest.raises(TypeError):  # float64 data where float32 was compiled: refused, not read
        run(np.ones(4), y, 0, 1.0, False, 0, 0)
    with pytest.raises(OverflowError):
        run(np.ones(4, np.float32), y, 0, 1.0, False, 2**64 - 1, 0)


def test_dtypes_as_arrays_report_them_are_known_at_load():
    bounds = selected(np.ones(1, np.float32), "x", None).bounds  # the record the ops read
    for dtype in (np.float16, np.float32, np.float64):
        assert np.dtype(dtype) in bounds and dtype in bounds
    assert bounds[np.dtype(np.float16)] == 65520.0


def test_a_dtype_unknown_at_load_is_still_checked_in_full():
    # big-endian float16 equals no dtype found at load: the overflow check runs in full
    x = np.ones(8, dtype=">f2")
    with pytest.raises(ValueError, match="not finite in float16"):
        dropkit.dropout(x, 0.99999, rng=0)
    y = dropkit.dropout(x, 0.5, rng=0)
    np.testing.assert_array_equal(y, dropkit.dropout(np.ones(8, np.float16), 0.5, rng=0))
