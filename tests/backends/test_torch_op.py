"""The custom op on torch tensors: portable masks, autograd without a stored mask, layouts.

Skipped, with the reason, where torch is not installed (it is never a locked
dependency: install the CPU wheel to run these).
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

KEY = 2**64 - 11

# Inductor, torch.compile's default backend, compiles C++ on the CPU
HAS_CXX = any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++"))
needs_inductor = pytest.mark.skipif(
    not HAS_CXX, reason="no C++ compiler: torch.compile's default backend (Inductor) needs one"
)


def _numpy(t):
    return t.detach().cpu().numpy()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("shape", [(1,), (7,), (37, 29), (3, 5, 7, 2)])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.93])
def test_same_result_as_numpy_bit_for_bit(dtype, shape, p):
    a = np.random.default_rng(0).standard_normal(shape).astype(str(dtype).split(".")[1])
    x = torch.from_numpy(a.copy())
    for mode in ("inverted", "vanilla"):
        got = dropkit.dropout(x, p, rng=dropkit.Generator(KEY, 5), mode=mode)
        want = dropkit.dropout(a, p, rng=dropkit.Generator(KEY, 5), mode=mode, backend="numpy")
        np.testing.assert_array_equal(_numpy(got), want)
    got = dropkit.relu_dropout(x, p, rng=9)
    np.testing.assert_array_equal(_numpy(got), dropkit.relu_dropout(a, p, rng=9, backend="numpy"))


def test_bfloat16_has_the_float32_mask():
    a = np.random.default_rng(1).standard_normal((64, 33)).astype(np.float32)
    x = torch.from_numpy(a).bfloat16()
    y = dropkit.dropout(x, 0.3, rng=4)
    keep = dropkit.dropout(np.ones_like(a), 0.3, rng=4) != 0
    assert y.dtype == torch.bfloat16
    np.testing.assert_array_equal(_numpy(y.float()) != 0, keep & (a != 0))
    scale = torch.tensor(1 / 0.7, dtype=torch.bfloat16)
    want = torch.where(torch.from_numpy(keep), x * scale, torch.zeros((), dtype=torch.bfloat16))
    assert torch.equal(y, want)


@pytest.mark.parametrize(
    ("op", "shape", "noise"),
    [
        (dropkit.dropout1d, (4, 6, 9), (4, 6, 1)),
        (dropkit.dropout2d, (3, 5, 4, 4), (3, 5, 1, 1)),
        (dropkit.dropout3d, (2, 3, 2, 3, 2), (2, 3, 1, 1, 1)),
    ],
)
def test_channel_dropout_equals_numpy_and_drops_whole_maps(op, shape, noise):
    a = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    x = torch.from_numpy(a.copy()).requires_grad_()
    y, mask = op(x, 0.4, rng=11, return_mask=True)
    assert tuple(mask.shape) == noise
    np.testing.assert_array_equal(_numpy(y), op(a, 0.4, rng=11))
    y2 = op(x, 0.4, rng=11)  # the custom op path (no mask returned)
    np.testing.assert_array_equal(_numpy(y2), _numpy(y))
    y2.sum().backward()
    np.testing.assert_array_equal(_numpy(x.grad), op(np.ones_like(a), 0.4, rng=11))


def test_gradient_is_the_same_mask_and_the_backward_op_agrees():
    x = torch.randn(50, 40, requires_grad=True)
    y = dropkit.dropout(x, 0.35, rng=3)
    g = torch.randn(50, 40)
    y.backward(g)
    want = dropkit.dropout_backward(g, 0.35, rng=3)
    assert torch.equal(x.grad, want)
    keep = dropkit.dropout(torch.ones(50, 40), 0.35, rng=3) != 0
    assert torch.equal(x.grad != 0, keep & (g != 0))  # exactly zero on every dropped unit
    np.testing.assert_array_equal(
        _numpy(want), dropkit.dropout_backward(g.numpy(), 0.35, rng=3, backend="numpy")
    )


@pytest.mark.parametrize("mode", ["inverted", "vanilla"])
@pytest.mark.parametrize(
    "fn",
    [
        lambda x, mode: dropkit.dropout(x, 0.4, rng=7, mode=mode),
        lambda x, mode: dropkit.relu_dropout(x, 0.4, rng=7, mode=mode),
        lambda x, mode: dropkit.dropout(x, 0.4, rng=7, mode=mode, noise_shape=(None, 1)),
        lambda x, mode: dropkit.dropout(x, 1.0, rng=7, mode=mode),
    ],
    ids=["dropout", "relu", "noise_shape", "p=1"],
)
def test_gradcheck_and_gradgradcheck(fn, mode):
    # away from 0 so that ReLU's kink is not inside the finite-difference step
    x = torch.rand(6, 5, dtype=torch.float64) + 0.1
    x = (x * torch.where(torch.rand(6, 5) < 0.5, -1, 1)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: fn(t, mode), (x,))
    assert torch.autograd.gradgradcheck(lambda t: fn(t, mode), (x,))


def test_p_one_keeps_the_graph_with_zero_gradients():
    w = torch.randn(4, 3, requires_grad=True)
    h = w * 2
    y = dropkit.dropout(h, 1.0)
    assert y.grad_fn is not None and torch.all(y == 0)
    (y.sum() + 0).backward()
    assert w.grad is not None and torch.all(w.grad == 0) and torch.all(torch.isfinite(w.grad))
    layer = dnn.Dropout(1.0)
    w.grad = None
    layer(w).sum().backward()
    assert torch.equal(w.grad, torch.zeros_like(w))


def _saved_bytes(fn, x):
    total = []

    def pack(t):
        total.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return sum(total)


def test_layer_saves_no_mask_for_backward():
    x = torch.randn(256, 1024, requires_grad=True)
    ours = _saved_bytes(dnn.Dropout(0.5), x)
    theirs = _saved_bytes(torch.nn.Dropout(0.5), x)
    assert theirs >= x.numel()  # nn.Dropout keeps a mask of one byte per element (at least)
    assert ours <= 32  # the seed: four int64 words
    assert ours * 8 <= theirs
    assert _saved_bytes(dnn.Dropout2d(0.5), torch.randn(8, 16, 32, 32)) <= 32


def test_no_grad_inference_mode_and_true_in_place():
    x = torch.randn(300, 200)
    want = dropkit.dropout(x, 0.5, rng=1)
    with torch.no_grad():
        assert torch.equal(dropkit.dropout(x, 0.5, rng=1), want)
    with torch.inference_mode():
        assert torch.equal(dropkit.dropout(x, 0.5, rng=1), want)
        layer = dnn.Dropout(0.5, rng=1)
        assert torch.equal(layer(x), want)
    z = x.clone()
    ptr = z.data_ptr()
    out = dropkit.dropout(z, 0.5, rng=1, inplace=True)
    assert out is z and z.data_ptr() == ptr and torch.equal(z, want)


def test_in_place_on_a_non_leaf_keeps_autograd_right():
    w = torch.randn(30, 20, requires_grad=True)
    h = w * 1.0
    y = dropkit.dropout(h, 0.5, rng=2, inplace=True)
    assert y is h
    y.sum().backward()
    assert torch.equal(w.grad, dropkit.dropout(torch.ones(30, 20), 0.5, rng=2))


def test_inputs_are_never_modified_unless_in_place():
    x = torch.randn(40, 30)
    before = x.clone()
    for call in (
        lambda: dropkit.dropout(x, 0.5, rng=1),
        lambda: dropkit.relu_dropout(x, 0.5, rng=1),
        lambda: dropkit.dropout(x, 0.5, rng=1, return_mask=True),
        lambda: dropkit.dropout(x, 1.0),
        lambda: dropkit.dropout(x, 0.5, training=False, mode="vanilla"),
        lambda: dropkit.dropout_backward(x, 0.5, rng=1),
        lambda: dnn.Dropout(0.5)(x),
    ):
        call()
        assert torch.equal(x, before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_layouts_are_preserved_and_values_unchanged(dtype):
    x = torch.randn(4, 6, 5, 7, dtype=dtype)
    cl = x.to(memory_format=torch.channels_last)
    for op in (
        lambda t: dropkit.dropout(t, 0.5, rng=3),
        lambda t: dropkit.dropout2d(t, 0.5, rng=3),
        lambda t: dropkit.relu_dropout(t, 0.5, rng=3),
        lambda t: dnn.Dropout(0.5, rng=3)(t),
        lambda t: dnn.Dropout2d(0.5, rng=3)(t),
    ):
        y = op(cl)
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert y.stride() == cl.stride()
        assert torch.equal(y, op(x))  # the mask follows logical indices, not memory order
    t = torch.randn(30, 20).t()  # transposed: not contiguous
    assert torch.equal(dropkit.dropout(t, 0.5, rng=8), dropkit.dropout(t.contiguous(), 0.5, rng=8))


def test_dropkit_ops_compile_in_one_graph_with_the_eager_result():
    def f(x, img):
        a = dropkit.dropout(x, 0.5, rng=1)
        b = dropkit.relu_dropout(x, 0.3, rng=2)
        c = dropkit.dropout2d(img, 0.2, rng=3)
        return (a * b).sum() + c.square().sum()

    x = torch.randn(16, 24, requires_grad=True)
    img = torch.randn(2, 3, 4, 4, requires_grad=True)
    eager = f(x, img)
    eager.backward()
    gx, gi = x.grad.clone(), img.grad.clone()
    x.grad = img.grad = None
    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")(x, img)
    compiled.backward()
    assert torch.allclose(compiled, eager)
    assert torch.equal(x.grad, gx) and torch.equal(img.grad, gi)


def test_compiled_rng_none_follows_manual_seed_like_eager():
    def f(x):
        return dropkit.dropout(x, 0.5)

    x = torch.randn(64, 32)
    torch.manual_seed(5)
    eager = f(x)
    torch._dynamo.reset()
    g = torch.compile(f, fullgraph=True, backend="aot_eager")
    torch.manual_seed(5)
    assert torch.equal(g(x), eager)  # aot_eager runs torch's own RNG: the eager key
    torch.manual_seed(6)
    assert not torch.equal(g(x), eager)


def test_the_device_independent_path_cuda_takes_gives_the_same_results(monkeypatch):
    # CUDA tensors compute the words with the int64 reference in torch operations;
    # run that path on the CPU (no GPU here) and compare with the NumPy backend.
    import dropkit_torch._op as op

    monkeypatch.setattr(op, "CPU_KERNELS", False)
    a = np.random.default_rng(4).standard_normal((3, 5, 6, 7)).astype(np.float32)
    for dtype in (torch.float32, torch.float64, torch.float16):
        x = torch.from_numpy(a).to(dtype).requires_grad_()
        ref = x.detach().numpy()
        y = dropkit.dropout(x, 0.3, rng=dropkit.Generator(KEY, 2))
        np.testing.assert_array_equal(
            _numpy(y), dropkit.dropout(ref, 0.3, rng=dropkit.Generator(KEY, 2))
        )
        np.testing.assert_array_equal(
            _numpy(dropkit.relu_dropout(x, 0.3, rng=5)), dropkit.relu_dropout(ref, 0.3, rng=5)
        )
        y2 = dropkit.dropout2d(x, 0.3, rng=6)
        np.testing.assert_array_equal(_numpy(y2), dropkit.dropout2d(ref, 0.3, rng=6))
        y2.sum().backward()
        np.testing.assert_array_equal(
            _numpy(x.grad), dropkit.dropout2d(np.ones_like(ref), 0.3, rng=6)
        )


@needs_inductor
def test_masks_stay_portable_under_inductor():
    def f(x, img):
        return (
            dropkit.dropout(x, 0.4, rng=KEY),
            dropkit.relu_dropout(x, 0.25, rng=3),
            dropkit.dropout2d(img, 0.5, rng=4),
        )

    x = torch.randn(33, 17, requires_grad=True)
    img = torch.randn(2, 6, 3, 3)
    torch._dynamo.reset()
    a, b, c = torch.compile(f, fullgraph=True)(x, img)  # the default backend: Inductor
    xn, imgn = x.detach().numpy(), img.numpy()
    np.testing.assert_array_equal(_numpy(a), dropkit.dropout(xn, 0.4, rng=KEY))
    np.testing.assert_array_equal(_numpy(b), dropkit.relu_dropout(xn, 0.25, rng=3))
    np.testing.assert_array_equal(_numpy(c), dropkit.dropout2d(imgn, 0.5, rng=4))
    a.sum().backward()
    np.testing.assert_array_equal(_numpy(x.grad), dropkit.dropout(np.ones_like(xn), 0.4, rng=KEY))


def test_compiled_code_follows_a_changing_p_and_dynamic_shapes():
    # torch.compile makes a changing p symbolic (and dynamic=True makes it so at once)
    x = torch.randn(64)
    torch._dynamo.reset()
    f = torch.compile(
        lambda t, p: dropkit.dropout(t, p, rng=1), backend="aot_eager", fullgraph=True
    )
    for p in (0.5, 0.3, 0.9, 0.3):
        assert torch.equal(f(x, p), dropkit.dropout(x, p, rng=1))
    layer, twin = dnn.Dropout2d(0.5, rng=2), dnn.Dropout2d(0.5, rng=2)
    g = torch.compile(layer, backend="aot_eager", fullgraph=True, dynamic=True)
    for p, shape in ((0.5, (2, 3, 4, 4)), (0.2, (3, 5, 2, 2))):
        layer.p = twin.p = p
        assert torch.equal(g(torch.ones(shape)), twin(torch.ones(shape)))


def test_inputs_outputs_and_gradients_stay_resizable():
    # tensor.numpy() would mark the caller's storage as not resizable: a lasting side effect
    for n in (16, 1 << 21):
        x = torch.ones(n, requires_grad=True)
        y = dropkit.dropout(x, 0.5, rng=1)
        y.sum().backward()
        for t in (x.detach(), y.detach(), x.grad):
            t.resize_(n + 8)


def test_return_mask_works_in_compiled_code():
    def f(x):
        return dropkit.dropout(x, 0.5, rng=3, return_mask=True, noise_shape=(None, 1))

    x = torch.randn(8, 5)
    torch._dynamo.reset()
    y, mask = torch.compile(f, fullgraph=True, backend="aot_eager")(x)
    want_y, want_mask = f(x)
    assert torch.equal(y, want_y) and torch.equal(mask, want_mask)


def test_vmap_gives_each_sample_the_mask_of_one_call():
    xs = torch.randn(4, 6, 5)
    out = torch.vmap(lambda t: dropkit.dropout(t, 0.5, rng=2))(xs)
    for i in range(4):
        assert torch.equal(out[i], dropkit.dropout(xs[i], 0.5, rng=2))
    different = torch.vmap(lambda t: dropkit.dropout(t, 0.5), randomness="different")(xs)
    assert not torch.equal(different[0] == 0, different[1] == 0)


@pytest.mark.parametrize(
    ("seed", "threshold", "match"),
    [
        (torch.tensor([1, 2, 3]), 2**31, "four 32-bit words"),
        (torch.tensor([-1, 0, 0, 0]), 2**31, "four 32-bit words"),
        (torch.tensor([2**32, 0, 0, 0]), 2**31, "four 32-bit words"),
        (torch.tensor([1.0, 0, 0, 0]), 2**31, "four 32-bit words"),
        (torch.tensor([1, 0, 0, 0]), -1, r"threshold must be in \[0, 2\*\*32\]"),
        (torch.tensor([1, 0, 0, 0]), 2**32 + 1, r"threshold must be in \[0, 2\*\*32\]"),
    ],
)
def test_the_raw_op_checks_its_arguments(seed, threshold, match):
    with pytest.raises((ValueError, RuntimeError), match=match):
        torch.ops.dropkit.dropout(torch.ones(4), seed, [4], threshold, 2.0, False)


def test_numpy_integers_in_noise_shape_are_accepted():
    x = torch.randn(4, 3)
    shape = (np.int64(4), 1)
    assert torch.equal(
        dropkit.dropout(x, 0.5, rng=1, noise_shape=shape),
        dropkit.dropout(x, 0.5, rng=1, noise_shape=(4, 1)),
    )
    a = x.numpy()
    np.testing.assert_array_equal(
        dropkit.dropout(a, 0.5, rng=1, noise_shape=shape),
        dropkit.dropout(a, 0.5, rng=1, noise_shape=(4, 1)),
    )
