"""The JAX backend's compiled random words equal the reference at every size class and offset."""

import numpy as np
import pytest

from dropkit import philox

jax = pytest.importorskip("jax", reason="JAX is not installed (dropkit-jax[cpu])")
bits = pytest.importorskip("dropkit_jax.bits", reason="dropkit-jax is not installed")

TOP = (1 << 64) - 1


@pytest.mark.parametrize("n", [1, 3, 4, 5, 4096, 4097, 4100 + 3, 20_001])
@pytest.mark.parametrize("offset", [0, 1, 7, 4 * 1023 + 2])
@pytest.mark.parametrize(("key", "counter"), [(0, 0), (7, 3), (TOP, TOP)])
def test_words_equal_the_reference(n, offset, key, counter):
    got = bits.random_bits(key, counter, n, offset=offset)
    want = philox.random_bits(np, key, counter, n, offset=offset)
    assert got is not None and got.dtype == np.uint32
    np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("first_block", [(1 << 32) - 2, (1 << 32) - 1, 1 << 32, (5 << 32) - 3])
def test_blocks_near_a_multiple_of_two_to_the_32(first_block):
    """A run that would cross 2**32 blocks declines (the reference runs); one past it computes."""
    offset = 4 * first_block + 1
    got = bits.random_bits(5, 9, 13, offset=offset)
    want = philox.random_bits(np, 5, 9, 13, offset=offset)
    crosses = (first_block & 0xFFFFFFFF) + bits.size_class(4) > 1 << 32
    assert (got is None) == crosses
    from dropkit import get_backend

    np.testing.assert_array_equal(
        np.asarray(get_backend("jax").random_bits((5, 9), 13, offset=offset)), want
    )
    if got is not None:
        np.testing.assert_array_equal(np.asarray(got), want)


def test_nothing_to_draw_declines():
    assert bits.random_bits(1, 2, 0) is None


@pytest.mark.parametrize("blocks", [1, 2, 3, 1000, 1024, 1025, 4096, 4097, 123_457])
def test_a_size_class_holds_the_blocks_with_little_waste(blocks):
    count = bits.size_class(blocks)
    assert blocks <= count
    assert count <= 2 * blocks if blocks <= 1024 else count <= blocks * 17 / 16


def test_the_block_function_equals_the_reference_on_every_kind_of_word():
    rng = np.random.default_rng(0)
    edges = np.array([0, 1, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF], np.uint32)
    words = np.concatenate([edges, rng.integers(0, 1 << 32, 2000, dtype=np.uint32)])
    counter = tuple(np.roll(words, i) for i in range(4))
    for key in [(0, 0), (0xFFFFFFFF, 0xFFFFFFFF), (0x9E3779B9, 12345)]:
        got = bits.philox4x32(tuple(jax.numpy.asarray(c) for c in counter), key)
        want = philox.philox4x32(np, counter, tuple(np.uint32(k) for k in key))
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(np.asarray(g), w)


@pytest.mark.parametrize("n", [1, 3, 31, 32, 33, 100, 1000, 4097])
@pytest.mark.parametrize("threshold", [0, 1, 2**31, 3 * 2**30 + 7, 2**32 - 1])
@pytest.mark.parametrize(("key", "counter"), [(0, 0), (7, 3), (TOP, TOP)])
def test_packed_keep_bits_are_the_reference_comparison(n, threshold, key, counter):
    keep = pytest.importorskip("dropkit_jax.keep")
    words = jax.numpy.asarray([*philox.split64(key), *philox.split64(counter)], jax.numpy.uint32)
    packed = keep.packed_keep(words, n, jax.numpy.uint32(threshold))
    assert packed.shape == (-(-n // 32),) and packed.dtype == np.uint32
    want = philox.random_bits(np, key, counter, n) >= threshold
    for shape in [(n,), (1, n, 1)]:
        got = np.asarray(keep.unpack(packed, shape))
        assert got.dtype == bool
        np.testing.assert_array_equal(got, want.reshape(shape))
    # the bits past n are the stream's next elements
    tail = philox.random_bits(np, key, counter, 32 * packed.shape[0]) >= threshold
    np.testing.assert_array_equal(np.asarray(keep.unpack(packed, (tail.size,))), tail)


def test_which_masks_are_packed_and_kept():
    keep = pytest.importorskip("dropkit_jax.keep")
    assert keep.packs((1,)) and keep.packs((2**16, 2**16))
    assert not keep.packs((0, 5)) and not keep.packs((2**16, 2**16 + 1))
    assert keep.keeps_packed((keep.KEEP_PACKED_MAX,))
    assert not keep.keeps_packed((keep.KEEP_PACKED_MAX + 1,))
    from jax import export

    (b,) = export.symbolic_shape("b")
    assert not keep.packs((b, 16)) and not keep.keeps_packed((b, 16))
