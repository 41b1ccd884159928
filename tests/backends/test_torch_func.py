"""torch.func transforms and forward-mode AD through dropkit's torch op and layers (issue 22).

Every transform is checked against an explicit-mask reference: the mask of
the call (``dropkit.dropout`` of ones in vanilla mode, with the same draw),
times the scale for dropout, times alpha dropout's ``a`` for the alpha family
(the linear part of its affine map). Each failed before: ``jvp``, ``jacfwd``
and ``forward_ad`` gave zero tangents (or raised deep inside torch).
Skipped, with the reason, where torch is not installed.
"""

import copy

import pytest
from dk_helpers import torch_or_skip

torch = torch_or_skip(module_level=True)

from dropkit_torch import nn as dnn  # noqa: E402
from torch.autograd import forward_ad  # noqa: E402
from torch.func import functional_call, grad, jacfwd, jacrev, jvp, vjp, vmap  # noqa: E402

import dropkit  # noqa: E402
from dropkit.alpha import alpha_coefficients, feature_noise_shape  # noqa: E402
from dropkit.channel import channel_noise_shape  # noqa: E402
from dropkit.structured import sample_noise_shape  # noqa: E402

pytestmark = pytest.mark.torch

P = 0.5
SEED = 7
TORCH_SEED = 11

#: name: (input shape, noise shape of the mask, whether the layer is of the alpha family)
LAYERS = {
    "Dropout": ((4, 6), lambda s: s, False),
    "Dropout1d": ((2, 3, 5), lambda s: channel_noise_shape(s, 1, 1), False),
    "Dropout2d": ((2, 3, 2, 2), lambda s: channel_noise_shape(s, 2, 1), False),
    "Dropout3d": ((2, 3, 2, 2, 2), lambda s: channel_noise_shape(s, 3, 1), False),
    "DropPath": ((4, 6), sample_noise_shape, False),
    "AlphaDropout": ((4, 6), lambda s: s, True),
    "FeatureAlphaDropout": ((2, 3, 5), lambda s: feature_noise_shape(s, 1), True),
}


def _rng(stream):
    """The layer's ``rng=``: its own stream (an int seed) or torch's generator."""
    return SEED if stream else None


def _reset():
    torch.manual_seed(TORCH_SEED)


def _linear_part(name, stream):
    """The explicit-mask reference ``t -> t * mask * factor`` of one call of layer ``name``."""
    shape, noise_of, alpha = LAYERS[name]
    noise = tuple(noise_of(shape))
    _reset()
    ones = torch.ones(shape)
    mask = dropkit.dropout(ones, P, rng=_rng(stream), noise_shape=noise, mode="vanilla")
    assert set(mask.unique().tolist()) == {0.0, 1.0}  # both kept and dropped units
    factor = torch.tensor(alpha_coefficients(P)[0] if alpha else 1 / (1 - P))
    return lambda t: (t * mask) * factor


def _layer(name, stream):
    _reset()  # (the transform runs the layer next: the same draw as the reference's)
    return getattr(dnn, name)(P, rng=_rng(stream))


def _forward_ad(f, x, t):
    with forward_ad.dual_level():
        return forward_ad.unpack_dual(f(forward_ad.make_dual(x, t))).tangent


CASES = [(name, stream) for name in LAYERS for stream in (True, False)]
IDS = [f"{name}-{'stream' if stream else 'torch_rng'}" for name, stream in CASES]


@pytest.mark.parametrize(("name", "stream"), CASES, ids=IDS)
def test_jvp_and_forward_ad_carry_the_tangent_through_the_mask(name, stream):
    shape = LAYERS[name][0]
    x, t = torch.randn(shape), torch.randn(shape)
    want = _linear_part(name, stream)(t)
    assert torch.equal(jvp(_layer(name, stream), (x,), (t,))[1], want)
    assert torch.equal(_forward_ad(_layer(name, stream), x, t), want)
    # the primal is the layer's output for that draw
    assert torch.equal(jvp(_layer(name, stream), (x,), (t,))[0], _layer(name, stream)(x))


@pytest.mark.parametrize(("name", "stream"), CASES, ids=IDS)
def test_grad_and_vjp_pull_the_cotangent_through_the_mask(name, stream):
    shape = LAYERS[name][0]
    x, w = torch.randn(shape), torch.randn(shape)
    want = _linear_part(name, stream)(w)
    layer = _layer(name, stream)
    assert torch.equal(grad(lambda z: (layer(z) * w).sum())(x), want)
    _, pull = vjp(_layer(name, stream), x)
    assert torch.equal(pull(w)[0], want)


@pytest.mark.parametrize(("name", "stream"), CASES, ids=IDS)
def test_jacfwd_and_jacrev_are_the_diagonal_of_mask_times_factor(name, stream):
    shape = LAYERS[name][0]
    x, n = torch.randn(shape), torch.Size(shape).numel()
    want = torch.diag(_linear_part(name, stream)(torch.ones(shape)).reshape(n))
    # jacfwd vmaps the forward: torch's generator needs randomness="same" (one draw)
    forward = jacfwd(_layer(name, stream), randomness="same" if not stream else "error")(x)
    assert torch.equal(forward.reshape(n, n), want)
    assert torch.equal(jacrev(_layer(name, stream))(x).reshape(n, n), want)


