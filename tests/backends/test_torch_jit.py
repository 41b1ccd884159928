"""TorchScript: ``torch.jit.trace`` records dropkit's op in training mode; ``jit.script`` refuses.

The trace records the registered operator ``dropkit::dropout_differentiable``
(not a Python Function), the draw from torch's generator, and the noise shape
relative to the input (so the trace follows the shape it is called with).
Each test failed before issue 22: trace's sanity check failed (or raised an
internal assert), the traced graph could not be saved, a trace made with one
batch size reused its mask shape, and script failed on a type annotation.
Skipped, with the reason, where torch is not installed.
"""

import io
import warnings

import numpy as np
import pytest
from dk_helpers import torch_or_skip

torch = torch_or_skip(module_level=True)

from dropkit_torch import nn as dnn  # noqa: E402

import dropkit  # noqa: E402

pytestmark = [
    pytest.mark.torch,
    # torch 2.13 deprecates TorchScript; the trace of a random op warns as for nn.Dropout
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
]

P = 0.5
#: layer name: the example input's shape (batch first)
SHAPES = {
    "Dropout": (3, 6),
    "Dropout1d": (3, 6, 5),
    "Dropout2d": (3, 6, 2, 2),
    "Dropout3d": (3, 6, 2, 2, 2),
    "DropPath": (3, 6),
    "AlphaDropout": (3, 6),
    "FeatureAlphaDropout": (3, 6, 5),
}


def _trace(f, x, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(f, (x,), **kwargs)


def _at(seed, f, *args):
    torch.manual_seed(seed)
    return f(*args)


@pytest.mark.parametrize("name", list(SHAPES))
def test_trace_of_a_train_mode_model_draws_like_the_eager_model(name):
    shape = SHAPES[name]
    layer = getattr(dnn, name)(P)
    x = torch.randn(shape, requires_grad=True)
    traced = _trace(layer, x)  # trace's sanity check (check_trace=True) passes
    for seed in (0, 1):
        assert torch.equal(_at(seed, traced, x), _at(seed, layer, x))
    a = _at(3, traced, x)  # a new draw from torch's generator on every call
    b = traced(x)
    assert not torch.equal(a, b)
    assert torch.equal(b, _at(3, lambda: (layer(x), layer(x))[1]))
    # the trace follows the shape it is called with (the example had a batch of 3)
    wide = torch.randn((7, *shape[1:]))
    assert torch.equal(_at(2, traced, wide), _at(2, layer, wide))
    single = torch.randn((1, *shape[1:]))
    assert torch.equal(_at(2, traced, single), _at(2, layer, single))


@pytest.mark.parametrize("name", ["Dropout", "Dropout2d", "AlphaDropout"])
def test_the_traced_model_differentiates_and_saves(name):
    shape = SHAPES[name]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Identity(), getattr(dnn, name)(P)).train()
    x = torch.randn(shape)
    traced = _trace(model, x)  # traced without grad: the same graph records backward
    leaf = x.clone().requires_grad_()
    y = _at(5, traced, leaf)
    y.backward(torch.ones(shape))
    eager_leaf = x.clone().requires_grad_()
    _at(5, model, eager_leaf).backward(torch.ones(shape))
    assert torch.equal(leaf.grad, eager_leaf.grad)
    assert 0 < torch.count_nonzero(leaf.grad) < leaf.grad.numel()
    assert "dropkit::dropout_differentiable" in str(traced.inlined_graph)
    assert "PythonOp" not in str(traced.inlined_graph)  # no Python Function: the graph saves
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    assert torch.equal(_at(6, loaded, x), _at(6, model, x))


def test_trace_of_the_functional_op_with_an_int_seed_is_that_seed_on_any_shape():
    f = lambda z: dropkit.dropout(z, P, rng=9)  # noqa: E731
    traced = _trace(f, torch.randn(1, 8))
    for shape in [(1, 8), (4, 8), (2, 3)]:
        x = torch.randn(shape)
        assert torch.equal(traced(x), f(x))
        assert torch.equal(traced(x), traced(x))  # an int seed: the same draw every call
    rows = traced(torch.ones(4, 8))
    assert not torch.equal(rows[0], rows[1])  # not the (1, 8) example's mask broadcast


def test_trace_of_eval_mode_is_the_identity():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), dnn.Dropout(P)).eval()
    x = torch.randn(2, 4)
    traced = _trace(model, x)
    assert torch.equal(traced(x), model[0](x))


def test_trace_of_a_stream_layer_advances_its_stream():
    """The stream's counter advances in place, so the trace records the advance."""
    layer = dnn.Dropout(P, rng=7)
    x = torch.ones(4, 6)
    traced = _trace(layer, x, check_trace=False)
    first, second = traced(x), traced(x)
    want = [dropkit.dropout(x, P, rng=dropkit.Generator(7, c)) for c in (1, 2)]
    assert torch.equal(first, want[0]) and torch.equal(second, want[1])


@pytest.mark.parametrize(
    "rng",
    [dropkit.Generator(3), np.random.default_rng(3), torch.Generator()],
    ids=["dropkit.Generator", "numpy.Generator", "torch.Generator"],
)
def test_python_state_rngs_are_refused_under_trace(rng):
    f = lambda z: dropkit.dropout(z, P, rng=rng)  # noqa: E731
    with pytest.raises(RuntimeError, match=r"dropkit: rng=.*torch\.jit\.trace.*torch\.compile"):
        _trace(f, torch.randn(2, 3))
    assert f(torch.ones(2, 3)).shape == (2, 3)  # outside a trace the same rng works


@pytest.mark.parametrize("name", [*SHAPES, "GaussianDropout", "DropBlock2d"])
def test_script_is_refused_with_what_to_use_instead(name):
    kwargs = {"block_size": 3} if name == "DropBlock2d" else {}
    layer = getattr(dnn, name)(0.2, **kwargs)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), layer)
    pattern = rf"dropkit_torch\.nn\.{name} cannot be compiled by torch\.jit\.script.*torch\.compile"
    for target in (layer, model):
        with pytest.raises(RuntimeError, match=pattern):
            torch.jit.script(target)


def test_trace_of_in_place_dropout_follows_the_shape_too():
    f = lambda z: dropkit.dropout(z * 1, P, rng=4, inplace=True)  # noqa: E731
    traced = _trace(f, torch.randn(1, 8))
    for shape in [(1, 8), (4, 8)]:
        x = torch.randn(shape)
        assert torch.equal(traced(x), dropkit.dropout(x, P, rng=4))
