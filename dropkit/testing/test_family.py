"""The dropout family: statistics with exact bounds, structure, gradients, edges, bad input.

Each statistical check states its false-failure rate: ``FALSE_FAILURE_RATE``
(1e-6) per example, split by the union bound where one example makes several
checks. The bounds are exact inequalities for a correct implementation:
binomial intervals for counts (:mod:`dropkit.testing.stats`), Chernoff's
``P(|N(0, s**2)| >= s * sqrt(2 t)) <= 2 exp(-t)`` for sums of normals,
Laurent and Massart's (2000) chi-square bounds
``P(Q - k >= 2 sqrt(k t) + 2 t) <= exp(-t)`` and
``P(k - Q >= 2 sqrt(k t)) <= exp(-t)``, and Hoeffding's for means of
independent variables in [0, 1]. The normals are Box-Muller on 32-bit words
(exactly normal up to the words' 2**-32 resolution); the arrays' rounding to
their dtype is allowed for explicitly (``_slack``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dropkit
from dropkit.alpha import SELU_SATURATION, alpha_coefficients
from dropkit.gaussian import gaussian_dropout_stddev
from dropkit.normals import FLOAT32_ABS_ERROR, FLOAT64_ULPS, box_muller, normal_words
from dropkit.philox import random_bits
from dropkit.testing.profiles import suite_settings
from dropkit.testing.stats import FALSE_FAILURE_RATE, binomial_interval
from dropkit.testing.strategies import float_dtypes, keys, to_namespace, to_numpy, widest_float

# ops on plain arrays go to the backend under test (dropkit.testing's plugin)
pytestmark = pytest.mark.usefixtures("dropkit_use_backend")

SETTINGS = suite_settings(max_examples=4)
ALPHA = FALSE_FAILURE_RATE
# a few values of p, not arbitrary floats: JAX compiles once per p (a static threshold)
interior_p = st.sampled_from([0.05, 0.2, 0.5, 0.75, 0.9])

#: (forward, backward, extra keyword arguments, input shape) of the ops that drop units.
DROPPING = {
    "alpha_dropout": (dropkit.alpha_dropout, dropkit.alpha_dropout_backward, {}, (6, 50)),
    "feature_alpha_dropout": (
        dropkit.feature_alpha_dropout,
        dropkit.feature_alpha_dropout_backward,
        {},
        (6, 8, 5),
    ),
    "drop_path": (dropkit.drop_path, dropkit.drop_path_backward, {}, (40, 3, 2)),
    "dropblock2d": (
        dropkit.dropblock2d,
        dropkit.dropblock2d_backward,
        {"block_size": 3},
        (2, 3, 9, 9),
    ),
}
GAUSSIAN = {
    "gaussian_dropout": (dropkit.gaussian_dropout, dropkit.gaussian_dropout_backward),
}
ALL_P_OPS = {
    **{k: v[:3] for k, v in DROPPING.items()},
    "gaussian_dropout": (*GAUSSIAN["gaussian_dropout"], {}),
}


def _chernoff(t: float) -> float:
    """``c`` with ``P(|N(0, 1)| >= c) <= 2 exp(-t)``."""
    return math.sqrt(2.0 * t)


def _slack(dtype: str, magnitude: float) -> float:
    """A bound on the rounding of values of ``magnitude`` to ``dtype`` (4 ULPs)."""
    return 4.0 * float(np.finfo(dtype).eps) * magnitude


def _normal_input(xp, n: int, seed: int, dtype: str):
    """A standard-normal input from NumPy's PCG64: independent of the Philox words."""
    a = np.random.default_rng(seed).standard_normal(n).astype(dtype)
    return a, to_namespace(xp, a)


# ---------------------------------------------------------------- Gaussian moments


