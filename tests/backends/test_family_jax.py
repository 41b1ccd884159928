"""The dropout family on JAX arrays: the NumPy backend's noise, jit, grad, NNX and Equinox.

Skipped, with the reason, where JAX (or Flax, Equinox) is not installed.
"""

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX is not installed")

import jax.numpy as jnp  # noqa: E402
from dk_helpers import key_of as _key_of  # noqa: E402

import dropkit  # noqa: E402
from dropkit.normals import FLOAT32_ABS_ERROR  # noqa: E402

OPS = {
    "gaussian_dropout": (lambda x, **kw: dropkit.gaussian_dropout(x, 0.3, **kw), (5, 7)),
    "gaussian_noise": (lambda x, **kw: dropkit.gaussian_noise(x, 0.3, **kw), (5, 7)),
    "alpha_dropout": (lambda x, **kw: dropkit.alpha_dropout(x, 0.3, **kw), (5, 7)),
    "feature_alpha_dropout": (
        lambda x, **kw: dropkit.feature_alpha_dropout(x, 0.3, **kw),
        (4, 6, 5),
    ),
    "drop_path": (lambda x, **kw: dropkit.drop_path(x, 0.3, **kw), (16, 3)),
    "dropblock2d": (lambda x, **kw: dropkit.dropblock2d(x, 0.3, block_size=3, **kw), (2, 3, 8, 8)),
}
BACKWARD = {
    "gaussian_dropout": lambda g, **kw: dropkit.gaussian_dropout_backward(g, 0.3, **kw),
    "gaussian_noise": lambda g, **kw: dropkit.gaussian_noise_backward(g, 0.3),
    "alpha_dropout": lambda g, **kw: dropkit.alpha_dropout_backward(g, 0.3, **kw),
    "feature_alpha_dropout": lambda g, **kw: dropkit.feature_alpha_dropout_backward(g, 0.3, **kw),
    "drop_path": lambda g, **kw: dropkit.drop_path_backward(g, 0.3, **kw),
    "dropblock2d": lambda g, **kw: dropkit.dropblock2d_backward(g, 0.3, block_size=3, **kw),
}
GAUSSIAN = ("gaussian_dropout", "gaussian_noise")


def _x(name):
    return np.random.default_rng(3).standard_normal(OPS[name][1]).astype(np.float32)


def _close(name, got, want):
    got = np.asarray(got, dtype=np.float64)
    if name in GAUSSIAN:  # float32 Box-Muller here (no x64): the documented tolerance
        scale = 0.3 * 5 if name == "gaussian_dropout" else 0.3
        tol = scale * FLOAT32_ABS_ERROR + 4 * np.spacing(np.abs(want).astype(np.float32))
        assert np.all(np.abs(got - want) <= tol)
    elif "alpha" in name:  # a * x + b: XLA may fuse it into one FMA under jit (1 rounding less)
        np.testing.assert_array_less(np.abs(got - want), 2.5 * np.spacing(np.abs(want) + 1))
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(OPS))
def test_jit_and_grad_give_numpys_noise_for_the_key(name):
    op, _ = OPS[name]
    a = _x(name)
    key = jax.random.PRNGKey(9)  # dropkit key 9 (the documented mapping)
    want = op(a, rng=9)
    step = jax.jit(lambda x, k: op(x, rng=k))
    _close(name, step(jnp.asarray(a), key), want)
    _close(name, step(jnp.asarray(a), jax.random.PRNGKey(9)), want)  # one compilation, any key
    g = np.linspace(-1, 1, a.size).reshape(a.shape).astype(np.float32)
    _, vjp = jax.vjp(lambda x: op(x, rng=key), jnp.asarray(a))
    (dx,) = vjp(jnp.asarray(g))
    _close(name, dx, BACKWARD[name](g, rng=9))
    _close(name, BACKWARD[name](jnp.asarray(g), rng=key), BACKWARD[name](g, rng=9))


