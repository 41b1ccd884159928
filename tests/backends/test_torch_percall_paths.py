"""The short eager paths of the torch op: what they skip must be invisible.

An eager call on plain CPU tensors runs the kernel without the dispatcher,
applies the autograd formula without binding arguments with ``inspect``, and
reuses the seed tensor of an int seed. These tests check that everything that
watches the dispatcher still sees the operator, and that a reused seed tensor
never carries a mode's or inference mode's state into a later call.
"""

import numpy as np
from dk_helpers import torch_or_skip

torch = torch_or_skip(module_level=True)

from dropkit_torch import _op, keys  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import dropkit  # noqa: E402


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_a_dispatch_mode_sees_the_operator_and_the_same_result():
    x = torch.randn(6, 7)
    eager = dropkit.dropout(x, 0.5, rng=3)
    with _Recorder() as mode:
        seen = dropkit.dropout(x, 0.5, rng=3)
    assert "dropkit.dropout.default" in mode.ops
    assert torch.equal(seen, eager)


def test_the_profiler_sees_the_operator():
    x = torch.randn(6, 7)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        dropkit.dropout(x, 0.5, rng=3)
    assert any(e.name == "dropkit::dropout" for e in prof.events())


def test_direct_and_dispatched_kernels_agree_with_numpy_bit_for_bit():
    x = torch.randn(5, 9, dtype=torch.float64, requires_grad=True)
    seed = keys.seed_from_ints(2**64 - 11, 5, torch.device("cpu"))
    t = dropkit.keep_threshold(0.3)
    direct = _op.dropout_op(x, seed, [5, 9], t, 1 / 0.7, False)
    dispatched = torch.ops.dropkit.dropout(x.detach(), seed, [5, 9], t, 1 / 0.7, False)
    want = dropkit.dropout(x.detach().numpy(), 0.3, rng=dropkit.Generator(2**64 - 11, 5))
    np.testing.assert_array_equal(direct.detach().numpy(), want)
    np.testing.assert_array_equal(dispatched.numpy(), want)
    direct.sum().backward()
    assert torch.equal(x.grad, (direct != 0).to(x.dtype) / 0.7)


def test_an_int_seed_first_used_in_inference_mode_still_trains():
    keys._INT_SEEDS.clear()
    x = torch.ones(4, 5)
    with torch.inference_mode():
        first = dropkit.dropout(x, 0.5, rng=12345)
    leaf = x.clone().requires_grad_(True)
    y = dropkit.dropout(leaf, 0.5, rng=12345)  # saves the (cached) seed for backward
    y.sum().backward()
    assert torch.equal(y.detach(), first)
    assert torch.equal(leaf.grad, y.detach())


def test_an_int_seed_under_fake_tensors_is_not_cached_nor_reused():
    from torch._subclasses.fake_tensor import FakeTensorMode

    keys._INT_SEEDS.clear()
    with FakeTensorMode() as mode:
        y = dropkit.dropout(mode.from_tensor(torch.ones(3, 4)), 0.5, rng=777)
    assert tuple(y.shape) == (3, 4)
    assert not keys._INT_SEEDS  # nothing built inside the mode was kept
    got = dropkit.dropout(torch.ones(3, 4), 0.5, rng=777)
    want = dropkit.dropout(np.ones((3, 4), np.float32), 0.5, rng=777)
    np.testing.assert_array_equal(got.numpy(), want)


def test_vmap_over_inputs_that_require_grad_keeps_the_gradient():
    xs = torch.randn(3, 4, 5, requires_grad=True)
    out = torch.vmap(lambda t: dropkit.dropout(t, 0.5, rng=4))(xs)
    out.sum().backward()
    keep = dropkit.dropout(torch.ones(4, 5), 0.5, rng=4)
    for i in range(3):
        assert torch.equal(xs.grad[i], keep)


def test_functorch_grad_jacrev_and_vmap_of_grad_see_the_mask():
    keep = dropkit.dropout(torch.ones(3, 5), 0.5, rng=4)
    g = torch.func.grad(lambda t: dropkit.dropout(t, 0.5, rng=4).sum())(torch.randn(3, 5))
    assert torch.equal(g, keep)
    per_sample = torch.vmap(torch.func.grad(lambda t: dropkit.dropout(t, 0.5, rng=4).sum()))
    gs = per_sample(torch.randn(2, 3, 5))
    assert torch.equal(gs[0], keep) and torch.equal(gs[1], keep)
    j = torch.func.jacrev(lambda t: dropkit.dropout(t, 0.5, rng=4))(torch.randn(4))
    assert torch.equal(j, torch.diag(dropkit.dropout(torch.ones(4), 0.5, rng=4)))
