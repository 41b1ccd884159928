"""The per-call path of the ops (issue 20): nothing it remembers goes stale, no check skipped.

The core looks the backend up in :data:`dropkit.selection.BY_TYPE` when no
``backend=``, context or ``$DROPKIT_BACKEND`` applies, remembers per
``(namespace, dtype)`` that a dtype is floating and where it overflows, checks
arguments in full only when they are not already what the checks return, and
turns an int seed into its draw without a Generator. Each test below would
fail on a remembered answer that should have been forgotten, or on a check
that the fast path skipped.
"""

import math

import array_api_compat.numpy as npx
import array_api_strict
import ml_dtypes
import numpy as np
import pytest

import dropkit
from dropkit import _dtype_facts, philox, registry, selection
from dropkit.backend import capabilities, default_draw
from dropkit.random import Generator, as_generator


def _reference(x, key, counter, p):
    """The mask and scale of the specification, from the Philox words (NumPy)."""
    t = round(p * 2**32)
    bits = np.asarray(philox.random_bits(npx, key, counter, x.size)).reshape(x.shape)
    return np.where(bits >= t, x * x.dtype.type(1.0 / (1.0 - p)), x.dtype.type(0))


@pytest.fixture
def x():
    return np.random.default_rng(3).standard_normal((8, 8)).astype(np.float32)


def test_a_use_backend_block_wins_over_the_remembered_type(x):
    dropkit.dropout(x, 0.5, rng=0)  # numpy.ndarray -> numpy, remembered
    assert selection.BY_TYPE[np.ndarray].name == "numpy"
    with dropkit.use_backend("array_api_strict"), pytest.raises(TypeError, match="serves"):
        dropkit.dropout(x, 0.5, rng=0)
    with dropkit.use_backend("array_api_strict"), pytest.raises(TypeError, match="serves"):
        dropkit.dropout_backward(x, 0.5, rng=0)
    np.testing.assert_array_equal(dropkit.dropout(x, 0.5, rng=0), _reference(x, 0, 0, 0.5))


def test_an_explicit_backend_wins_over_the_remembered_type(x):
    dropkit.dropout(x, 0.5, rng=0)
    with pytest.raises(TypeError, match="selected backend 'array_api_strict'"):
        dropkit.dropout(x, 0.5, rng=0, backend="array_api_strict")
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        dropkit.dropout(x, 0.5, rng=0, backend="nope")


def test_the_environment_read_again_wins_over_the_remembered_type(x, monkeypatch):
    selection.reread_environment()
    dropkit.dropout(x, 0.5, rng=0)
    monkeypatch.setenv("DROPKIT_BACKEND", "array_api_strict")
    try:
        selection.reread_environment()
        with pytest.raises(TypeError, match=r"serves array_api_strict.*DROPKIT_BACKEND"):
            dropkit.dropout(x, 0.5, rng=0)
    finally:
        monkeypatch.delenv("DROPKIT_BACKEND")
        selection.reread_environment()
    np.testing.assert_array_equal(dropkit.dropout(x, 0.5, rng=0), _reference(x, 0, 0, 0.5))


class _Counting:
    """The NumPy backend, counting the calls of its primitive."""

    def __init__(self, inner):
        self.inner, self.name, self.xp, self.calls = inner, "counting", inner.xp, 0

    def devices(self):
        return self.inner.devices()

    def random_bits(self, draw, n, *, offset=0, device=None):
        return self.inner.random_bits(draw, n, offset=offset, device=device)

    def mask_scale(self, x, draw, **kwargs):
        self.calls += 1
        return self.inner.mask_scale(x, draw, **kwargs)


def test_the_ops_follow_the_type_memo_and_a_rebuilt_registry(x):
    # The fast path reads the same memo as select(), the one a new registry clears:
    # what the memo says is used, and a cleared memo is filled from the new registry.
    numpy_backend = dropkit.get_backend("numpy")
    dropkit.dropout(x, 0.5, rng=0)
    counting = _Counting(numpy_backend)
    saved = dict(selection.BY_TYPE)
    selection.BY_TYPE[np.ndarray] = capabilities(counting, ("numpy",))
    try:
        y = dropkit.dropout(x, 0.5, rng=0)
        assert counting.calls == 1
        dropkit.dropout2d(np.ones((2, 3, 4, 4), np.float32), 0.5, rng=0)
        assert counting.calls == 2
    finally:
        selection.BY_TYPE.clear()
        selection.BY_TYPE.update(saved)
    np.testing.assert_array_equal(y, _reference(x, 0, 0, 0.5))
    registry.get_registry.cache_clear()
    try:
        assert np.ndarray not in selection.BY_TYPE
        dropkit.dropout(x, 0.5, rng=0)
        fresh = selection.BY_TYPE[np.ndarray].backend
        assert fresh is dropkit.get_backend("numpy") and fresh is not numpy_backend
        assert counting.calls == 2
    finally:
        registry.get_registry.cache_clear()