@pytest.mark.parametrize("name", ["Dropout", "DropPath", "AlphaDropout"])
def test_jvp_through_linear_dropout_linear(name):
    """The issue's model: Linear -> dropkit layer -> Linear gave a zero tangent."""
    torch.manual_seed(0)
    first, second = torch.nn.Linear(6, 6), torch.nn.Linear(6, 3)
    x, t = torch.randn(4, 6), torch.randn(4, 6)
    part = _linear_part(name, True)
    want = part(t @ first.weight.detach().T) @ second.weight.detach().T
    model = torch.nn.Sequential(first, getattr(dnn, name)(P, rng=SEED), second)
    with torch.no_grad():
        got = jvp(model, (x,), (t,))[1]
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert torch.count_nonzero(got) > 0


FUNCTIONS = {
    "dropout": lambda z: dropkit.dropout(z, P, rng=SEED),
    "noise_shape": lambda z: dropkit.dropout(z, P, rng=SEED, noise_shape=(4, 1)),
    "vanilla": lambda z: dropkit.dropout(z, P, rng=SEED, mode="vanilla"),
    "dropout1d": lambda z: dropkit.dropout1d(z[None], P, rng=SEED)[0],
    "inplace": lambda z: dropkit.dropout(z * 1, P, rng=SEED, inplace=True),
}


@pytest.mark.parametrize("kind", list(FUNCTIONS))
def test_the_functional_op_under_every_transform(kind):
    f = FUNCTIONS[kind]
    x, t = torch.randn(4, 6), torch.randn(4, 6)
    keep = f(torch.ones(4, 6))  # mask * scale of the draw
    assert 0 < torch.count_nonzero(keep) < keep.numel()
    want = t * keep
    assert torch.equal(jvp(f, (x,), (t,))[1], want)
    assert torch.equal(_forward_ad(f, x, t), want)
    assert torch.equal(grad(lambda z: (f(z) * t).sum())(x), want)
    assert torch.equal(vjp(f, x)[1](t)[0], want)
    diagonal = torch.diag(keep.reshape(24))
    assert torch.equal(jacfwd(f)(x).reshape(24, 24), diagonal)
    assert torch.equal(jacrev(f)(x).reshape(24, 24), diagonal)


def test_relu_dropout_forward_mode_gates_on_the_output_as_backward_does():
    f = lambda z: dropkit.relu_dropout(z, P, rng=SEED)  # noqa: E731
    x = torch.tensor([[-1.0, 2.0, 0.0, 3.0, -4.0, 5.0], [1.0, 1.0, 1.0, -1.0, 2.0, float("nan")]])
    t = torch.randn(2, 6)
    keep = dropkit.dropout(torch.ones(2, 6), P, rng=SEED)  # the draw's mask * scale
    passed = (keep != 0) & ((x > 0) | x.isnan())
    want = torch.where(passed, t * 2, torch.zeros(()))
    assert torch.equal(jvp(f, (x,), (t,))[1], want)
    assert torch.equal(_forward_ad(f, x, t), want)
    assert torch.equal(vjp(f, x)[1](t)[0], want)


def test_nested_transforms_and_second_derivatives():
    f = FUNCTIONS["dropout"]
    xs, ts = torch.randn(3, 4, 6), torch.randn(3, 4, 6)
    keep = f(torch.ones(4, 6))
    # vmap over jvp, and jvp over vmap (the batching rule's forward-mode case)
    assert torch.equal(vmap(lambda x, t: jvp(f, (x,), (t,))[1])(xs, ts), ts * keep)
    assert torch.equal(jvp(vmap(f), (xs,), (ts,))[1], ts * keep)
    # forward_ad over vmap, with and without grad below
    assert torch.equal(_forward_ad(vmap(f), xs, ts), ts * keep)
    leaf = xs.clone().requires_grad_()
    assert torch.equal(_forward_ad(vmap(f), leaf, ts), ts * keep)
    # f is linear: jvp of grad, hessian and double backward see the squared mask
    g = lambda z: (f(z) ** 2).sum()  # noqa: E731
    assert torch.equal(jvp(grad(g), (xs[0],), (ts[0],))[1], 2 * keep**2 * ts[0])
    h = torch.func.hessian(g)(xs[0]).reshape(24, 24)
    assert torch.equal(h, torch.diag(2 * keep.reshape(24) ** 2))
    z = xs[0].clone().requires_grad_()
    (dz,) = torch.autograd.grad(g(z), z, create_graph=True)
    assert torch.equal(torch.autograd.grad(dz.sum(), z)[0], 2 * keep**2)


