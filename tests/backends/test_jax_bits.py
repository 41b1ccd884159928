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
