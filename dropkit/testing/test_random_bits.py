"""Random words: Random123 known answers, bit-identity with the reference, chunking."""

from __future__ import annotations

import array_api_compat.numpy as npx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dropkit import philox
from dropkit.testing.profiles import suite_settings
from dropkit.testing.strategies import keys, to_numpy

# ops on plain arrays go to the backend under test (dropkit.testing's plugin)
pytestmark = pytest.mark.usefixtures("dropkit_use_backend")

# Random123 tests/kat_vectors, the "philox4x32 10" lines: counter[4], key[2] -> output[4].
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (
        (0xFFFFFFFF,) * 4,
        (0xFFFFFFFF,) * 2,
        (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
    ),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]
# The "philox4x32 7" lines pin the round count independently.
KAT7 = [
    ((0, 0, 0, 0), (0, 0), (0x5F6FB709, 0x0D893F64, 0x4F121F81, 0x4F730A48)),
    (
        (0xFFFFFFFF,) * 4,
        (0xFFFFFFFF,) * 2,
        (0x5207DDC2, 0x45165E59, 0x4D8EE751, 0x8C52F662),
    ),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0x4DFCCABA, 0x190A87F0, 0xC47362BA, 0xB6B5242A),
    ),
]

SETTINGS = suite_settings(max_examples=40)


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_known_answers_on_backend_namespace(dropkit_backend, counter, key, expected):
    # In the backend's own integer type: uint32, or int64 where it returns int64 words.
    xp = dropkit_backend.xp
    int64 = to_numpy(dropkit_backend.random_bits((0, 0), 1)).dtype != np.uint32
    words = [xp.asarray([w], dtype=xp.int64 if int64 else xp.uint32) for w in counter]
    out = philox.philox4x32(xp, words, key, int64=int64)
    assert [int(to_numpy(w)[0]) for w in out] == list(expected)


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_known_answers_python_ints(counter, key, expected):
    assert philox.philox4x32(None, counter, key) == expected


@pytest.mark.parametrize(("counter", "key", "expected"), KAT7)
def test_known_answers_seven_rounds(counter, key, expected):
    assert philox.philox4x32(None, counter, key, rounds=7) == expected


def test_counter_layout_maps_element_to_block_word(dropkit_backend):
    # Element i is word i % 4 of block (i // 4, 0, counter_lo, counter_hi) under the key.
    key, counter = 0x0123456789ABCDEF, 0x00000002_00000001
    bits = to_numpy(dropkit_backend.random_bits((key, counter), 12))
    for i in (0, 5, 11):
        block = philox.philox4x32(None, (i // 4, 0, 1, 2), (0x89ABCDEF, 0x01234567))
        assert int(bits[i]) == block[i % 4]


@SETTINGS
@given(
    key=keys(),
    counter=st.integers(0, 2**63 - 1),
    n=st.integers(0, 300),
    offset=st.one_of(st.integers(0, 1000), st.integers(4 * 2**32 - 600, 4 * 2**32 + 600)),
)
def test_backend_bits_equal_reference(dropkit_backend, key, counter, n, offset):
    got = to_numpy(dropkit_backend.random_bits((key, counter), n, offset=offset))
    want = np.asarray(philox.random_bits(npx, key, counter, n, offset=offset))
    # uint32, or a wider integer type holding the same values (torch: int64)
    assert got.dtype == np.uint32 or (got.dtype.kind == "i" and got.dtype.itemsize >= 8)
    assert got.shape == (n,)
    np.testing.assert_array_equal(got.astype(np.int64), want.astype(np.int64))


@SETTINGS
@given(key=keys(), counter=st.integers(0, 2**63 - 1), cut=st.integers(0, 97))
def test_chunks_equal_the_whole(dropkit_backend, key, counter, cut):
    whole = to_numpy(dropkit_backend.random_bits((key, counter), 97))
    head = to_numpy(dropkit_backend.random_bits((key, counter), cut))
    tail = to_numpy(dropkit_backend.random_bits((key, counter), 97 - cut, offset=cut))
    np.testing.assert_array_equal(np.concatenate([head, tail]), whole)
