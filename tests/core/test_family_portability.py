"""One seed, the same noise on every installed backend: the family's portability guarantee.

The uniform words are bit-identical everywhere, so every mask is; the Gaussian
noise is bit-identical where the backend computes in float64, or within the
tolerances stated in :mod:`dropkit.normals` (float32 arithmetic on JAX without
x64). Backends not installed here are skipped with the reason.
"""

import numpy as np
import pytest
from dk_helpers import backend_or_skip

import dropkit
from dropkit.normals import FLOAT32_ABS_ERROR, FLOAT64_ULPS
from dropkit.testing.strategies import float_dtypes, to_numpy

KEY = 2**64 - 5  # both 32-bit words of the key in use

OPS = {
    "gaussian_dropout": lambda x: dropkit.gaussian_dropout(
        x, 0.4, rng=dropkit.Generator(KEY, 3), return_noise=True
    )[1],
    "gaussian_noise": lambda x: dropkit.gaussian_noise(x, 1.0, rng=dropkit.Generator(KEY, 3)),
    "alpha_dropout": lambda x: dropkit.alpha_dropout(x, 0.4, rng=KEY, return_mask=True)[1],
    "feature_alpha_dropout": lambda x: dropkit.feature_alpha_dropout(
        x, 0.4, rng=KEY, return_mask=True
    )[1],
    "drop_path": lambda x: dropkit.drop_path(x, 0.4, rng=KEY, return_mask=True)[1],
    "dropblock2d": lambda x: dropkit.dropblock2d(x, 0.4, block_size=3, rng=KEY, return_mask=True)[
        1
    ],
}
BACKENDS = ["numpy", "array_api_strict", "torch", "jax", "dask"]


def _backend(name):
    return backend_or_skip(name)


@pytest.mark.parametrize("lib", BACKENDS)
@pytest.mark.parametrize("name", sorted(OPS))
def test_one_seed_gives_numpys_noise_on_every_backend(lib, name, monkeypatch):
    b = _backend(lib)
    shape = (4, 3, 9, 9)
    a = np.linspace(-2, 2, int(np.prod(shape))).reshape(shape)
    for dtype in float_dtypes(b.xp):
        with dropkit.use_backend("numpy"):
            want = OPS[name](a.astype(dtype))
        with dropkit.use_backend(lib):
            got = to_numpy(OPS[name](b.xp.asarray(a.astype(dtype))))
        if "gaussian" not in name:  # masks: bit-identical
            np.testing.assert_array_equal(got, want)
        elif "float64" in float_dtypes(b.xp):  # float64 arithmetic everywhere
            if dtype == "float64":  # normals within FLOAT64_ULPS, then 1 + sigma z (or z)
                tol = 2 * FLOAT64_ULPS * np.finfo(np.float64).eps * (1 + 3 * np.abs(want))
                assert np.all(np.abs(got - want) <= tol)
            else:
                ulps = np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(want))
                assert float(ulps.max()) <= 1.0
        else:  # float32 arithmetic (JAX without x64)
            err = np.abs(got.astype(np.float64) - want.astype(np.float64))
            tol = 1.6 * FLOAT32_ABS_ERROR + 2 * np.spacing(np.abs(want).astype(dtype))
            assert np.all(err <= tol)


def test_the_weight_initialiser_uses_the_shared_box_muller():
    # One Box-Muller in the library (dropkit.normals): the training loop's He-normal
    # weights and the Gaussian ops draw their normals from it, not from a copy.
    import array_api_compat.numpy as npx

    from dropkit import normals
    from dropkit.experiment import nn
    from dropkit.philox import random_bits

    assert nn.standard_normal is normals.standard_normal
    z = nn.standard_normal(dropkit.get_backend("numpy"), dropkit.Generator(5, 2), (7, 3), "float64")
    ref = normals.box_muller(npx, random_bits(npx, 5, 2, normals.normal_words(21)), 21, "float64")
    np.testing.assert_array_equal(z, ref.reshape(7, 3))
    noise = dropkit.gaussian_noise(np.zeros((7, 3)), 1.0, rng=dropkit.Generator(5, 2))
    np.testing.assert_array_equal(noise, z)
