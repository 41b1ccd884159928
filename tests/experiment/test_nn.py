"""The network's explicit backward against finite differences; optimiser and schedule."""

import array_api_compat.numpy as npx
import numpy as np
import pytest
from dk_helpers import needs_float64 as _needs_float64

import dropkit
from dropkit import Generator
from dropkit.experiment.nn import MLP, softmax_cross_entropy, standard_normal
from dropkit.experiment.optim import SGD, StepSchedule
from dropkit.testing.strategies import to_numpy

# ops on plain arrays go to the backend under test (dropkit.testing's plugin)
pytestmark = pytest.mark.usefixtures("dropkit_use_backend")


@pytest.mark.parametrize(
    ("p_hidden", "p_input", "mode"),
    [(0.0, 0.0, "inverted"), (0.4, 0.2, "inverted"), (0.5, 0.0, "vanilla")],
)
def test_mlp_gradients_match_finite_differences(dropkit_backend, p_hidden, p_input, mode):
    _needs_float64(dropkit_backend)
    xp = dropkit_backend.xp
    net = MLP(
        [4, 5, 4, 3],
        backend=dropkit_backend,
        rng=Generator(1),
        p_hidden=p_hidden,
        p_input=p_input,
        mode=mode,
        dtype="float64",
    )
    for i in range(1, len(net.params), 2):  # non-zero biases exercise their gradient
        net.params[i] = net.params[i] + 0.1
    rs = np.random.default_rng(0)
    x = xp.asarray(rs.normal(size=(8, 4)))
    y = xp.asarray(rs.integers(0, 3, 8))
    states = [layer.generator.state for layer in net.dropouts]

    def loss_at(params):
        net.params = list(params)
        for layer, state in zip(net.dropouts, states, strict=True):
            layer.generator = Generator.from_state(state)  # the same masks every time
        return softmax_cross_entropy(xp, net.forward(x, training=True), y)

    params = [xp.asarray(p, copy=True) for p in net.params]
    _, dlogits = loss_at(params)
    grads = [to_numpy(g) for g in net.backward(dlogits)]
    # Directional derivatives along random Gaussian directions (as torch.autograd.gradcheck's
    # fast mode): a wrong entry e of a gradient changes <grad, d> by e * d_i, which is zero
    # with probability 0; four directions per parameter, one central difference each.
    eps = 1e-6
    for k, p in enumerate(params):
        base = to_numpy(p)
        for d in rs.standard_normal((4, *base.shape)):
            sides = []
            for sign in (1, -1):
                trial = list(params)
                trial[k] = xp.asarray(base + sign * eps * d)
                sides.append(float(loss_at(trial)[0]))
            numeric = (sides[0] - sides[1]) / (2 * eps)
            assert float(np.sum(grads[k] * d)) == pytest.approx(numeric, rel=1e-5, abs=1e-8), k


def test_softmax_cross_entropy_is_stable_and_correct():
    logits = np.array([[1e4, 0.0, -1e4], [1.0, 2.0, 3.0]])
    loss, grad = softmax_cross_entropy(npx, logits, np.array([0, 2]))
    expected_row2 = -np.log(np.exp(3) / np.exp([1, 2, 3]).sum())
    assert np.isfinite(loss)
    assert loss == pytest.approx(expected_row2 / 2)
    soft = np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum()
    np.testing.assert_allclose(grad[1], (soft - [0, 0, 1]) / 2)
    np.testing.assert_allclose(grad[0], 0, atol=1e-300)


def test_he_normal_is_portable_and_standard():
    z_np = standard_normal(dropkit.get_backend("numpy"), Generator(4), (50_000,), np.float64)
    strict = dropkit.get_backend("array_api_strict")
    z_st = standard_normal(strict, Generator(4), (50_000,), strict.xp.float64)
    np.testing.assert_allclose(np.from_dlpack(z_st), z_np, rtol=1e-12)
    # mean within 6 standard errors, variance within 6 of its standard errors (sd ~ sqrt(2/n))
    assert abs(z_np.mean()) < 6 / np.sqrt(50_000)
    assert abs(z_np.var() - 1) < 6 * np.sqrt(2 / 50_000)


def test_weights_do_not_depend_on_dropout():
    b = dropkit.get_backend("numpy")
    a = MLP([4, 8, 2], backend=b, rng=Generator(3), p_hidden=0.0)
    c = MLP([4, 8, 2], backend=b, rng=Generator(3), p_hidden=0.5, p_input=0.2)
    for pa, pc in zip(a.params, c.params, strict=True):
        np.testing.assert_array_equal(pa, pc)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_matches_the_reference_formula(nesterov):
    w, b = np.array([1.0, -2.0]), np.array([0.5])
    params = [w, b]
    opt = SGD(npx, params, momentum=0.9, nesterov=nesterov, weight_decay=0.1, decay=[True, False])
    v_w, v_b = np.zeros(2), np.zeros(1)
    ref_w, ref_b = w.copy(), b.copy()
    for step in range(3):
        gw, gb = np.array([0.3, step * 0.1]), np.array([-0.2])
        opt.step([gw, gb], lr=0.5)
        gw_d = gw + 0.1 * ref_w
        v_w, v_b = 0.9 * v_w + gw_d, 0.9 * v_b + gb
        ref_w = ref_w - 0.5 * (gw_d + 0.9 * v_w if nesterov else v_w)
        ref_b = ref_b - 0.5 * (gb + 0.9 * v_b if nesterov else v_b)
    np.testing.assert_allclose(params[0], ref_w)
    np.testing.assert_allclose(params[1], ref_b)


def test_optimiser_rejects_bad_settings():
    with pytest.raises(ValueError, match="nesterov momentum needs momentum > 0"):
        SGD(npx, [], nesterov=True)
    with pytest.raises(ValueError, match="must be >= 0"):
        SGD(npx, [], momentum=-1)


def test_article_schedule():
    s = StepSchedule(1e-3, every=50, times=4)
    assert [s.lr(e) for e in (0, 50, 100, 150, 200, 250, 299)] == [
        1e-3,
        5e-4,
        2.5e-4,
        1.25e-4,
        6.25e-5,
        6.25e-5,
        6.25e-5,
    ]
    assert StepSchedule(0.1).lr(1000) == 0.1
