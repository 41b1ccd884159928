"""dropkit inside JAX's machinery: traced keys under jit, custom_jvp, vmap, scan, bad keys."""

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX is not installed")

import jax.numpy as jnp  # noqa: E402
from dk_helpers import key_of as _key_of  # noqa: E402
from jax.ad_checkpoint import print_saved_residuals  # noqa: E402

import dropkit  # noqa: E402


def test_prngkey_seed_maps_to_the_same_dropkit_key():
    x = np.random.default_rng(0).standard_normal((9, 13)).astype(np.float32)
    for key in (jax.random.PRNGKey(7), jax.random.key(7)):
        y = dropkit.dropout(jnp.asarray(x), 0.4, rng=key)
        np.testing.assert_array_equal(np.asarray(y), dropkit.dropout(x, 0.4, rng=7))


def test_jit_with_the_key_as_an_argument_compiles_once_for_every_key():
    traces = []

    @jax.jit
    def step(x, key):
        traces.append(1)
        return dropkit.dropout(x, 0.3, rng=key)

    x = np.random.default_rng(1).standard_normal((32, 17)).astype(np.float32)
    key = jax.random.key(0)
    for _ in range(4):
        key, sub = jax.random.split(key)
        want = dropkit.dropout(x, 0.3, rng=_key_of(sub))
        np.testing.assert_array_equal(np.asarray(step(jnp.asarray(x), sub)), want)
    assert len(traces) == 1


def test_grad_and_jit_of_grad_give_the_forward_mask():
    key = jax.random.key(5)
    x = jnp.asarray(np.random.default_rng(2).standard_normal(1000).astype(np.float32))
    want = np.where(np.asarray(dropkit.dropout(x, 0.5, rng=key)) != 0, 2.0, 0.0)
    eager = jax.grad(lambda t: dropkit.dropout(t, 0.5, rng=key).sum())(x)
    jitted = jax.jit(jax.grad(lambda t, k: dropkit.dropout(t, 0.5, rng=k).sum()))(x, key)
    np.testing.assert_array_equal(np.asarray(eager), want)
    np.testing.assert_array_equal(np.asarray(jitted), want)
    relu = jax.grad(lambda t: dropkit.relu_dropout(t, 0.5, rng=key).sum())(x)
    np.testing.assert_array_equal(np.asarray(relu), np.where(np.asarray(x) > 0, want, 0.0))


def _residuals(capsys, fn, x):
    print_saved_residuals(fn, x)
    return capsys.readouterr().out.strip().splitlines()


def test_residuals_are_the_packed_mask_then_the_draw(capsys, monkeypatch):
    """Up to KEEP_PACKED_MAX elements reverse mode keeps n / 8 bytes; above, the 16-byte draw."""
    from dropkit_jax import keep

    key = jax.random.key(1)
    x = jnp.ones(1000)
    fn = jax.grad(lambda t: dropkit.dropout(t, 0.5, rng=key).sum())
    want = fn(x)
    saved = _residuals(capsys, lambda t: dropkit.dropout(t, 0.5, rng=key).sum(), x)
    assert len(saved) == 1 and saved[0].startswith("u32[32] "), saved  # ceil(1000 / 32) words
    monkeypatch.setattr(keep, "KEEP_PACKED_MAX", 999)
    saved = _residuals(capsys, lambda t: dropkit.dropout(t, 0.5, rng=key).sum(), x)
    assert saved and all(line.startswith("u32[4]") for line in saved), saved
    np.testing.assert_array_equal(
        jax.grad(lambda t: dropkit.dropout(t, 0.5, rng=key).sum())(x), want
    )
    np.testing.assert_array_equal(
        want, np.where(np.asarray(dropkit.dropout(x, 0.5, rng=key)) != 0, 2.0, 0.0)
    )


def test_vmap_over_keys_gives_independent_masks():
    keys = jax.random.split(jax.random.key(3), 5)
    x = jnp.ones((5, 64))
    out = jax.vmap(lambda row, k: dropkit.dropout(row, 0.5, rng=k))(x, keys)
    for i in range(5):
        want = dropkit.dropout(np.ones(64, np.float32), 0.5, rng=_key_of(keys[i]))
        np.testing.assert_array_equal(np.asarray(out[i]), want)
    assert len({np.asarray(out[i] == 0).tobytes() for i in range(5)}) == 5


