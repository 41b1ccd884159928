"""Where the key comes from on torch: torch's generator, checkpointing, explicit streams."""

import numpy as np
import pytest
from dk_helpers import torch_or_skip

torch = torch_or_skip(module_level=True)

from dropkit_torch import nn as dnn  # noqa: E402
from dropkit_torch.keys import draw_words  # noqa: E402
from torch.utils.checkpoint import checkpoint  # noqa: E402

import dropkit  # noqa: E402


def _key_after(seed):
    torch.manual_seed(seed)
    lo, hi = draw_words(torch.device("cpu")).tolist()
    return lo | (hi << 32)


def test_rng_none_follows_manual_seed_and_the_documented_mapping():
    x = torch.randn(40, 30)
    torch.manual_seed(123)
    a = dropkit.dropout(x, 0.5)
    torch.manual_seed(123)
    b = dropkit.dropout(x, 0.5)
    c = dropkit.dropout(x, 0.5)  # the generator moved on: another mask
    assert torch.equal(a, b) and not torch.equal(a, c)
    # key = w0 + 2**32 w1 from torch.randint(0, 2**32, (2,)), counter 0: portable
    want = dropkit.dropout(x.numpy(), 0.5, rng=dropkit.Generator(_key_after(123)))
    np.testing.assert_array_equal(a.numpy(), want)


def test_a_torch_generator_is_accepted_and_mapped_the_same_way():
    x = torch.randn(25, 9)
    g = torch.Generator().manual_seed(7)
    y = dropkit.dropout(x, 0.3, rng=g)
    lo, hi = torch.randint(
        0, 2**32, (2,), dtype=torch.int64, generator=torch.Generator().manual_seed(7)
    ).tolist()
    np.testing.assert_array_equal(y.numpy(), dropkit.dropout(x.numpy(), 0.3, rng=lo | (hi << 32)))
    layer = dnn.Dropout(0.3, rng=torch.Generator().manual_seed(7))
    assert torch.equal(layer(x), y)
    assert "rng=torch.Generator" in repr(layer)


def test_fork_rng_leaves_the_outer_stream_alone():
    x = torch.randn(10, 10)
    torch.manual_seed(0)
    with torch.random.fork_rng():
        dropkit.dropout(x, 0.5)
    after_fork = dropkit.dropout(x, 0.5)
    torch.manual_seed(0)
    assert torch.equal(dropkit.dropout(x, 0.5), after_fork)


def _net(rng=None):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(12, 32),
        torch.nn.ReLU(),
        dnn.Dropout(0.5, rng=rng),
        torch.nn.Linear(32, 32),
        torch.nn.ReLU(),
        dnn.Dropout(0.4, rng=rng),
        torch.nn.Linear(32, 3),
    )


@pytest.mark.parametrize("reentrant", [False, True])
def test_activation_checkpointing_gives_the_same_gradients(reentrant):
    x = torch.randn(16, 12, requires_grad=True)
    net = _net()
    torch.manual_seed(42)
    net(x).square().sum().backward()
    want = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    torch.manual_seed(42)
    checkpoint(net, x, use_reentrant=reentrant).square().sum().backward()
    for p, w in zip(net.parameters(), want, strict=True):
        assert torch.equal(p.grad, w)


@pytest.mark.parametrize("reentrant", [False, True])
def test_an_explicit_stream_under_checkpointing_is_refused_not_wrong(reentrant):
    x = torch.randn(16, 12, requires_grad=True)
    net = _net(rng=5)
    y = checkpoint(net, x, use_reentrant=reentrant).square().sum()
    with pytest.raises(RuntimeError, match="explicit rng stream was run during a backward pass"):
        y.backward()


def test_a_dropkit_generator_inside_compile_is_refused():
    gen = dropkit.Generator(3)

    def f(x):
        return dropkit.dropout(x, 0.5, rng=gen)

    torch._dynamo.reset()
    with pytest.raises(Exception, match=r"dropkit\.Generator is Python state"):
        torch.compile(f, fullgraph=True, backend="aot_eager")(torch.ones(8))
    assert gen.counter == 0  # nothing silently drawn


def test_an_explicit_stream_advances_inside_compiled_code():
    layer = dnn.Dropout(0.5, rng=9)
    torch._dynamo.reset()
    f = torch.compile(layer, fullgraph=True, backend="aot_eager")
    x = torch.ones(64)
    outs = [f(x) for _ in range(3)]
    assert int(layer.rng_counter) == 3
    for k, y in enumerate(outs):
        want = dropkit.dropout(np.ones(64, np.float32), 0.5, rng=dropkit.Generator(9, k))
        np.testing.assert_array_equal(y.numpy(), want)


@pytest.mark.parametrize("reentrant", [False, True])
@pytest.mark.parametrize(
    "rng",
    [lambda: torch.Generator().manual_seed(0), lambda: dropkit.Generator(3)],
    ids=["torch.Generator", "dropkit.Generator"],
)
def test_python_side_generators_under_checkpointing_are_refused_not_wrong(rng, reentrant):
    x = torch.randn(32, requires_grad=True)
    gen = rng()
    y = checkpoint(lambda t: dropkit.dropout(t * 1.0, 0.5, rng=gen), x, use_reentrant=reentrant)
    with pytest.raises(RuntimeError, match=r"was drawn from during a backward pass"):
        y.sum().backward()
    layer = dnn.Dropout(0.5, rng=torch.Generator().manual_seed(0))
    y = checkpoint(layer, x, use_reentrant=reentrant)
    with pytest.raises(RuntimeError, match=r"during a backward pass"):
        y.sum().backward()


def test_an_int_seed_under_checkpointing_is_exact():
    x = torch.randn(32, requires_grad=True)
    y = checkpoint(lambda t: dropkit.dropout(t * 1.0, 0.5, rng=7), x, use_reentrant=False)
    y.sum().backward()
    assert torch.equal(x.grad, dropkit.dropout(torch.ones(32), 0.5, rng=7))


def test_an_explicit_stream_under_compiled_checkpointing_is_an_error_not_wrong():
    # Dynamo refuses the stream's side effect inside a checkpointed region (it would
    # not be replayed in the recomputation): an error, never a silently other mask.
    layer = dnn.Dropout(0.5, rng=5)
    torch._dynamo.reset()
    f = torch.compile(
        lambda t: checkpoint(lambda u: layer(u * 1.0), t, use_reentrant=False),
        backend="aot_eager",
        fullgraph=True,
    )
    with pytest.raises(Exception, match="side effect"):
        f(torch.ones(64, requires_grad=True)).sum().backward()
    assert int(layer.rng_counter) == 0


def test_a_numpy_integer_seed_is_a_seed_even_under_activation_checkpointing():
    import numpy as np
    from torch.utils.checkpoint import checkpoint

    x = torch.randn(64, requires_grad=True)

    def f(t):
        return dropkit.dropout(t, 0.5, rng=np.int64(3)).sum()

    g = torch.autograd.grad(checkpoint(f, x, use_reentrant=False), x)[0]
    np.testing.assert_array_equal(
        (g != 0).numpy(), (dropkit.dropout(torch.ones(64), 0.5, rng=3) != 0).numpy()
    )