@SETTINGS
@given(p=interior_p, key=keys())
def test_gaussian_dropout_noise_has_mean_one_and_variance_p_over_1_minus_p(dropkit_backend, p, key):
    xp = dropkit_backend.xp
    dtype = widest_float(xp)
    n = 40_000
    x = xp.ones((n,), dtype=getattr(xp, dtype))
    y, noise = dropkit.gaussian_dropout(x, p, rng=key, return_noise=True)
    y, noise = to_numpy(y).astype(np.float64), to_numpy(noise).astype(np.float64)
    np.testing.assert_array_equal(y, noise)
    sigma = gaussian_dropout_stddev(p)
    z = (noise - 1.0) / sigma
    # mean: N(0, 1/n); sum of squares: chi-square with n degrees (alpha/2 each)
    t = math.log(4.0 / ALPHA)
    slack = _slack(dtype, 1.0 + 7 * sigma) / sigma
    assert abs(z.mean()) <= _chernoff(t) / math.sqrt(n) + slack, z.mean()
    q = float(np.sum(z * z))
    t2 = math.log(4.0 / ALPHA)
    assert n - 2 * math.sqrt(n * t2) - n * 14 * slack <= q, q
    assert q <= n + 2 * math.sqrt(n * t2) + 2 * t2 + n * 14 * slack, q


@SETTINGS
@given(stddev=st.sampled_from([0.01, 0.5, 3.0]), key=keys())
def test_gaussian_noise_has_mean_zero_and_variance_stddev_squared(dropkit_backend, stddev, key):
    xp = dropkit_backend.xp
    dtype = widest_float(xp)
    n = 40_000
    x = xp.zeros((n,), dtype=getattr(xp, dtype))
    y, noise = dropkit.gaussian_noise(x, stddev, rng=key, return_noise=True)
    y, noise = to_numpy(y).astype(np.float64), to_numpy(noise).astype(np.float64)
    np.testing.assert_array_equal(y, noise)
    z = noise / stddev
    t = math.log(4.0 / ALPHA)
    slack = _slack(dtype, 7.0)
    assert abs(z.mean()) <= _chernoff(t) / math.sqrt(n) + slack
    q = float(np.sum(z * z))
    assert (
        n - 2 * math.sqrt(n * t) - n * 14 * slack
        <= q
        <= n + 2 * math.sqrt(n * t) + 2 * t + (n * 14 * slack)
    )


@SETTINGS
@given(key=keys(), counter=st.integers(0, 2**40), n=st.sampled_from([1, 2, 2999, 3000]))
def test_normals_match_the_reference_box_muller(dropkit_backend, key, counter, n):
    # The uniform words are bit-identical on every backend (test_random_bits); the normals
    # (gaussian_noise with stddev 1 on zeros returns them) are within the documented
    # tolerance of the float64 reference: NumPy's Box-Muller on the reference words.
    import array_api_compat.numpy as npx

    xp = dropkit_backend.xp
    ref = box_muller(npx, random_bits(npx, key, counter, normal_words(n)), n, np.float64)
    wide = "float64" in float_dtypes(xp)
    for dtype in float_dtypes(xp):
        x = xp.zeros((n,), dtype=getattr(xp, dtype))
        z = to_numpy(dropkit.gaussian_noise(x, 1.0, rng=dropkit.Generator(key, counter)))
        z = z.astype(np.float64)
        if not wide:  # float32 arithmetic (JAX without x64), then rounded to the dtype
            tol = FLOAT32_ABS_ERROR + np.spacing(np.abs(ref).astype(dtype)).astype(np.float64)
            assert np.all(np.abs(z - ref) <= tol), float(np.abs(z - ref).max())
        elif dtype == "float64":
            ulps = np.abs(z - ref) / np.spacing(np.abs(ref))
            assert float(ulps.max()) <= FLOAT64_ULPS, float(ulps.max())
        else:  # float64 arithmetic rounded once: at most 1 ULP from the rounded reference
            rounded = ref.astype(dtype)
            ulps = np.abs(z - rounded) / np.spacing(np.abs(rounded)).astype(np.float64)
            assert float(ulps.max()) <= 1.0, float(ulps.max())


# ---------------------------------------------------------------- alpha dropout


def test_the_alpha_coefficients_give_mean_zero_and_variance_one():
    # For a standard-normal input: E[y] = a * alpha' * (q - q) = 0 and E[y**2] = 1 exactly.
    for p in (0.05, 0.1, 0.5, 0.9):
        a, b = alpha_coefficients(p)
        q = 1.0 - p
        mean = q * b + p * (a * SELU_SATURATION + b)
        second = q * (a * a + b * b) + p * (a * SELU_SATURATION + b) ** 2
        assert abs(mean) < 1e-12 and abs(second - 1.0) < 1e-12