def test_vmap_over_a_batch_with_one_key_gives_each_row_the_one_call_mask():
    key = jax.random.key(4)
    x = jnp.asarray(np.random.default_rng(3).standard_normal((6, 10)).astype(np.float32))
    out = jax.vmap(lambda row: dropkit.dropout(row, 0.5, rng=key))(x)
    for i in range(6):
        np.testing.assert_array_equal(out[i], dropkit.dropout(x[i], 0.5, rng=key))


def test_scan_with_the_key_in_the_carry():
    def body(carry, _):
        key, h = carry
        key, sub = jax.random.split(key)
        h = dropkit.dropout(h, 0.25, rng=sub)
        return (key, h), h

    (_, final), steps = jax.lax.scan(body, (jax.random.key(9), jnp.ones(50)), None, length=3)
    key, h = jax.random.key(9), np.ones(50, np.float32)
    for i in range(3):
        key, sub = jax.random.split(key)
        h = dropkit.dropout(h, 0.25, rng=_key_of(sub))
        np.testing.assert_array_equal(np.asarray(steps[i]), h)
    np.testing.assert_array_equal(np.asarray(final), h)


def test_a_generator_inside_jit_is_refused_not_frozen():
    gen = dropkit.Generator(1)
    with pytest.raises(TypeError, match="Python state that a JAX trace would freeze"):
        jax.jit(lambda x: dropkit.dropout(x, 0.5, rng=gen))(jnp.ones(4))
    assert gen.counter == 0


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: jnp.ones(2, dtype=jnp.float32), "raw JAX key, uint32 of shape"),
        (lambda: jnp.zeros(3, dtype=jnp.uint32), "raw JAX key, uint32 of shape"),
        (lambda: jax.random.split(jax.random.key(0), 2), "single JAX key"),
        (lambda: jax.random.key(0, impl="rbg"), "threefry2x32"),
        (lambda: None, "rng is required on JAX arrays"),
        (lambda: "seed", "rng must be"),
    ],
)
def test_bad_keys_are_named(make, match):
    with pytest.raises(TypeError, match=match):
        dropkit.dropout(jnp.ones(4), 0.5, rng=make())


def test_traced_p_and_training_are_refused_with_the_fix():
    with pytest.raises(TypeError, match="static_argnames='p'"):
        jax.jit(lambda x, p: dropkit.dropout(x, p, rng=1))(jnp.ones(4), 0.5)
    with pytest.raises(TypeError, match="static_argnames='training'"):
        jax.jit(lambda x, t: dropkit.dropout(x, 0.5, rng=1, training=t))(jnp.ones(4), True)
    static = jax.jit(lambda x, p: dropkit.dropout(x, p, rng=1), static_argnames="p")
    np.testing.assert_array_equal(
        static(jnp.ones(4), p=0.5), dropkit.dropout(jnp.ones(4), 0.5, rng=1)
    )


def test_a_draw_carried_through_scan_follows_the_dropkit_generator():
    from dropkit_jax.keys import Draw

    def body(draw, _):
        return draw.next(), dropkit.dropout(jnp.ones(40), 0.5, rng=draw)

    last, masks = jax.lax.scan(body, Draw.of(2**40 + 3, counter=2**32 - 2), None, length=3)
    gen = dropkit.Generator(2**40 + 3, counter=2**32 - 2)  # crosses into the high word
    for i in range(3):
        np.testing.assert_array_equal(
            masks[i], dropkit.dropout(np.ones(40, np.float32), 0.5, rng=gen)
        )
    assert [int(w) for w in last.counter] == [1, 1] and gen.counter == 2**32 + 1


def test_a_draw_as_a_jit_argument_compiles_once():
    from dropkit_jax.keys import Draw

    traces = []

    @jax.jit
    def step(x, draw):
        traces.append(1)
        return dropkit.dropout(x, 0.5, rng=draw)

    for counter in range(3):
        want = dropkit.dropout(np.ones(16, np.float32), 0.5, rng=dropkit.Generator(9, counter))
        np.testing.assert_array_equal(step(jnp.ones(16), Draw.of(9, counter)), want)
    assert len(traces) == 1


