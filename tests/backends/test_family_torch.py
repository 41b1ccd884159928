"""The dropout family on torch tensors: the same noise as NumPy, autograd, compile, modules.

Skipped, with the reason, where torch is not installed.
"""

import os
import shutil

import numpy as np
import pytest
from dk_helpers import torch_or_skip

torch = torch_or_skip(module_level=True)

import dropkit_torch.functional  # noqa: E402, F401  (registers the ops)
from dropkit_torch import nn as dnn  # noqa: E402

import dropkit  # noqa: E402

HAS_CXX = any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++"))
needs_inductor = pytest.mark.skipif(
    not HAS_CXX, reason="no C++ compiler: torch.compile's default backend (Inductor) needs one"
)

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
MODULES = {
    "gaussian_dropout": lambda rng: dnn.GaussianDropout(0.3, rng=rng),
    "gaussian_noise": lambda rng: dnn.GaussianNoise(0.3, rng=rng),
    "alpha_dropout": lambda rng: dnn.AlphaDropout(0.3, rng=rng),
    "feature_alpha_dropout": lambda rng: dnn.FeatureAlphaDropout(0.3, rng=rng),
    "drop_path": lambda rng: dnn.DropPath(0.3, rng=rng),
    "dropblock2d": lambda rng: dnn.DropBlock2d(0.3, block_size=3, rng=rng),
}


def _x(name, dtype=torch.float32):
    shape = OPS[name][1]
    a = np.random.default_rng(3).standard_normal(shape)
    return torch.from_numpy(a).to(dtype)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_output_as_numpy_and_autograd_equals_the_backward_op(name, dtype):
    op, _ = OPS[name]
    x = _x(name, dtype).requires_grad_()
    ref = op(x.detach().numpy(), rng=11)
    y = op(x, rng=11)
    np.testing.assert_array_equal(y.detach().numpy(), ref)
    g = torch.linspace(-1, 1, x.numel(), dtype=dtype).reshape(x.shape)
    y.backward(g)
    want = BACKWARD[name](g.numpy(), rng=11)
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(BACKWARD[name](g, rng=11).numpy(), want)


@pytest.mark.parametrize("name", sorted(OPS))
def test_gradcheck_in_float64(name):
    op, _ = OPS[name]
    x = _x(name, torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: op(t, rng=4), (x,))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_follow_their_stream_train_eval_and_state_dict(name):
    op, _ = OPS[name]
    x = _x(name)
    layer = MODULES[name](21)
    gen = dropkit.Generator(21)
    for _ in range(2):
        np.testing.assert_array_equal(layer(x).numpy(), op(x.numpy(), rng=gen))
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    assert int(state["rng_counter"]) == 2
    twin = MODULES[name](0)
    twin.load_state_dict(state)
    assert torch.equal(twin(x), layer(x))
    layer.eval()
    assert layer(x) is x
    seq = torch.nn.Sequential(torch.nn.Identity(), MODULES[name](None))
    torch.manual_seed(3)
    a = seq(x)
    torch.manual_seed(3)
    assert torch.equal(seq(x), a)  # rng=None follows torch's generator


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_compile_in_one_graph_with_the_eager_result(name):
    x = _x(name).requires_grad_()
    layer, twin = MODULES[name](5), MODULES[name](5)
    eager = twin(x)
    eager.square().sum().backward()
    want_grad = x.grad.clone()
    x.grad = None
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    y = compiled(x)
    y.square().sum().backward()
    assert torch.equal(y, eager)
    assert torch.equal(x.grad, want_grad)
    assert torch.equal(compiled(x), twin(x))  # the buffers advance inside the graph


@needs_inductor
def test_family_ops_stay_portable_under_inductor():
    def f(x, img):
        return (
            dropkit.gaussian_dropout(x, 0.3, rng=2),
            dropkit.alpha_dropout(x, 0.3, rng=3),
            dropkit.dropblock2d(img, 0.3, block_size=3, rng=4),
        )

    x = _x("gaussian_dropout")
    img = _x("dropblock2d")
    torch._dynamo.reset()
    a, b, c = torch.compile(f, fullgraph=True)(x, img)
    xn, imgn = x.numpy(), img.numpy()
    # Inductor may fuse the float arithmetic differently: the Gaussian noise within ULPs
    np.testing.assert_allclose(a.numpy(), dropkit.gaussian_dropout(xn, 0.3, rng=2), rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), dropkit.alpha_dropout(xn, 0.3, rng=3), rtol=1e-6)
    np.testing.assert_array_equal(
        c.numpy() == 0, dropkit.dropblock2d(imgn, 0.3, block_size=3, rng=4) == 0
    )


def test_bad_module_arguments_are_named():
    with pytest.raises(ValueError, match="needs p < 1"):
        dnn.GaussianDropout(1.0)
    with pytest.raises(ValueError, match="stddev must be a finite number"):
        dnn.GaussianNoise(-1.0)
    with pytest.raises(ValueError, match="block_size must be a positive integer"):
        dnn.DropBlock2d(0.1, block_size=0)
    with pytest.raises(ValueError, match="channel_axis must be 1"):
        dnn.DropBlock2d(0.1, block_size=3, channel_axis=2)
    with pytest.raises(ValueError, match="channel_axis must name a non-batch axis"):
        dnn.FeatureAlphaDropout(0.1, channel_axis=0)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        dnn.AlphaDropout(1.5)


def test_reprs_say_what_the_layer_does():
    assert repr(dnn.AlphaDropout(0.2)) == "AlphaDropout(p=0.2, inplace=False)"
    assert repr(dnn.GaussianNoise(0.5, rng=1)) == (
        "GaussianNoise(stddev=0.5, rng=stream(key=1, counter=0))"
    )
    assert repr(dnn.DropBlock2d(0.1, block_size=5)) == (
        "DropBlock2d(p=0.1, mode='inverted', block_size=5, channel_axis=1)"
    )