def test_zero_gradient_where_dropped_under_grad():
    a = jnp.asarray(_x("dropblock2d"))
    key = jax.random.key(4)
    _y, keep = dropkit.dropblock2d(a, 0.3, block_size=3, rng=key, return_mask=True)
    dx = jax.grad(lambda x: dropkit.dropblock2d(x, 0.3, block_size=3, rng=key).sum())(a)
    assert bool(jnp.all(jnp.where(keep, dx != 0, dx == 0)))
    _, mask = dropkit.alpha_dropout(a, 0.3, rng=key, return_mask=True)
    dx = jax.grad(lambda x: dropkit.alpha_dropout(x, 0.3, rng=key).sum())(a)
    assert bool(jnp.all(jnp.where(mask, dx != 0, dx == 0)))


def _nnx_modules():
    from dropkit_jax import nnx as dnnx

    return {
        "gaussian_dropout": lambda **kw: dnnx.GaussianDropout(0.3, **kw),
        "gaussian_noise": lambda **kw: dnnx.GaussianNoise(0.3, **kw),
        "alpha_dropout": lambda **kw: dnnx.AlphaDropout(0.3, **kw),
        "feature_alpha_dropout": lambda **kw: dnnx.FeatureAlphaDropout(0.3, **kw),
        "drop_path": lambda **kw: dnnx.DropPath(0.3, **kw),
        "dropblock2d": lambda **kw: dnnx.DropBlock2d(0.3, block_size=3, **kw),
    }


@pytest.mark.parametrize("name", sorted(OPS))
def test_nnx_modules_draw_from_the_dropout_stream_and_switch_off(nnx, name):
    layer = _nnx_modules()[name](rngs=nnx.Rngs(dropout=3))
    a = _x(name)
    y = layer(jnp.asarray(a))
    key = nnx.Rngs(dropout=3).dropout.fork()()  # the first key the layer's stream gives
    _close(name, y, OPS[name][0](a, rng=_key_of(key)))
    layer.eval()
    np.testing.assert_array_equal(layer(jnp.asarray(a)), a)
    layer.train()
    step = nnx.jit(lambda m, x: m(x))
    assert step(layer, jnp.asarray(a)).shape == a.shape


def _eqx_modules():
    from dropkit_jax import equinox as deqx

    return {
        "gaussian_dropout": lambda: deqx.GaussianDropout(0.3),
        "gaussian_noise": lambda: deqx.GaussianNoise(0.3),
        "alpha_dropout": lambda: deqx.AlphaDropout(0.3),
        "feature_alpha_dropout": lambda: deqx.FeatureAlphaDropout(0.3),
        "drop_path": lambda: deqx.DropPath(0.3),
        "dropblock2d": lambda: deqx.DropBlock2d(0.3, block_size=3),
    }


@pytest.mark.parametrize("name", sorted(OPS))
def test_equinox_modules_under_filter_jit_and_inference_mode(eqx, name):
    layer = _eqx_modules()[name]()
    a = _x(name)
    key = jax.random.PRNGKey(6)
    y = eqx.filter_jit(lambda m, x, k: m(x, key=k))(layer, jnp.asarray(a), key)
    _close(name, y, OPS[name][0](a, rng=6))
    np.testing.assert_array_equal(eqx.nn.inference_mode(layer)(jnp.asarray(a)), a)
    with pytest.raises(RuntimeError, match="requires a key"):
        layer(jnp.asarray(a))
    g = eqx.filter_grad(lambda x: layer(x, key=key).sum())(jnp.asarray(a))
    _close(name, g, BACKWARD[name](np.ones_like(a), rng=6))


def test_bad_module_arguments_are_named(eqx, nnx):
    from dropkit_jax import equinox as deqx
    from dropkit_jax import nnx as dnnx

    with pytest.raises(ValueError, match="needs p < 1"):
        deqx.GaussianDropout(1.0)
    with pytest.raises(ValueError, match="needs p < 1"):
        dnnx.GaussianDropout(1.0)
    with pytest.raises(ValueError, match="stddev must be a finite number"):
        deqx.GaussianNoise(float("nan"))
    with pytest.raises(ValueError, match="stddev must be a finite number"):
        dnnx.GaussianNoise(-0.5)
    with pytest.raises(ValueError, match="block_size must be a positive integer"):
        dnnx.DropBlock2d(0.1, block_size=0)
    with pytest.raises(TypeError, match="block_size must be a positive integer"):
        deqx.DropBlock2d(0.1, block_size=2.5)
    assert float(deqx.DropPath(1.0)(jnp.ones((3, 2))).sum()) == 0.0  # p = 1: no key needed