def test_vmap_over_raw_keys():
    keys = jax.random.split(jax.random.PRNGKey(8), 3)  # uint32[3, 2]
    out = jax.vmap(lambda k: dropkit.dropout(jnp.ones(32), 0.5, rng=k))(keys)
    for i in range(3):
        want = dropkit.dropout(np.ones(32, np.float32), 0.5, rng=_key_of(keys[i]))
        np.testing.assert_array_equal(out[i], want)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: jax.random.split(jax.random.PRNGKey(0), 5), "batch of 5 raw keys"),
        (lambda: jnp.zeros(4, dtype=jnp.uint32), "ambiguous"),
        (lambda: jax.random.PRNGKey(0).astype(jnp.int32), "raw JAX key, uint32"),
        (lambda: jax.random.key_data(jax.random.key(0)).astype(jnp.float32), "raw JAX key"),
    ],
)
def test_raw_key_mix_ups_are_named(make, match):
    with pytest.raises(TypeError, match=match):
        dropkit.dropout(jnp.ones(4), 0.5, rng=make())


def test_bad_draws_are_named():
    from dropkit_jax.keys import Draw

    with pytest.raises(TypeError, match=r"Draw\.key must be uint32 of shape"):
        dropkit.dropout(jnp.ones(4), 0.5, rng=Draw(jnp.zeros(2), jnp.zeros(2, jnp.uint32)))
    with pytest.raises(TypeError, match=r"Draw\.counter must be uint32 of shape"):
        dropkit.dropout(jnp.ones(4), 0.5, rng=Draw(jnp.zeros(2, jnp.uint32), 5))
    with pytest.raises((ValueError, TypeError), match="counter"):
        Draw.of(1, counter=2**63)


# ---------------------------------------------------------------- the audit's cases


@pytest.mark.parametrize(
    "make",
    [lambda: dropkit.Generator(0), lambda: np.random.default_rng(0)],
    ids=["dropkit", "numpy"],
)
def test_a_python_generator_inside_jit_is_refused_even_with_a_constant_input(make):
    gen, constant = make(), jnp.ones(8)
    step = jax.jit(lambda k: dropkit.dropout(constant, 0.5, rng=gen) + 0 * k)
    with pytest.raises(TypeError, match="Python state that a JAX trace would freeze"):
        step(1.0)
    with pytest.raises(TypeError, match="Python state"):
        jax.lax.scan(
            lambda c, _: (dropkit.dropout(constant, 0.5, rng=gen), None), constant, None, length=2
        )
    # eager calls (grad and vmap run the Python once per call) still take a generator
    grads = jax.grad(lambda x: dropkit.dropout(x, 0.5, rng=gen).sum())(constant)
    assert set(np.unique(np.asarray(grads))) <= {0.0, 2.0}


@pytest.mark.parametrize("training", ["no", None, 1, jnp.asarray(True)])
def test_training_must_be_a_bool(training):
    with pytest.raises(TypeError, match="training must be a bool"):
        dropkit.dropout(jnp.ones(4), 0.5, rng=1, training=training)
    with pytest.raises(TypeError, match="training must be a bool"):
        dropkit.dropout_backward(jnp.ones(4), 0.5, rng=1, training=training)


def test_a_numpy_bool_is_a_bool():
    y = dropkit.dropout(jnp.ones(4), 0.5, rng=1, training=np.bool_(False))
    np.testing.assert_array_equal(y, jnp.ones(4))


def test_traced_training_in_the_backwards_is_refused_with_the_fix():
    g, key = jnp.ones((4, 8)), jax.random.key(0)
    with pytest.raises(TypeError, match="static_argnames='training'"):
        jax.jit(lambda g, t: dropkit.dropout_backward(g, 0.5, rng=key, training=t))(g, True)
    with pytest.raises(TypeError, match="static_argnames='training'"):
        jax.jit(lambda g, t: dropkit.relu_dropout_backward(g, g, 0.5, training=t))(g, True)


def test_forward_mode_jvp_jacfwd_and_hessian_use_the_forward_mask():
    key = jax.random.key(6)
    x = jnp.asarray(np.random.default_rng(4).standard_normal(50).astype(np.float32))
    scaled_mask = np.where(np.asarray(dropkit.dropout(x, 0.5, rng=key)) != 0, 2.0, 0.0)
    _, tangent = jax.jvp(lambda t: dropkit.dropout(t, 0.5, rng=key), (x,), (jnp.ones(50),))
    np.testing.assert_array_equal(tangent, scaled_mask)
    jac = jax.jacfwd(lambda t: dropkit.dropout(t, 0.5, rng=key))(x)
    np.testing.assert_array_equal(jac, np.diag(scaled_mask))
    np.testing.assert_array_equal(jax.jacrev(lambda t: dropkit.dropout(t, 0.5, rng=key))(x), jac)
    relu = jax.jvp(lambda t: dropkit.relu_dropout(t, 0.5, rng=key), (x,), (jnp.ones(50),))[1]
    np.testing.assert_array_equal(relu, np.where(np.asarray(x) > 0, scaled_mask, 0.0))

    def loss(t):
        return (jnp.tanh(dropkit.dropout(t, 0.5, rng=key)) ** 2).sum()

    hess = np.asarray(jax.hessian(loss)(x))
    np.testing.assert_array_equal(hess[scaled_mask == 0], 0.0)  # dropped rows
    assert np.all(np.diag(hess)[scaled_mask != 0] != 0)
    hvp = jax.jvp(jax.grad(loss), (x,), (jnp.ones(50),))[1]
    np.testing.assert_allclose(hvp, hess.sum(axis=1), rtol=1e-5, atol=1e-6)