@SETTINGS
@given(p=interior_p, key=keys(), seed=st.integers(0, 2**32 - 1))
def test_alpha_dropout_keeps_mean_and_variance_within_bounds_from_the_kept_count(
    dropkit_backend, p, key, seed
):
    xp = dropkit_backend.xp
    dtype = widest_float(xp)
    n = 40_000
    _a_np, x = _normal_input(xp, n, seed, dtype)
    y, mask = dropkit.alpha_dropout(x, p, rng=key, return_mask=True)
    y, m = to_numpy(y).astype(np.float64), to_numpy(mask)
    kept = int(np.count_nonzero(m))
    q = dropkit.keep_probability(p)
    lo, hi = binomial_interval(n, q, ALPHA / 4)
    assert lo <= kept <= hi
    a, b = alpha_coefficients(p)
    sat = a * SELU_SATURATION + b
    # given the mask (independent of x): S = sum of kept x ~ N(0, kept), Q = sum of kept x**2
    # ~ chi-square(kept); mean(y) and mean(y**2) follow (alpha/4 for S, alpha/4 each side of Q)
    t = math.log(8.0 / ALPHA)
    slack = n * _slack(dtype, abs(a) * 6 + abs(b) + abs(sat))
    s_bound = _chernoff(t) * math.sqrt(kept)
    centre = kept * b + (n - kept) * sat
    assert abs(y.sum() - centre) <= abs(a) * s_bound + slack, (y.sum(), centre)
    q_lo = kept - 2 * math.sqrt(kept * t)
    q_hi = kept + 2 * math.sqrt(kept * t) + 2 * t
    base = kept * b * b + (n - kept) * sat * sat
    cross = 2 * abs(a * b) * s_bound
    total = float(np.sum(y * y))
    assert (
        a * a * q_lo + base - cross - 14 * slack
        <= total
        <= a * a * q_hi + base + cross + (14 * slack)
    )
    # and so, with the binomial bound on the kept count, mean ~ 0 and variance ~ 1
    worst = abs(a * SELU_SATURATION) * max(abs(q - lo / n), abs(q - hi / n))
    assert abs(y.mean()) <= worst + abs(a) * _chernoff(t) * math.sqrt(hi) / n + slack / n


@SETTINGS
@given(p=interior_p, key=keys())
def test_alpha_dropout_mask_is_dropouts_and_feature_maps_share_one_draw(dropkit_backend, p, key):
    xp = dropkit_backend.xp
    x = to_namespace(xp, np.linspace(-2, 2, 6 * 8 * 5).reshape(6, 8, 5).astype("float32"))
    _, mask = dropkit.alpha_dropout(x, p, rng=key, return_mask=True)
    _, ref = dropkit.dropout(x, p, rng=key, return_mask=True)
    np.testing.assert_array_equal(to_numpy(mask), to_numpy(ref))
    y, fmask = dropkit.feature_alpha_dropout(x, p, rng=key, return_mask=True)
    assert tuple(fmask.shape) == (6, 8, 1)
    _, cref = dropkit.dropout1d(x, p, rng=key, return_mask=True)
    np.testing.assert_array_equal(to_numpy(fmask), to_numpy(cref))
    a, b = alpha_coefficients(p)
    yn, fm = to_numpy(y), np.broadcast_to(to_numpy(fmask), (6, 8, 5))
    sat = np.float32(a * SELU_SATURATION + b)
    assert np.all(yn[~fm] == sat)


# ---------------------------------------------------------------- all: gradients, regeneration


@SETTINGS
@given(name=st.sampled_from(sorted(DROPPING)), p=st.sampled_from([0.2, 0.75]), key=keys())
def test_gradient_is_zero_exactly_where_the_forward_dropped(dropkit_backend, name, p, key):
    fwd, bwd, kw, shape = DROPPING[name]
    xp = dropkit_backend.xp
    x = to_namespace(xp, np.linspace(0.5, 2, math.prod(shape)).reshape(shape).astype("float32"))
    _, mask = fwd(x, p, rng=key, return_mask=True, **kw)
    m = np.broadcast_to(to_numpy(mask), shape)
    grad = xp.ones(shape, dtype=xp.float32)
    regenerated = to_numpy(bwd(grad, p, rng=key, **kw))
    stored = to_numpy(bwd(grad, p, mask=mask, **kw))
    np.testing.assert_array_equal(regenerated, stored)
    assert np.all(regenerated[~m] == 0) and np.all(regenerated[m] > 0)
    packed = fwd(x, p, rng=key, return_mask="packed", **kw)[1]
    np.testing.assert_array_equal(to_numpy(bwd(grad, p, mask=packed, **kw)), stored)


