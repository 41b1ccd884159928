"""The reference Philox with the draw given as arrays: traced keys under jax.jit."""

import array_api_compat.numpy as npx
import numpy as np
import pytest

from dropkit import philox

CASES = [(0, 0, 1), (7, 3, 10), (2**64 - 1, 2**63 - 1, 37), (0xDEADBEEF12345678, 5, 4096)]


def _words(key, counter, dtype):
    k0, k1 = philox.split64(key)
    c0, c1 = philox.split64(counter)
    return [np.asarray(w, dtype=dtype) for w in (k0, k1)], [
        np.asarray(w, dtype=dtype) for w in (c0, c1)
    ]


@pytest.mark.parametrize(("key", "counter", "n"), CASES)
def test_array_words_equal_the_integer_reference_on_numpy(key, counter, n):
    kw, cw = _words(key, counter, np.uint32)
    got = philox.random_bits_words(npx, kw, cw, n)
    np.testing.assert_array_equal(got, np.asarray(philox.random_bits(npx, key, counter, n)))


def test_traced_words_under_jax_jit_compile_once_for_every_key():
    jax = pytest.importorskip("jax", reason="JAX is not installed")
    import jax.numpy as jnp

    traces = []

    @jax.jit
    def bits(k0, k1, c0, c1):
        traces.append(1)
        return philox.random_bits_words(jnp, (k0, k1), (c0, c1), 1001)

    for key, counter, _ in CASES:
        kw, cw = _words(key, counter, np.uint32)
        got = np.asarray(bits(*(jnp.asarray(w) for w in (*kw, *cw))))
        np.testing.assert_array_equal(got, np.asarray(philox.random_bits(npx, key, counter, 1001)))
    assert len(traces) == 1


@pytest.mark.parametrize(("key", "counter", "n"), CASES)
@pytest.mark.parametrize("split", [False, True])
def test_elementwise_words_equal_the_reference_in_c_order(key, counter, n, split):
    kw, cw = _words(key, counter, np.uint32)
    shape = (n,) if not split or n % 2 else (2, n // 2)
    got = philox.random_bits_elementwise(npx, kw, cw, shape)
    assert got.shape == shape and got.dtype == np.uint32
    want = np.asarray(philox.random_bits(npx, key, counter, n)).reshape(shape)
    np.testing.assert_array_equal(got, want)


def test_elementwise_words_of_an_empty_shape():
    kw, cw = _words(1, 2, np.uint32)
    assert philox.random_bits_elementwise(npx, kw, cw, (3, 0)).shape == (3, 0)


def test_elementwise_words_on_the_strict_namespace():
    xp = pytest.importorskip("array_api_strict", reason="array-api-strict is not installed")
    words = [xp.asarray(w, dtype=xp.uint32) for w in (7, 0, 3, 0)]
    got = philox.random_bits_elementwise(xp, words[:2], words[2:], (3, 5))
    want = np.asarray(philox.random_bits(npx, 7, 3, 15)).reshape(3, 5)
    np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("row", [4, 8, 64])
@pytest.mark.parametrize("shape", [(7,), (5, 13), (3, 4, 9)])
def test_elementwise_words_in_rows_equal_the_reference(row, shape):
    # the layout used beyond 2**32 elements, at a size a test can hold
    kw, cw = _words(0xDEADBEEF12345678, 2**40 + 9, np.uint32)
    got = philox.random_bits_elementwise(npx, kw, cw, shape, row=row)
    want = np.asarray(philox.random_bits(npx, 0xDEADBEEF12345678, 2**40 + 9, int(np.prod(shape))))
    np.testing.assert_array_equal(got, want.reshape(shape))


def test_elementwise_rows_carry_the_high_block_word_beyond_2_to_the_34_elements():
    # Element 2**34 + j lies in block 2**32 + j // 4: its high word is 1. Under jax.jit
    # the slice of the fused loop computes only the sliced elements, so nothing big is
    # allocated.
    jax = pytest.importorskip("jax", reason="JAX is not installed")
    import jax.numpy as jnp

    kw, cw = _words(0xDEADBEEF12345678, 5, np.uint32)
    n = 2**34 + 10

    @jax.jit
    def tail(k0, k1, c0, c1):
        return philox.random_bits_elementwise(jnp, (k0, k1), (c0, c1), (n,))[-12:]

    got = np.asarray(tail(*(jnp.asarray(w) for w in (*kw, *cw))))
    want = philox.random_bits(npx, 0xDEADBEEF12345678, 5, 12, offset=n - 12)
    np.testing.assert_array_equal(got, np.asarray(want))
    with pytest.raises(ValueError, match="row must be a power of two"):
        philox.random_bits_elementwise(npx, kw, cw, (8,), row=12)