def test_a_dtype_remembered_as_floating_does_not_let_another_through(x):
    dropkit.dropout(x, 0.5, rng=0)
    for _ in range(2):  # refused every time: a refusal is never remembered
        with pytest.raises(TypeError, match=r"x must have a real floating dtype.*int32"):
            dropkit.dropout(np.ones(4, np.int32), 0.5, rng=0)
        with pytest.raises(TypeError, match=r"grad must have a real floating dtype.*bool"):
            dropkit.dropout_backward(np.ones(4, bool), 0.5, rng=0)
    assert np.dtype(np.int32) not in _dtype_facts.FLOATING[npx.__name__]
    bf16 = np.ones(8, ml_dtypes.bfloat16)
    assert dropkit.dropout(bf16, 0.5, rng=0).dtype == bf16.dtype
    assert np.dtype(ml_dtypes.bfloat16) in _dtype_facts.FLOATING[npx.__name__]


def test_the_overflow_bound_is_each_dtypes_own(x):
    p = 0.99999  # scale 1e5: finite in float32, inf in float16
    dropkit.dropout(x, p, rng=0)
    with pytest.raises(ValueError, match=r"not finite in float16 \(largest finite value 65504"):
        dropkit.dropout(x.astype(np.float16), p, rng=0)
    with pytest.raises(ValueError, match="not finite in float16"):
        dropkit.dropout_backward(x.astype(np.float16), p, rng=0)
    assert dropkit.dropout(x, p, rng=0).dtype == np.float32  # float32 still allowed
    assert _dtype_facts.OVERFLOW[npx.__name__][np.dtype(np.float16)] == 65520.0
    assert math.isinf(_dtype_facts.overflow_bound_of(npx, np.dtype(np.float64)))


def test_an_unhashable_dtype_is_checked_without_being_remembered():
    before = {name: dict(known) for name, known in _dtype_facts.FLOATING.items()}
    with pytest.raises(TypeError, match="x must have a real floating dtype"):
        _dtype_facts.check_floating_dtype(npx, ["not", "a", "dtype"], "x")
    assert before == _dtype_facts.FLOATING


def test_the_memos_are_bounded(monkeypatch):
    monkeypatch.setattr(_dtype_facts, "LIMIT", 2)
    monkeypatch.setattr(_dtype_facts, "FLOATING", {})
    for dtype in (np.float16, np.float32, np.float64):
        _dtype_facts.check_floating_dtype(npx, np.dtype(dtype), "x")
    assert list(_dtype_facts.FLOATING[npx.__name__]) == [np.dtype(np.float64)]


@pytest.mark.parametrize(
    ("p", "error", "match"),
    [
        (math.nan, ValueError, "must be in \\[0, 1\\], got nan"),
        (-0.5, ValueError, "got -0.5"),
        (1.5, ValueError, "got 1.5"),
        (True, TypeError, "p must be a real number"),
        ("0.5", TypeError, "p must be a real number"),
        (np.array([0.5]), TypeError, "p must be a real number"),
    ],
)
def test_every_bad_p_is_refused_after_good_calls(x, p, error, match):
    dropkit.dropout(x, 0.5, rng=0)
    for op in (dropkit.dropout, dropkit.dropout_backward, dropkit.dropout2d):
        with pytest.raises(error, match=match):
            op(np.ones((2, 2, 2, 2), np.float32), p, rng=0)
    with pytest.raises(error, match=match):
        dropkit.relu_dropout_backward(x, x, p)


def test_a_p_of_another_real_type_gives_the_same_mask(x):
    want = dropkit.dropout(x, 0.25, rng=5)
    for p in (np.float64(0.25), np.float32(0.25), 0.25):
        np.testing.assert_array_equal(dropkit.dropout(x, p, rng=5), want)
    np.testing.assert_array_equal(want, _reference(x, 5, 0, 0.25))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"training": 1}, TypeError, "training must be a bool"),
        ({"training": None}, TypeError, "training must be a bool"),
        ({"inplace": 0}, TypeError, "inplace must be a bool"),
        ({"return_mask": 1}, TypeError, "return_mask must be False, True or 'packed'"),
        ({"return_mask": "bits"}, ValueError, "return_mask must be False"),
        ({"mode": "inverse"}, ValueError, "mode must be one of"),
        ({"noise_shape": (8, 2)}, ValueError, "does not broadcast"),
    ],
)
def test_every_bad_flag_is_refused_after_good_calls(x, kwargs, error, match):
    dropkit.dropout(x, 0.5, rng=0)
    with pytest.raises(error, match=match):
        dropkit.dropout(x, 0.5, rng=0, **kwargs)