@SETTINGS
@given(p=interior_p, key=keys(), mode=st.sampled_from(["inverted", "vanilla"]))
def test_gaussian_regeneration_equals_the_stored_noise(dropkit_backend, p, key, mode):
    xp = dropkit_backend.xp
    x = to_namespace(xp, np.linspace(-1, 1, 35).reshape(5, 7).astype("float32"))
    gen = dropkit.Generator(key, 3)
    before = gen.copy()
    y, noise = dropkit.gaussian_dropout(x, p, rng=gen, mode=mode, return_noise=True)
    grad = to_namespace(xp, np.full((5, 7), 0.5, dtype="float32"))
    a = to_numpy(dropkit.gaussian_dropout_backward(grad, p, rng=before, mode=mode))
    b = to_numpy(dropkit.gaussian_dropout_backward(grad, p, noise=noise, mode=mode))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, 0.5 * to_numpy(noise))
    np.testing.assert_array_equal(to_numpy(y), to_numpy(x) * to_numpy(noise))
    g = to_numpy(dropkit.gaussian_noise_backward(grad, 0.3))
    np.testing.assert_array_equal(g, 0.5)


@pytest.mark.parametrize("name", sorted(ALL_P_OPS))
def test_layers_regenerate_what_they_drew(dropkit_backend, name):
    xp = dropkit_backend.xp
    shape = DROPPING[name][3] if name in DROPPING else (4, 6)
    layers = {
        "alpha_dropout": lambda: dropkit.AlphaDropout(0.3, rng=5),
        "feature_alpha_dropout": lambda: dropkit.FeatureAlphaDropout(0.3, rng=5),
        "drop_path": lambda: dropkit.DropPath(0.3, rng=5),
        "dropblock2d": lambda: dropkit.DropBlock2d(0.3, block_size=3, rng=5),
        "gaussian_dropout": lambda: dropkit.GaussianDropout(0.3, rng=5),
    }
    fwd, _, kw = ALL_P_OPS[name]
    layer = layers[name]()
    x = xp.ones(shape, dtype=xp.float32)
    gen = dropkit.Generator(5)
    for _ in range(2):  # the layer's stream advances like a Generator
        want = to_numpy(fwd(x, 0.3, rng=gen, **kw))
        np.testing.assert_array_equal(to_numpy(layer(x)), want)
    grad = to_numpy(layer.backward(x))  # the last draw, regenerated
    if "alpha" in name:  # a where kept, 0 where dropped
        bwd = ALL_P_OPS[name][1]
        np.testing.assert_array_equal(grad, to_numpy(bwd(x, 0.3, rng=dropkit.Generator(5, 1))))
        assert np.all((grad == 0) == (want == np.float32(want.min())))
    else:  # grad of ones: the forward of ones
        np.testing.assert_array_equal(grad, want)
    assert layer.eval()(x) is x


# ---------------------------------------------------------------- p edges, dtypes


@pytest.mark.parametrize("name", sorted(ALL_P_OPS))
def test_p_zero_and_evaluation_return_the_input_and_draw_nothing(dropkit_backend, name):
    fwd, bwd, kw = ALL_P_OPS[name]
    shape = DROPPING[name][3] if name in DROPPING else (4, 6)
    x = dropkit_backend.xp.ones(shape, dtype=dropkit_backend.xp.float32)
    gen = dropkit.Generator(1)
    assert fwd(x, 0.0, rng=gen, **kw) is x
    assert fwd(x, 0.7, rng=gen, training=False, **kw) is x
    assert bwd(x, 0.0, rng=gen, **kw) is x
    assert gen.counter == 0


