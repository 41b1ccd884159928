"""dropkit's Flax NNX and Equinox Dropout modules inside those frameworks' machinery."""

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX is not installed")

import jax.numpy as jnp  # noqa: E402
from dk_helpers import key_of as _key_of  # noqa: E402

import dropkit  # noqa: E402


def _numpy_mask(key, shape, p, noise_shape=None):
    ones = np.ones(shape, np.float32)
    return dropkit.dropout(ones, p, rng=_key_of(key), noise_shape=noise_shape) != 0


# --------------------------------------------------------------------------- Flax NNX


def test_nnx_mask_is_dropkits_for_the_key_of_the_dropout_stream(nnx):
    from dropkit_jax.nnx import Dropout

    layer = Dropout(0.4, rngs=nnx.Rngs(dropout=3))
    assert isinstance(layer, nnx.Dropout)
    y = layer(jnp.ones((16, 9)))
    key = nnx.Rngs(dropout=3).dropout.fork()()  # the first key the layer's stream gives
    np.testing.assert_array_equal(np.asarray(y) != 0, _numpy_mask(key, (16, 9), 0.4))
    second = layer(jnp.ones((16, 9)))
    assert not np.array_equal(np.asarray(second), np.asarray(y))  # the stream advanced


def test_nnx_train_eval_deterministic_and_view(nnx):
    from dropkit_jax.nnx import Dropout

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.linear = nnx.Linear(4, 64, rngs=rngs)
            self.drop = Dropout(0.5, rngs=rngs)

        def __call__(self, x):
            return self.drop(self.linear(x))

    model = MLP(nnx.Rngs(0))
    x = jnp.ones((3, 4))
    clean = model.linear(x)
    # training by default (fixed seed; 192 units at p = 0.5: P(< 25% dropped) < 1e-11)
    assert np.mean(np.asarray(model(x)) == 0) > 0.25
    model.eval()
    np.testing.assert_array_equal(model(x), clean)
    model.train()
    assert np.mean(np.asarray(model(x)) == 0) > 0.25
    np.testing.assert_array_equal(nnx.view(model, deterministic=True)(x), clean)
    np.testing.assert_array_equal(model.drop(clean, deterministic=True), clean)
    frozen = Dropout(0.5, deterministic=True)
    np.testing.assert_array_equal(frozen(clean), clean)
    key = jax.random.key(1)
    y = frozen(x, deterministic=False, rngs=key)
    np.testing.assert_array_equal(np.asarray(y) != 0, _numpy_mask(key, x.shape, 0.5))


def test_nnx_jitted_training_step_compiles_once_and_regenerates_the_mask(nnx):
    optax = pytest.importorskip("optax", reason="optax is not installed")
    from dropkit_jax.nnx import Dropout

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.w = nnx.Param(jnp.ones((1, 32)))
            self.drop = Dropout(0.5, rngs=rngs)

        def __call__(self, x):
            return self.drop(x * self.w)

    model = Net(nnx.Rngs(dropout=11))
    optimizer = nnx.Optimizer(model, optax.sgd(0.0), wrt=nnx.Param)
    traces = []

    @nnx.jit
    def step(model, optimizer, x):
        traces.append(1)
        grads = nnx.grad(lambda m: m(x).sum())(model)
        optimizer.update(model, grads)
        return grads.w[...]

    x = jnp.ones((1, 32))
    stream = nnx.Rngs(dropout=11).dropout.fork()
    patterns = set()
    for _ in range(4):
        g = np.asarray(step(model, optimizer, x))
        want = np.where(_numpy_mask(stream(), (1, 32), 0.5), 2.0, 0.0)
        np.testing.assert_array_equal(g, want)
        patterns.add(g.tobytes())
    assert len(traces) == 1 and len(patterns) == 4


def test_nnx_broadcast_dims_share_one_mask_and_bad_use_is_named(nnx):
    from dropkit_jax.nnx import Dropout

    key = jax.random.key(5)
    y = Dropout(0.5, broadcast_dims=(1,))(jnp.ones((6, 7, 3)), rngs=key)
    np.testing.assert_array_equal(
        np.asarray(y) != 0,
        np.broadcast_to(_numpy_mask(key, (6, 7, 3), 0.5, noise_shape=(6, 1, 3)), (6, 7, 3)),
    )
    with pytest.raises(ValueError, match="no key source"):
        Dropout(0.5)(jnp.ones(3))
    with pytest.raises(ValueError, match="not an axis"):
        Dropout(0.5, broadcast_dims=(3,))(jnp.ones((2, 2)), rngs=key)
    with pytest.raises(ValueError, match="no deterministic flag"):
        Dropout(0.5, deterministic=None)(jnp.ones(3), rngs=key)
    with pytest.raises(ValueError, match="probability of DROPPING"):
        Dropout(1.5)(jnp.ones(3), rngs=key)
    with pytest.raises(TypeError, match="real floating dtype"):
        Dropout(0.5)(jnp.ones(3, dtype=jnp.int32), rngs=key)


# --------------------------------------------------------------------------- Equinox


