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


# The integer draws, the kernel by address and the eager backward (issue 20).


def test_an_unwatched_draw_is_two_integers_and_a_watched_one_a_seed_tensor():
    from dropkit_torch import functional

    x = torch.ones(3, 4)
    assert functional.draw(9, x) == (9, 0)
    with _Recorder():
        seed = functional.draw(9, x)
    assert isinstance(seed, torch.Tensor) and seed.tolist() == [9, 0, 0, 0]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]):
        assert isinstance(functional.draw(None, x), torch.Tensor)


def test_rng_none_draws_the_same_key_as_integers_and_as_a_seed_tensor():
    x = torch.ones(5, 6)
    torch.manual_seed(21)
    eager = dropkit.dropout(x, 0.5)  # unwatched: the key drawn as two integers
    after_eager = torch.rand(3)
    torch.manual_seed(21)
    with _Recorder() as mode:  # watched: the key drawn as a seed tensor
        seen = dropkit.dropout(x, 0.5)
    after_seen = torch.rand(3)
    assert "dropkit.dropout.default" in mode.ops
    assert torch.equal(eager, seen)
    assert torch.equal(after_eager, after_seen)  # the generator advanced alike


def test_a_dispatch_mode_and_the_profiler_see_the_operator_with_grad():
    x = torch.randn(4, 5, requires_grad=True)
    with _Recorder() as mode:
        y = dropkit.dropout(x, 0.5, rng=3)
        y.sum().backward()
    assert mode.ops.count("dropkit.dropout.default") == 2  # forward and backward
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        dropkit.dropout(x, 0.5, rng=3).sum().backward()
    assert sum(e.name == "dropkit::dropout" for e in prof.events()) == 2


def test_the_eager_formula_keeps_integers_and_matches_the_dispatched_one():
    x = torch.randn(6, 7, dtype=torch.float64, requires_grad=True)
    y = dropkit.dropout(x, 0.3, rng=2**64 - 3)
    assert y.grad_fn.draw is not None and not y.grad_fn.saved_tensors  # no seed tensor
    grad = torch.randn(6, 7, dtype=torch.float64)
    (eager,) = torch.autograd.grad(y, x, grad)
    x2 = x.detach().clone().requires_grad_(True)
    with _Recorder():
        y2 = dropkit.dropout(x2, 0.3, rng=2**64 - 3)
        (dispatched,) = torch.autograd.grad(y2, x2, grad)
    assert torch.equal(y, y2) and torch.equal(eager, dispatched)
    want = dropkit.dropout(grad.numpy(), 0.3, rng=2**64 - 3)
    np.testing.assert_array_equal(eager.numpy(), want)


def test_a_double_backward_through_integer_draws():
    x = torch.randn(3, 4, requires_grad=True)
    y = dropkit.dropout(x, 0.5, rng=8)
    upstream = torch.randn(3, 4, requires_grad=True)
    (gx,) = torch.autograd.grad(y, x, upstream, create_graph=True)
    gx.sum().backward()
    keep = dropkit.dropout(torch.ones(3, 4), 0.5, rng=8)
    assert torch.equal(gx.detach(), upstream.detach() * keep)
    assert torch.equal(upstream.grad, keep)


def test_an_expanded_gradient_is_read_in_place_with_the_same_result():
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(7, 9, dtype=dtype, requires_grad=True)
        dropkit.dropout(x, 0.4, rng=5).sum().backward()  # the gradient: ones, expanded
        want = dropkit.dropout(torch.ones(7, 9, dtype=dtype), 0.4, rng=5)
        assert torch.equal(x.grad, want)
        expanded = torch.full((), 1.5, dtype=dtype).expand(7, 9)
        got = dropkit.dropout(expanded, 0.4, rng=5)
        assert got.is_contiguous()
        assert torch.equal(got, dropkit.dropout(expanded.contiguous(), 0.4, rng=5))


def test_the_address_kernels_agree_with_the_numpy_backend():
    from dropkit_torch import _cpu

    for dtype, np_dtype in ((torch.float32, np.float32), (torch.float64, np.float64)):
        for n in (1, 3, 4, 63, 4 * 4096 + 5):
            x = torch.randn(n, dtype=dtype)
            for relu in (False, True):
                y = torch.empty_like(x)
                key, counter = 2**64 - 7, 2**33 + 1
                words = (key & 0xFFFFFFFF, key >> 32, counter & 0xFFFFFFFF, counter >> 32)
                _cpu.KERNELS[dtype](x.data_ptr(), y.data_ptr(), n, 3 << 30, 4.0, relu, *words)
                g = dropkit.Generator(key, counter)
                if relu:
                    want = dropkit.relu_dropout(x.numpy().astype(np_dtype), 0.75, rng=g)
                else:
                    want = dropkit.dropout(x.numpy().astype(np_dtype), 0.75, rng=g)
                np.testing.assert_array_equal(y.numpy(), want)


def test_a_layer_without_a_stream_draws_as_before():
    from dropkit_torch import nn as dnn

    layer = dnn.Dropout(0.5)
    x = torch.randn(4, 6, requires_grad=True)
    torch.manual_seed(5)
    y = layer(x)
    torch.manual_seed(5)
    seed = keys.seed_tensor(None, x)
    want = torch.ops.dropkit.dropout(
        x.detach(), seed, [4, 6], dropkit.keep_threshold(0.5), 2.0, False
    )
    assert torch.equal(y, want)
    y.sum().backward()
    assert torch.equal(x.grad, (want != 0).float() * 2.0)


def test_a_kernel_becomes_its_entry_point_at_first_call_with_the_same_result():
    from dropkit_torch import _cpu

    for table in (_cpu.KERNELS, _cpu.SCALAR_KERNELS):
        for dtype in (torch.float32, torch.float64):
            x, first, then = torch.randn(9, dtype=dtype), torch.empty(9, dtype=dtype), None
            src = x if table is _cpu.KERNELS else x[:1]
            table[dtype](src.data_ptr(), first.data_ptr(), 9, 2**31, 2.0, False, 5, 0, 1, 0)
            assert not isinstance(table[dtype], _cpu._FirstCall)  # replaced by the entry point
            then = torch.empty_like(first)
            table[dtype](src.data_ptr(), then.data_ptr(), 9, 2**31, 2.0, False, 5, 0, 1, 0)
            assert torch.equal(first, then)
            with np.testing.assert_raises(TypeError):  # its arguments are still type-checked
                table[dtype](src.data_ptr(), then.data_ptr(), 9, 2**31, None, False, 5, 0, 1, 0)


def test_rng_none_draws_alike_for_any_cpu_device_object():
    # the CPU path compares the device object by identity first: an equal one still works
    for device in (keys.CPU, torch.device("cpu"), torch.device("cpu", 0)):
        torch.manual_seed(3)
        got = keys.draw_ints(None, device)
        torch.manual_seed(3)
        assert got == keys.draw_ints(None, keys.CPU)
        assert got[1] == 0 and 0 <= got[0] < 2**64