@pytest.mark.parametrize("name", sorted(DROPPING))
def test_p_one_gives_zeros_and_zero_gradients(dropkit_backend, name):
    fwd, bwd, kw, shape = DROPPING[name]
    x = to_namespace(dropkit_backend.xp, np.full(shape, 3.0, dtype="float32"))
    assert np.all(to_numpy(fwd(x, 1.0, rng=0, **kw)) == 0)
    assert np.all(to_numpy(bwd(x, 1.0, rng=0, **kw)) == 0)


def test_gaussian_dropout_refuses_p_one(dropkit_backend):
    x = dropkit_backend.xp.ones((3,), dtype=dropkit_backend.xp.float32)
    with pytest.raises(ValueError, match=r"needs p < 1.*infinite at p = 1"):
        dropkit.gaussian_dropout(x, 1.0, rng=0)
    with pytest.raises(ValueError, match=r"needs p < 1"):
        dropkit.gaussian_dropout_backward(x, 1.0, rng=0)


@pytest.mark.parametrize("name", sorted(ALL_P_OPS))
def test_dtypes_are_kept_and_masks_do_not_depend_on_them(dropkit_backend, name):
    fwd, _, kw = ALL_P_OPS[name]
    xp = dropkit_backend.xp
    shape = DROPPING[name][3] if name in DROPPING else (4, 6)
    stored = "return_noise" if name in GAUSSIAN else "return_mask"
    outs, noises = {}, {}
    for dtype in float_dtypes(xp):
        x = to_namespace(xp, np.linspace(-2, 2, math.prod(shape)).reshape(shape).astype(dtype))
        y, noise = fwd(x, 0.4, rng=9, **{stored: True}, **kw)
        assert y.dtype == x.dtype and tuple(y.shape) == shape
        outs[dtype], noises[dtype] = to_numpy(y).astype(np.float64), to_numpy(noise)
    widest = widest_float(xp)
    for dtype, y in outs.items():
        if name in GAUSSIAN:  # the noise is computed once, wide, and rounded to the dtype
            want = noises[widest].astype(dtype)
            np.testing.assert_array_equal(noises[dtype], want)
        else:  # the same mask for every dtype
            np.testing.assert_array_equal(noises[dtype], noises[widest])
        # values: the widest's, up to the rounding of the input, the factors and the result
        ref = outs[widest]
        eps = float(np.finfo(dtype).eps)
        assert np.all(np.abs(y - ref) <= 4 * eps * (np.abs(ref) + 2)), dtype


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", sorted(ALL_P_OPS))
@pytest.mark.parametrize("p", [-0.1, 1.5, math.nan])
def test_bad_p_is_named(dropkit_backend, name, p):
    fwd, bwd, kw = ALL_P_OPS[name]
    shape = DROPPING[name][3] if name in DROPPING else (4, 6)
    x = dropkit_backend.xp.ones(shape, dtype=dropkit_backend.xp.float32)
    with pytest.raises(ValueError, match=r"p is the probability of DROPPING.*got"):
        fwd(x, p, rng=0, **kw)
    with pytest.raises(ValueError, match=r"p is the probability of DROPPING.*got"):
        bwd(x, p, rng=0, **kw)
    with pytest.raises(TypeError, match=r"p must be a real number"):
        fwd(x, "0.5", rng=0, **kw)


@pytest.mark.parametrize("name", [*sorted(ALL_P_OPS), "gaussian_noise"])
def test_non_floating_input_is_refused(dropkit_backend, name):
    xp = dropkit_backend.xp
    fwd = dropkit.gaussian_noise if name == "gaussian_noise" else ALL_P_OPS[name][0]
    kw = {} if name == "gaussian_noise" else ALL_P_OPS[name][2]
    shape = DROPPING[name][3] if name in DROPPING else (4, 6)
    a = xp.zeros(shape, dtype=xp.int32)
    with pytest.raises(TypeError, match=r"x must have a real floating dtype"):
        fwd(a, 0.5, rng=0, **kw)


@pytest.mark.parametrize("stddev", [-0.1, math.nan, math.inf, -math.inf])
def test_bad_stddev_is_named(dropkit_backend, stddev):
    x = dropkit_backend.xp.ones((3,), dtype=dropkit_backend.xp.float32)
    with pytest.raises(ValueError, match=r"stddev must be a finite number >= 0.*got"):
        dropkit.gaussian_noise(x, stddev, rng=0)
    with pytest.raises(ValueError, match=r"stddev must be a finite number >= 0"):
        dropkit.gaussian_noise_backward(x, stddev)
    with pytest.raises(TypeError, match=r"stddev must be a real number"):
        dropkit.gaussian_noise(x, "0.1", rng=0)


