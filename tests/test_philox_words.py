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