def test_the_relu_form_saves_only_its_output(capsys):
    key = jax.random.key(1)
    print_saved_residuals(lambda t: dropkit.relu_dropout(t, 0.5, rng=key).sum(), jnp.ones(1000))
    saved = capsys.readouterr().out.strip().splitlines()
    assert len(saved) == 1 and saved[0].startswith("f32[1000]"), saved


def test_checkpointed_dropout_regenerates_the_same_mask():
    key = jax.random.key(2)
    x = jnp.asarray(np.random.default_rng(5).standard_normal(64).astype(np.float32))
    f = jax.checkpoint(lambda t: jnp.sin(dropkit.dropout(t, 0.5, rng=key)).sum())
    plain = jax.grad(lambda t: jnp.sin(dropkit.dropout(t, 0.5, rng=key)).sum())(x)
    np.testing.assert_array_equal(jax.grad(f)(x), plain)


def test_a_packed_mask_leaves_jit_and_vmap():
    x, key = jnp.ones(13), jax.random.key(0)
    y, packed = jax.jit(lambda x, k: dropkit.dropout(x, 0.5, rng=k, return_mask="packed"))(x, key)
    np.testing.assert_array_equal(dropkit.unpack_mask(packed), np.asarray(y) != 0)
    keys = jax.random.split(key, 3)
    masks = jax.vmap(
        lambda k: dropkit.unpack_mask(dropkit.dropout(x, 0.5, rng=k, return_mask="packed")[1])
    )(keys)
    for i in range(3):
        np.testing.assert_array_equal(masks[i], dropkit.dropout(x, 0.5, rng=keys[i]) != 0)


@pytest.mark.parametrize("seed", [np.int64(3), np.uint32(3), np.array(3), jnp.int32(3)])
def test_a_concrete_integer_array_seed_is_the_int_seed(seed):
    np.testing.assert_array_equal(
        dropkit.dropout(jnp.ones(16), 0.5, rng=seed), dropkit.dropout(jnp.ones(16), 0.5, rng=3)
    )


def test_a_traced_integer_seed_is_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"jax\.random\.key\(seed\)"):
        jax.jit(lambda x, s: dropkit.dropout(x, 0.5, rng=s))(jnp.ones(4), 3)


def test_a_concrete_scalar_array_p_is_its_value():
    key = jax.random.key(0)
    np.testing.assert_array_equal(
        dropkit.dropout(jnp.ones(16), jnp.float32(0.25), rng=key),
        dropkit.dropout(jnp.ones(16), 0.25, rng=key),
    )


def test_beyond_2_to_the_32_elements_traces():
    big = jax.ShapeDtypeStruct((2**17, 2**16), jnp.bfloat16)  # 16 GiB: shape only
    out = jax.eval_shape(lambda x, k: dropkit.dropout(x, 0.5, rng=k), big, jax.random.key(0))
    assert out.shape == big.shape and out.dtype == jnp.bfloat16


def test_a_draw_at_the_last_counter_is_refused():
    from dropkit_jax.keys import Draw

    with pytest.raises(OverflowError, match="2\\*\\*63 draws"):
        Draw.of(1, counter=2**63 - 1)