@pytest.mark.parametrize(
    ("block_size", "error", "match"),
    [
        (0, ValueError, r"block_size must be a positive integer .*got 0"),
        (-3, ValueError, r"block_size must be a positive integer .*got -3"),
        (2.5, TypeError, r"block_size must be a positive integer .*got 2.5"),
        (True, TypeError, r"block_size must be a positive integer .*got True"),
        ("3", TypeError, r"block_size must be a positive integer"),
        (10, ValueError, r"block_size=10 is larger than the feature map \(9 x 9\).*<= 9"),
    ],
)
def test_bad_block_size_is_named(dropkit_backend, block_size, error, match):
    x = dropkit_backend.xp.ones((2, 3, 9, 9), dtype=dropkit_backend.xp.float32)
    with pytest.raises(error, match=match):
        dropkit.dropblock2d(x, 0.2, block_size=block_size, rng=0)
    with pytest.raises(error, match=match):
        dropkit.dropblock2d_backward(x, 0.2, block_size=block_size, rng=0)


def test_bad_shapes_and_axes_are_named(dropkit_backend):
    xp = dropkit_backend.xp
    with pytest.raises(ValueError, match=r"dropblock2d expects a 4-d input.*add a batch axis"):
        dropkit.dropblock2d(xp.ones((3, 9, 9)), 0.2, block_size=3, rng=0)
    with pytest.raises(ValueError, match=r"spatial axes must be adjacent"):
        dropkit.dropblock2d(xp.ones((2, 3, 9, 9)), 0.2, block_size=3, channel_axis=2, rng=0)
    with pytest.raises(ValueError, match=r"rank >= 2"):
        dropkit.feature_alpha_dropout(xp.ones((5,)), 0.2, rng=0)
    with pytest.raises(ValueError, match=r"channel_axis must name an axis"):
        dropkit.feature_alpha_dropout(xp.ones((5, 3)), 0.2, channel_axis=0, rng=0)
    with pytest.raises(ValueError, match=r"batch axis"):
        dropkit.drop_path(xp.ones(()), 0.2, rng=0)


def test_backward_needs_exactly_one_source(dropkit_backend):
    x = dropkit_backend.xp.ones((4, 6), dtype=dropkit_backend.xp.float32)
    for bwd, stored in (
        (dropkit.gaussian_dropout_backward, "noise"),
        (dropkit.alpha_dropout_backward, "mask"),
        (lambda g, p, **kw: dropkit.dropblock2d_backward(g, p, block_size=2, **kw), "mask"),
    ):
        g = (
            x
            if stored != "mask" or bwd is dropkit.alpha_dropout_backward
            else dropkit_backend.xp.ones((1, 1, 4, 6), dtype=dropkit_backend.xp.float32)
        )
        with pytest.raises(ValueError, match=rf"needs exactly one of {stored}= .* or rng="):
            bwd(g, 0.5)


def test_dropblock_scale_beyond_float16_stays_finite(dropkit_backend):
    # 2**18 units, nearly all dropped: units / kept may exceed float16's largest finite
    # value, but a small input times it does not: the product is formed in float32.
    # (A p whose expected scale 1/(1 - p) is not finite in float16 is refused, as by
    # dropout: see test_errors.test_scale_not_finite_in_the_dtype.)
    xp = dropkit_backend.xp
    if "float16" not in float_dtypes(xp):
        pytest.skip(f"{dropkit_backend.name} has no float16")
    x = xp.full((1, 1, 512, 512), 0.125, dtype=xp.float16)
    p = 1 - 2.0**-15
    y, keep = dropkit.dropblock2d(x, p, block_size=1, rng=3, return_mask=True)
    y, keep = to_numpy(y), to_numpy(keep)
    kept = int(np.count_nonzero(keep))
    assert 0 < kept < keep.size / 2**14
    np.testing.assert_array_equal(y[keep], np.float16(0.125 * keep.size / kept))
    assert np.all(np.isfinite(y))