def test_equinox_mask_inference_mode_and_call_override(eqx):
    from dropkit_jax.equinox import Dropout

    key = jax.random.key(2)
    layer = Dropout(0.3)
    x = jnp.ones((10, 10))
    mask = _numpy_mask(key, x.shape, 0.3)
    np.testing.assert_array_equal(np.asarray(layer(x, key=key)) != 0, mask)
    off = eqx.nn.inference_mode(layer)
    assert off.inference is True
    np.testing.assert_array_equal(off(x), x)
    np.testing.assert_array_equal(layer(x, inference=True), x)
    on_again = eqx.nn.inference_mode(off, value=False)
    np.testing.assert_array_equal(on_again(x, key=key), layer(x, key=key))
    halved = eqx.tree_at(lambda m: m.p, layer, 0.5)
    mask = _numpy_mask(key, x.shape, 0.5)
    np.testing.assert_array_equal(np.asarray(halved(x, key=key)) != 0, mask)


def test_equinox_filter_jit_compiles_once_and_grad_and_vmap_work(eqx):
    from dropkit_jax.equinox import Dropout

    class Net(eqx.Module):
        w: jax.Array
        drop: Dropout

        def __call__(self, x, *, key):
            return self.drop(x * self.w, key=key)

    net = Net(jnp.ones(24), Dropout(0.5))
    traces = []

    @eqx.filter_jit
    def grads(net, x, key):
        traces.append(1)
        return eqx.filter_grad(lambda n: n(x, key=key).sum())(net).w

    key = jax.random.key(0)
    for _ in range(3):
        key, sub = jax.random.split(key)
        want = np.where(_numpy_mask(sub, (24,), 0.5), 2.0, 0.0)
        np.testing.assert_array_equal(np.asarray(grads(net, jnp.ones(24), sub)), want)
    assert len(traces) == 1
    keys = jax.random.split(jax.random.key(4), 5)
    batch = jax.vmap(lambda x, k: net(x, key=k))(jnp.ones((5, 24)), keys)
    for i in range(5):
        np.testing.assert_array_equal(np.asarray(batch[i]) != 0, _numpy_mask(keys[i], (24,), 0.5))


def test_equinox_bad_use_is_named(eqx):
    from dropkit_jax.equinox import Dropout

    layer = Dropout(0.5)
    with pytest.raises(RuntimeError, match="requires a key"):
        layer(jnp.ones(3))
    with pytest.raises(TypeError, match=r"eqx\.filter_jit"):
        jax.jit(lambda m, x, k: m(x, key=k))(layer, jnp.ones(3), jax.random.key(0))
    with pytest.raises(TypeError, match="raw JAX key"):
        layer(jnp.ones(3), key=jnp.ones(2))
    with pytest.raises(ValueError, match="not an axis"):
        Dropout(0.5, broadcast_dims=("a",))(jnp.ones(3), key=jax.random.key(0))


# ---------------------------------------------------------------- the audit's cases


def test_nnx_refuses_what_flax_refuses_and_draws_no_key_at_rate_1(nnx):
    from dropkit_jax.nnx import Dropout

    with pytest.raises(TypeError, match=r"an nnx\.RngStream or a JAX key"):
        Dropout(0.5)(jnp.ones(3), rngs=0)
    with pytest.raises(TypeError, match="rngs must be"):
        Dropout(0.5)(jnp.ones(3), rngs=dropkit.Generator(0))
    with pytest.raises(ValueError, match="Dropout's rate: p is the probability of DROPPING"):
        Dropout(1.5)
    ours, theirs = Dropout(1.0, rngs=nnx.Rngs(0)), nnx.Dropout(1.0, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(ours(jnp.ones(4)), theirs(jnp.ones(4)))
    assert int(ours.rngs.count[...]) == int(theirs.rngs.count[...]) == 0
    # evaluation returns the input as is, whatever its dtype (as Flax does)
    ints = jnp.arange(4)
    assert Dropout(0.5, deterministic=True)(ints) is ints


def test_nnx_rate_as_a_concrete_scalar_array(nnx):
    from dropkit_jax.nnx import Dropout

    key = jax.random.key(3)
    np.testing.assert_array_equal(
        Dropout(jnp.float32(0.25))(jnp.ones(16), rngs=key), Dropout(0.25)(jnp.ones(16), rngs=key)
    )


def test_nnx_hessian_through_the_layer(nnx):
    from dropkit_jax.nnx import Dropout

    layer, key = Dropout(0.5), jax.random.key(4)
    x = jnp.linspace(-1.0, 1.0, 12)
    hess = jax.hessian(lambda t: (jnp.tanh(layer(t, rngs=key)) ** 2).sum())(x)
    dropped = np.asarray(layer(jnp.ones(12), rngs=key)) == 0
    np.testing.assert_array_equal(np.asarray(hess)[dropped], 0.0)


def test_equinox_inference_returns_the_input_and_flags_are_checked(eqx):
    from dropkit_jax.equinox import Dropout

    ints = jnp.arange(4)
    assert Dropout(0.5, inference=True)(ints) is ints
    with pytest.raises(TypeError, match="inference must be a bool"):
        Dropout(0.5, inference="yes")
    with pytest.raises(ValueError, match="probability of DROPPING"):
        Dropout(-0.1)
    layer = Dropout(0.5)
    with pytest.raises(TypeError, match="inference is a traced value; it must be a Python bool"):
        eqx.filter_jit(lambda m, x, i: m(x, key=jax.random.key(0), inference=i))(
            layer, jnp.ones(3), jnp.array(True)
        )