# Issue 22, item 8: jax.export with a symbolic batch dimension failed in training mode
# ("Symbolic dimension comparison '16*b' <= '4294967296' is inconclusive").
@pytest.mark.parametrize(
    ("op", "spec"),
    [
        (lambda x, k: dropkit.dropout(x, 0.5, rng=k), "b, 16"),
        (lambda x, k: dropkit.dropout(x, 0.3, rng=k), "b, 3"),  # known part not a power of 2
        (lambda x, k: dropkit.dropout2d(x, 0.5, rng=k), "b, 4, 5, 5"),
        (lambda x, k: dropkit.dropout(x, 0.5, rng=k, noise_shape=(x.shape[0], 1)), "b, 6"),
        (lambda x, k: jax.grad(lambda z: dropkit.dropout(z, 0.5, rng=k).sum())(x), "b, 16"),
    ],
    ids=["dropout", "odd-row", "dropout2d", "noise_shape", "grad"],
)
def test_export_with_a_symbolic_batch_dimension_equals_the_eager_op(op, spec):
    from jax import export

    shape = export.symbolic_shape(spec)
    key = jax.random.key(11)
    exported = export.export(jax.jit(op))(jax.ShapeDtypeStruct(shape, jnp.float32), key)
    rng = np.random.default_rng(0)
    for batch in (1, 5, 9):
        concrete = (batch, *(int(d) for d in shape[1:]))
        x = jnp.asarray(rng.standard_normal(concrete).astype(np.float32))
        got = np.asarray(exported.call(x, key))
        np.testing.assert_array_equal(got, np.asarray(op(x, key)))
    # and the exported program keeps dropping: not all kept, not all dropped
    assert 0 < np.count_nonzero(got) < got.size


@pytest.mark.parametrize("kept", [True, False], ids=["packed-kept", "regenerated"])
def test_gradients_are_the_forward_mask_whether_kept_or_regenerated(kept, monkeypatch):
    from dropkit_jax import keep

    monkeypatch.setattr(keep, "KEEP_PACKED_MAX", 1 << 22 if kept else 0)
    keys = jax.random.split(jax.random.key(9), 3)
    x = jnp.asarray(np.random.default_rng(6).standard_normal((3, 37, 5)).astype(np.float32))

    def loss(t, k):
        return (jnp.sin(dropkit.dropout(t, 0.4, rng=k)) ** 2).sum()

    def loss_noise(t, k):
        return dropkit.dropout(t, 0.4, rng=k, noise_shape=(37, 1)).sum()

    grads = jax.jit(jax.vmap(jax.grad(loss)))(x, keys)
    noise = jax.jit(jax.vmap(jax.grad(loss_noise)))(x, keys)
    for i in range(3):
        y = np.asarray(dropkit.dropout(np.asarray(x[i]), 0.4, rng=_key_of(keys[i])))
        want = np.where(y != 0, np.sin(2 * y) / 0.6, 0.0)
        np.testing.assert_allclose(grads[i], want, rtol=1e-5, atol=1e-6)
        kept_rows = np.asarray(
            dropkit.dropout(np.ones((37, 1), np.float32), 0.4, rng=_key_of(keys[i]))
        )
        np.testing.assert_array_equal(noise[i], np.broadcast_to(kept_rows, (37, 5)))
    jac = jax.jacfwd(lambda t: dropkit.dropout(t, 0.4, rng=keys[0]))(x[0, :, 0])
    mask = np.asarray(dropkit.dropout(np.ones(37, np.float32), 0.4, rng=_key_of(keys[0])))
    np.testing.assert_array_equal(jac, np.diag(mask))


_SHARDED = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec
import dropkit

assert len(jax.devices()) == 2
mesh = jax.make_mesh((2,), ("batch",))
x = jnp.asarray(np.random.default_rng(0).standard_normal((64, 40)).astype(np.float32))
sharded = jax.device_put(x, NamedSharding(mesh, PartitionSpec("batch")))
key = jax.random.key(3)
loss_of = lambda t, k: (jnp.sin(dropkit.dropout(t, 0.5, rng=k)) ** 2).sum()
step = jax.jit(jax.value_and_grad(loss_of))
loss, grad = step(sharded, key)
want_loss, want_grad = step(x, key)
assert len(grad.sharding.device_set) == 2
np.testing.assert_array_equal(np.asarray(grad), np.asarray(want_grad))
np.testing.assert_allclose(float(loss), float(want_loss), rtol=1e-6)
y = jax.jit(lambda t, k: dropkit.dropout(t, 0.5, rng=k))(sharded, key)
want = dropkit.dropout(np.asarray(x), 0.5, rng=3)  # key(3) is dropkit key 3
np.testing.assert_array_equal(np.asarray(y), want)
print("ok")
"""


def test_a_batch_sharded_over_two_devices_gets_the_one_device_mask_and_gradient():
    import os
    import subprocess
    import sys

    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", _SHARDED], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