def test_forward_ad_of_a_tensor_without_tangent_gives_no_tangent():
    with forward_ad.dual_level():
        y = dropkit.dropout(torch.ones(3, 4), P, rng=SEED)
        assert forward_ad.unpack_dual(y).tangent is None
        assert torch.equal(y, dropkit.dropout(torch.ones(3, 4), P, rng=SEED))


# Per-sample gradients (DP-SGD): vmap(grad(functional_call(...))) over x[None].


def _model(layer):
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(5, 6), layer, torch.nn.Linear(6, 1))


def _per_sample_loop(model, xs, before_each):
    """Each sample's gradient by plain autograd, ``before_each()`` fixing its draw."""
    out = []
    for x in xs:
        before_each()
        loss = model(x[None]).sum()
        out.append(torch.autograd.grad(loss, list(model.parameters())))
    return [torch.stack(g) for g in zip(*out, strict=True)]


def _per_sample_vmap(model, xs, randomness):
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, x):
        return functional_call(model, p, (x[None],)).sum()

    grads = vmap(grad(loss), in_dims=(None, 0), randomness=randomness)(params, xs)
    return [grads[k] for k, _ in model.named_parameters()]


@pytest.mark.parametrize("name", ["Dropout", "DropPath", "AlphaDropout"])
def test_per_sample_gradients_with_a_stream_layer_give_each_sample_the_draw(name):
    """One draw for the vmapped call (the stream at its position): every sample's mask."""
    xs = torch.randn(4, 5)
    layer = getattr(dnn, name)(P, rng=SEED)
    model = _model(layer)
    reference = copy.deepcopy(model)
    got = _per_sample_vmap(model, xs, "error")
    # every sample at the stream's first draw
    want = _per_sample_loop(reference, xs, lambda: reference[1].reset_parameters())
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["Dropout1d", "FeatureAlphaDropout"])
def test_per_sample_gradients_of_channel_layers(name):
    """Samples of shape (C, L) as (1, C, L): whole channels dropped in each."""
    torch.manual_seed(3)
    model = torch.nn.Sequential(
        torch.nn.Conv1d(2, 6, 3), getattr(dnn, name)(P, rng=SEED), torch.nn.Flatten(0)
    )
    reference = copy.deepcopy(model)
    xs = torch.randn(4, 2, 7)
    got = _per_sample_vmap(model, xs, "error")
    want = _per_sample_loop(reference, xs, lambda: reference[1].reset_parameters())
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-7)
    assert torch.count_nonzero(got[0][0]) < got[0][0].numel()  # channels were dropped


def test_per_sample_gradients_with_torch_rng_follow_vmap_randomness():
    model = _model(dnn.Dropout(P))
    xs = torch.randn(4, 5)
    with pytest.raises(RuntimeError, match="randomness"):  # torch's rule for random ops
        _per_sample_vmap(model, xs, "error")
    # "same": one draw from torch's generator, the eager draw of each sample
    _reset()
    same = _per_sample_vmap(model, xs, "same")
    want = _per_sample_loop(model, xs, _reset)
    for g, w in zip(same, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-7)
    # "different": a draw per sample, reproducible under torch.manual_seed
    _reset()
    different = _per_sample_vmap(model, xs, "different")
    _reset()
    again = _per_sample_vmap(model, xs, "different")
    for g, w in zip(different, again, strict=True):
        assert torch.equal(g, w)
    hidden = different[2][:, 0]  # d loss / d second.weight: the hidden units, masked
    masks = [tuple((row != 0).tolist()) for row in hidden]
    assert len(set(masks)) > 1


def test_vmap_with_rng_given_applies_the_call_to_each_sample():
    """An explicit rng is a deterministic function: vmap(f)(xs)[i] == f(xs[i])."""
    xs = torch.randn(5, 3, 4)
    for randomness in ("error", "same", "different"):
        out = vmap(lambda t: dropkit.dropout(t, P, rng=SEED), randomness=randomness)(xs)
        for i in range(5):
            assert torch.equal(out[i], dropkit.dropout(xs[i], P, rng=SEED))
    # rng=None follows torch's randomness flag: "same" is the eager draw for every sample
    _reset()
    same = vmap(lambda t: dropkit.dropout(t, P), randomness="same")(xs)
    for i in range(5):
        _reset()
        assert torch.equal(same[i], dropkit.dropout(xs[i], P))


def test_the_bare_operator_refuses_forward_mode_instead_of_a_zero_tangent():
    seed = torch.tensor([SEED, 0, 0, 0])
    x, t = torch.randn(4), torch.ones(4)

    def bare(z):
        return torch.ops.dropkit.dropout(z, seed, [4], 2**31, 2.0, False)

    with pytest.raises(RuntimeError, match=r"dropkit: the bare operator.*dropkit\.dropout"):
        jvp(bare, (x,), (t,))
    with pytest.raises(RuntimeError, match=r"dropkit: the bare operator.*dropkit\.dropout"):
        _forward_ad(bare, x, t)
    assert torch.equal(bare(x), dropkit.dropout(x, P, rng=SEED))  # outside forward mode: fine
