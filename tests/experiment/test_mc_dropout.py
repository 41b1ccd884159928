"""Monte Carlo dropout: T masks in one vectorised draw; mean and variance over the passes."""

import numpy as np
import pytest
from dk_helpers import needs_float64 as _needs_float64

import dropkit
from dropkit import Generator
from dropkit.experiment.nn import MLP
from dropkit.testing.strategies import to_numpy

# ops on plain arrays go to the backend under test (dropkit.testing's plugin)
pytestmark = pytest.mark.usefixtures("dropkit_use_backend")


def _net(dropkit_backend, p_hidden=0.5, p_input=0.2):
    return MLP(
        [6, 12, 8, 3],
        backend=dropkit_backend,
        rng=Generator(4),
        p_hidden=p_hidden,
        p_input=p_input,
        dtype="float64",
    )


def test_vectorised_passes_equal_an_explicit_loop(dropkit_backend):
    _needs_float64(dropkit_backend)
    xp = dropkit_backend.xp
    net = _net(dropkit_backend)
    x_np = np.random.default_rng(0).standard_normal((5, 6))
    x = xp.asarray(x_np)
    T = 7
    logits = to_numpy(dropkit.mc_dropout_forward(net, x, samples=T, rng=11))
    assert logits.shape == (T, 5, 3)
    # The same passes one by one, each with slice t of every layer's (T, N, width) draw.
    streams = Generator(11).spawn(3)
    masks = [
        to_numpy(dropkit.dropout_mask((T, 5, w), p, rng=s, backend="numpy"))
        for w, p, s in zip((6, 12, 8), (0.2, 0.5, 0.5), streams, strict=True)
    ]
    params = [to_numpy(p) for p in net.params]
    for t in range(T):
        h = np.where(masks[0][t], x_np / 0.8, 0)
        for i in range(2):
            z = h @ params[2 * i] + params[2 * i + 1]
            h = np.where(masks[i + 1][t] & (z > 0), z / 0.5, 0)
        np.testing.assert_allclose(logits[t], h @ params[4] + params[5], rtol=1e-12)
    # the passes differ from one another
    assert not np.allclose(logits[0], logits[1])


def test_mean_and_variance(dropkit_backend):
    _needs_float64(dropkit_backend)
    xp = dropkit_backend.xp
    net = _net(dropkit_backend)
    x = xp.asarray(np.random.default_rng(1).standard_normal((4, 6)))
    mean, var = dropkit.mc_dropout_predict(net, x, samples=20, rng=3)
    probs = to_numpy(dropkit.mc_dropout_forward(net, x, samples=20, rng=3))
    e = np.exp(probs - probs.max(axis=-1, keepdims=True))
    probs = e / e.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(to_numpy(mean), probs.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(var), probs.var(axis=0), rtol=1e-10, atol=1e-15)
    assert np.all(to_numpy(var) > 0)


def test_without_dropout_every_pass_is_the_deterministic_one(dropkit_backend):
    _needs_float64(dropkit_backend)
    xp = dropkit_backend.xp
    net = _net(dropkit_backend, p_hidden=0.0, p_input=0.0)
    x = xp.asarray(np.random.default_rng(2).standard_normal((4, 6)))
    mean, var = dropkit.mc_dropout_predict(net, x, samples=5, output="logits")
    np.testing.assert_allclose(to_numpy(mean), to_numpy(net.forward(x, training=False)), rtol=1e-12)
    assert np.all(to_numpy(var) < 1e-20)


def test_network_generators_are_untouched_and_bad_arguments(dropkit_backend):
    net = _net(dropkit_backend)
    before = [layer.generator.state for layer in net.dropouts]
    x = dropkit_backend.xp.asarray(np.ones((2, 6)))
    dropkit.mc_dropout_predict(net, x, samples=3, rng=0)
    assert [layer.generator.state for layer in net.dropouts] == before
    with pytest.raises(ValueError, match="samples must be a positive int, got 0"):
        dropkit.mc_dropout_predict(net, x, samples=0)
    with pytest.raises(ValueError, match="output must be"):
        dropkit.mc_dropout_predict(net, x, output="entropy")


def test_any_model_callable_and_the_nets_public_method():
    """The library takes any callable (xs, rng) -> logits; the MLP's is its mc_forward."""
    net = _net(dropkit.get_backend("numpy"))
    x = np.random.default_rng(3).standard_normal((5, 6))
    by_net = dropkit.mc_dropout_forward(net, x, samples=4, rng=2)
    by_method = dropkit.mc_dropout_forward(net.mc_forward, x, samples=4, rng=2)
    np.testing.assert_array_equal(by_net, by_method)
    seen = []

    def model(xs, rng):  # a model the library knows nothing about
        seen.append((xs.shape, type(rng)))
        return dropkit.dropout(xs, 0.5, rng=rng) @ np.ones((6, 2))

    out = dropkit.mc_dropout_forward(model, x, samples=3, rng=7)
    assert seen == [((3, 5, 6), Generator)]
    masks = to_numpy(dropkit.dropout_mask((3, 5, 6), 0.5, rng=Generator(7)))
    np.testing.assert_allclose(out, np.where(masks, 2 * x, 0) @ np.ones((6, 2)), rtol=1e-12)
    mean, var = dropkit.mc_dropout_predict(model, x, samples=3, rng=7, output="logits")
    np.testing.assert_allclose(var, out.var(axis=0), rtol=1e-12)
    np.testing.assert_allclose(mean, out.mean(axis=0), rtol=1e-12)


def test_the_library_reads_no_private_attribute_of_the_model():
    """A net that only lets its public attributes be read still works."""
    net = _net(dropkit.get_backend("numpy"))

    class PublicOnly:
        def __getattr__(self, name):
            if name.startswith("_"):
                raise AssertionError(f"the library read the private attribute {name}")
            return getattr(net, name)

    x = np.ones((2, 6))
    np.testing.assert_array_equal(
        dropkit.mc_dropout_forward(PublicOnly(), x, samples=3, rng=1),
        dropkit.mc_dropout_forward(net, x, samples=3, rng=1),
    )