def test_numpy_booleans_are_accepted_as_before(x):
    y = dropkit.dropout(x, 0.5, rng=0, training=np.bool_(True), inplace=np.bool_(False))
    np.testing.assert_array_equal(y, _reference(x, 0, 0, 0.5))
    assert dropkit.dropout(x, 0.5, rng=0, training=np.bool_(False)) is x


def test_a_read_only_array_is_refused_in_place_and_copied_otherwise(x):
    x.flags.writeable = False
    np.testing.assert_array_equal(dropkit.dropout(x, 0.5, rng=1), _reference(x, 1, 0, 0.5))
    with pytest.raises(ValueError, match=r"inplace=True but x .* is read-only"):
        dropkit.dropout(x, 0.5, rng=1, inplace=True)
    w = x.copy()
    assert dropkit.dropout(w, 0.5, rng=1, inplace=True) is w
    np.testing.assert_array_equal(w, _reference(x, 1, 0, 0.5))


@pytest.mark.parametrize("seed", [0, 1, 2**32 + 5, 2**63 - 1, 2**63, 2**64 - 1])
def test_an_int_seeds_draw_is_its_generators(seed):
    assert default_draw(seed, None) == Generator(seed).draw() == (seed, 0)
    assert default_draw(np.uint64(seed), None) == (seed, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [7, 2**63 - 1, 2**63, 2**64 - 1])
def test_keys_of_every_range_give_the_reference_mask(seed, dtype):
    # Python ints reach the Numba kernel typed int64 or uint64: the same words either way
    x = np.random.default_rng(seed % 97).standard_normal(4099).astype(dtype)
    for p in (0.3, 0.5, 0.9):  # scales 1/0.7 ... rounded to the dtype
        np.testing.assert_array_equal(dropkit.dropout(x, p, rng=seed), _reference(x, seed, 0, p))
        g = Generator(seed, counter=3)
        got = dropkit.dropout(x, p, rng=g)
        np.testing.assert_array_equal(got, _reference(x, seed, 3, p))
        assert g.counter == 4


@pytest.mark.parametrize(
    ("seed", "error", "match"),
    [
        (2**64, ValueError, "rng must be a non-negative integer below 2\\*\\*64, got 18446"),
        (-1, ValueError, "rng must be a non-negative integer below 2\\*\\*64, got -1"),
        (True, TypeError, "rng must be None, an int seed"),
        (0.5, TypeError, "rng must be None, an int seed"),
    ],
)
def test_a_bad_seed_is_refused_as_before(x, seed, error, match):
    with pytest.raises(error, match=match):
        dropkit.dropout(x, 0.5, rng=seed)
    with pytest.raises(error, match=match):
        as_generator(seed)


def test_the_reference_backend_gives_the_same_mask(x):
    ours = dropkit.dropout(x, 0.5, rng=9)
    strict = dropkit.dropout(array_api_strict.asarray(x), 0.5, rng=9)
    np.testing.assert_array_equal(ours, np.asarray(strict))


@pytest.mark.parametrize(
    ("noise_shape", "match"),
    [((True, 8), "axis 0 must be 1, None or 8, got True"), ((8, 2), "axis 1 must be 1")],
)
def test_a_bad_noise_shape_entry_is_refused_after_good_calls(x, noise_shape, match):
    dropkit.dropout(x, 0.5, rng=0, noise_shape=(8, 1))
    with pytest.raises(ValueError, match=match):
        dropkit.dropout(x, 0.5, rng=0, noise_shape=noise_shape)


def test_noise_shapes_of_every_form_give_the_reference_masks():
    # the backend's broadcast split is remembered per (shape, noise shape): each
    # noise shape in turn, on one input, must give the reference's mask
    c = np.random.default_rng(1).standard_normal((2, 3, 4, 5)).astype(np.float32)
    strict = array_api_strict.asarray(c)
    for noise in [(2, 3, 1, 1), (2, 1, 1, 5), (1, 3, 4, 1), (2, np.int64(3), None, 1)]:
        for _ in range(2):
            got = dropkit.dropout(c, 0.5, rng=4, noise_shape=noise)
            want = dropkit.dropout(strict, 0.5, rng=4, noise_shape=noise)
            np.testing.assert_array_equal(got, np.asarray(want))
    np.testing.assert_array_equal(
        dropkit.dropout2d(c, 0.5, rng=4), np.asarray(dropkit.dropout2d(strict, 0.5, rng=4))
    )
