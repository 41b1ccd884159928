"""Reliability of the per-call fast paths (Numba entry points, dtype bounds, torch's skips).

A hostile audit of the commits that made each call cheaper: the NumPy fused kernel
called through its compiled entry point (which checks neither layout, write access
nor size), the dtype checks as dict look-ups, torch's kernels as entry points and
the dispatcher skipped when nothing watches. A comment above each test that failed
before says what it did; the others guard behaviour found correct.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from dk_helpers import torch_or_skip

import dropkit

pytest.importorskip("numba")
from dropkit_numpy._philox_numba import dropout_fused_numba

THRESHOLD = 2**31  # p = 0.5
X = np.arange(1, 17, dtype=np.float32)


def reference(x: np.ndarray, key: int) -> np.ndarray:
    """dropout with p = 0.5 and ``rng=key`` of a plain C-contiguous copy of ``x``."""
    return dropkit.dropout(np.array(x, order="C"), 0.5, rng=key)


def fused(x: np.ndarray, key: int, **kwargs) -> np.ndarray:
    """The fused kernel with the (key, counter) that ``rng=key`` draws."""
    return dropout_fused_numba(x, key, 0, THRESHOLD, 2.0, **kwargs)


# ---- the NumPy fused kernel's entry point ------------------------------------------------------


def test_fused_kernel_is_the_reference_for_a_plain_array():
    assert np.array_equal(fused(X, 3), reference(X, 3))


# Before: a read-only out was written through the entry point (the dispatcher had refused
# it): a buffer NumPy marks read-only (np.frombuffer of bytes, a memory map opened "r")
# changed under its owner.
def test_fused_kernel_refuses_a_read_only_out_and_leaves_it_unchanged():
    out = np.frombuffer(bytes(X.nbytes), dtype=np.float32)
    assert not out.flags.writeable
    with pytest.raises(ValueError, match="out must be writeable"):
        fused(X, 3, out=out)
    assert not out.any()


# Before: an out with fewer elements than x was written past its end (no bounds checks
# in the kernel); now refused before the kernel runs.
def test_fused_kernel_refuses_an_out_of_another_size():
    backing = np.full(32, -7.0, np.float32)
    with pytest.raises(ValueError, match="out must have x's 16 elements, got 8"):
        fused(X, 3, out=backing[:8])
    assert (backing == -7.0).all()


def test_fused_kernel_writes_an_out_of_another_shape_with_x_size():
    out = np.zeros((4, 4), np.float32)
    assert fused(X, 3, out=out) is out
    assert np.array_equal(out.reshape(-1), reference(X, 3))


# Before: np.matrix (whose ravel is 2-d) reached the 1-d entry point: the kernel read one
# row's length and left the rest of the fresh output uninitialised (values like 1e-45).
def test_fused_kernel_gives_np_matrix_the_reference_values():
    # (a key of its own: a freed output of the same draw could fill the fresh one)
    m = np.matrix(X.reshape(4, 4))
    y = fused(m, 101)
    assert np.array_equal(np.asarray(y).reshape(-1), reference(X, 101))


class _RowRavel(np.ndarray):
    """A subclass whose ravel returns a (1, n) view (as np.matrix's does)."""

    def ravel(self, order="C"):
        return np.asarray(self).reshape(1, -1).view(_RowRavel)


# Before: such a subclass got a mask of wrong values ([2, 0, 6, 0, 0, 0, 14, 16] for
# [2, 0, 6, 8, 0, 12, 0, 16]); before the entry point it was right.
def test_fused_kernel_gives_a_subclass_with_a_2d_ravel_the_reference_values():
    y = fused(X.view(_RowRavel), 102)
    assert np.array_equal(np.asarray(y), reference(X, 102))


def test_fused_kernel_on_unaligned_strided_and_aliased_arrays():
    raw = np.zeros(X.nbytes + 1, np.uint8)[1:].view(np.float32)
    raw[:] = X
    assert not raw.flags.aligned
    assert np.array_equal(fused(raw, 3), reference(X, 3))
    wide = np.repeat(X, 2)[::2]
    assert np.array_equal(fused(wide, 3), reference(X, 3))
    inplace = X.copy()
    assert fused(inplace, 3, out=inplace) is inplace
    assert np.array_equal(inplace, reference(X, 3))


def test_fused_kernel_takes_numpy_scalars_and_keys_from_2_63():
    key = 2**64 - 1
    y = dropout_fused_numba(X, np.uint64(key), np.int64(0), np.uint32(THRESHOLD), np.float32(2.0))
    assert np.array_equal(y, reference(X, key))
    assert np.array_equal(fused(X, 2**63), reference(X, 2**63))


# Before: after any unaligned call (which compiles the dispatcher's unaligned version), a
# big-endian array matched that version and its bytes were read swapped: 4.25e+37, 0,
# -1.2e-38 ... for 2, 0, 6 (Numba's own mix-up, reached by the old path as well).
# Without that call it raised Numba's TypingError.
@pytest.mark.parametrize("big", [">f4", ">f8"])
@pytest.mark.parametrize("size", [16, 1 << 18], ids=["serial", "parallel"])
def test_fused_kernel_refuses_a_big_endian_array_after_an_unaligned_one(big, size):
    x = np.arange(1, size + 1, dtype=np.dtype(big).newbyteorder("="))
    raw = np.zeros(x.nbytes + 1, np.uint8)[1:].view(x.dtype)
    raw[:] = x
    assert np.array_equal(fused(raw, 3), reference(x, 3))  # unaligned: the dispatcher
    with pytest.raises(ValueError, match="machine's byte order"):
        fused(x.astype(big), 3)
    with pytest.raises(ValueError, match="machine's byte order"):
        fused(x, 3, out=np.empty(size, big))


# ---- NumPy dropout: every input form ------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: X.astype(">f4"),
        lambda: np.asfortranarray(X.reshape(4, 4)),
        lambda: X.reshape(4, 4)[:, ::2],
        lambda: X.astype(np.float64),
        lambda: X.astype(np.float16),
    ],
    ids=["big-endian", "fortran", "strided", "float64", "float16"],
)
def test_numpy_dropout_of_every_layout_matches_its_contiguous_copy(make):
    x = make()
    y = dropkit.dropout(x, 0.5, rng=3)
    assert y.shape == x.shape
    assert np.array_equal(y, reference(x, 3).astype(x.dtype))


def test_numpy_dropout_of_read_only_0d_and_empty_arrays():
    ro = X.copy()
    ro.flags.writeable = False
    assert np.array_equal(dropkit.dropout(ro, 0.5, rng=3), reference(X, 3))
    with pytest.raises(ValueError, match="read-only"):
        dropkit.dropout(ro, 0.5, rng=3, inplace=True)
    assert np.array_equal(ro, X)
    assert dropkit.dropout(np.array(2.0, np.float32), 0.5, rng=1).shape == ()
    assert dropkit.dropout(np.ones((0, 3), np.float32), 0.5, rng=1).shape == (0, 3)


def test_numpy_scalars_as_p_and_seed_give_the_python_values_result():
    y = dropkit.dropout(X, np.float32(0.5), rng=np.uint64(3), training=np.bool_(True))
    assert np.array_equal(y, reference(X, 3))


def test_bfloat16_dropout_matches_float32():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    y = dropkit.dropout(X.astype(ml_dtypes.bfloat16), 0.5, rng=3)
    assert y.dtype == ml_dtypes.bfloat16
    assert np.array_equal(y.astype(np.float32), reference(X, 3))


@pytest.mark.parametrize("p", [0.99999, 1 - 1e-6])
def test_float16_overflow_is_still_refused_with_its_message(p):
    with pytest.raises(ValueError, match=r"not finite in float16 .*use p < 0\.99998473"):
        dropkit.dropout(X.astype(np.float16), p, rng=3)
    with pytest.raises(ValueError, match=r"not finite in float16"):
        dropkit.dropout_backward(X.astype(np.float16), p, rng=3)
    with dropkit.use_backend("numpy"), pytest.raises(ValueError, match="not finite in float16"):
        dropkit.dropout(X.astype(np.float16), p, rng=3)


def test_integer_dtypes_are_refused_in_a_use_backend_block_too():
    with pytest.raises(TypeError, match="real floating dtype"):
        dropkit.dropout(np.arange(4), 0.5, rng=3)
    with dropkit.use_backend("numpy"), pytest.raises(TypeError, match="real floating dtype"):
        dropkit.dropout(np.arange(4), 0.5, rng=3)


def test_threads_compiling_each_dtype_first_agree():
    # the first call per dtype builds its entry point; several threads do so at once
    results: dict[tuple[int, int], list[list[float]]] = {}
    lock = threading.Lock()

    def work(i: int) -> None:
        x = np.arange(1, 40, dtype=(np.float32, np.float64)[i % 2])
        for key in range(20):
            y = dropkit.dropout(x, 0.5, rng=key).astype(np.float64).tolist()
            with lock:
                results.setdefault((i % 2, key), []).append(y)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 40
    for (_, key), ys in results.items():
        assert all(y == ys[0] for y in ys)
        assert ys[0] == reference(np.arange(1, 40, dtype=np.float64), key).tolist()


# ---- torch ---------------------------------------------------------------------------------------

DISABLED_JIT = """
import numpy as np, torch, dropkit
x = np.arange(1, 9, dtype=np.float32)
want = dropkit.dropout(x, 0.5, rng=3).tolist()
for dtype in (torch.float32, torch.float64):
    got = dropkit.dropout(torch.arange(1.0, 9.0, dtype=dtype), 0.5, rng=3).tolist()
    assert got == want, (got, want)
print("ok")
"""


# Before: under NUMBA_DISABLE_JIT=1 every torch CPU dropout raised NotImplementedError
# ("<intrinsic _pointer> is not usable in pure-python"): the address kernels cannot run
# uncompiled. The NumPy backend ran (its kernels as plain Python).
def test_torch_cpu_dropout_runs_with_numba_jit_disabled():
    torch_or_skip()
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DISABLED_JIT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_torch_paths_that_watch_or_skip_give_the_same_values():
    torch = torch_or_skip()
    from torch.utils._python_dispatch import TorchDispatchMode

    x = torch.arange(1.0, 17.0)
    want = reference(X, 3).tolist()
    drop = dropkit.dropout
    assert drop(x.to(torch.device("cpu", 0)), 0.5, rng=3).tolist() == want
    with torch.inference_mode():
        assert drop(x, 0.5, rng=3).tolist() == want
    leaf = x.clone().requires_grad_()
    with torch.no_grad():
        y = drop(leaf, 0.5, rng=3)
    assert not y.requires_grad and y.tolist() == want
    assert drop(torch.ones(4, device="meta"), 0.5, rng=3).device.type == "meta"
    traced = torch.jit.trace(lambda a: drop(a, 0.5, rng=3), (x,), check_trace=False)
    assert traced(x).tolist() == want

    class Seen(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    with Seen() as seen:
        y = drop(x, 0.5, rng=3)
    assert y.tolist() == want
    assert "dropkit.dropout.default" in seen.ops  # the mode saw the operator


def test_torch_gradients_tangents_and_float16_overflow():
    torch = torch_or_skip()
    from torch.func import jvp

    x = torch.arange(1.0, 17.0)
    mask = (torch.tensor(reference(X, 3)) != 0).float()
    leaf = x.clone().requires_grad_()
    dropkit.dropout(leaf, 0.5, rng=3).sum().backward()
    assert leaf.grad.tolist() == (2 * mask).tolist()
    leaf = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(
        dropkit.dropout(leaf, 0.5, rng=3).pow(2).sum(), leaf, create_graph=True
    )
    (gg,) = torch.autograd.grad(g.sum(), leaf)
    assert gg.tolist() == (8 * mask).tolist()
    _, tangent = jvp(lambda a: dropkit.dropout(a, 0.5, rng=3), (x,), (torch.ones(16),))
    assert tangent.tolist() == (2 * mask).tolist()
    with pytest.raises(ValueError, match=r"not finite in torch\.float16"):
        dropkit.dropout(x.half(), 0.99999, rng=3)


def test_torch_compile_with_backward_matches_eager_in_one_graph():
    torch = torch_or_skip()
    from torch._dynamo.utils import counters

    dropkit.get_backend("torch")  # loaded before compiling (the registry is not traceable)
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(
        lambda a: dropkit.dropout(a, 0.5, rng=3), backend="aot_eager", fullgraph=True
    )
    want = reference(X, 3).tolist()
    for _ in range(3):
        leaf = torch.arange(1.0, 17.0).requires_grad_()
        y = compiled(leaf)
        y.sum().backward()
        assert y.tolist() == want
        assert leaf.grad.tolist() == [2.0 * (v != 0) for v in want]
    assert counters["stats"]["unique_graphs"] == 1  # the dtype bounds read, never filled


# Before: an array whose type is a user's subclass of a backend library's array type
# (defined outside that library) took the array-API reference path; on torch that path
# raised NotImplementedError ("add_stub" not implemented for 'UInt32'). The registry now
# finds the backend through the type's base classes.
def test_a_user_subclass_of_torch_tensor_gets_the_torch_backend_and_its_gradient():
    torch = torch_or_skip()
    from dropkit._core import selected

    class Tagged(torch.Tensor):
        pass

    x = torch.randn(6, 5).as_subclass(Tagged)
    assert selected(x, "x", None).name == "torch"
    y = dropkit.dropout(x, 0.4, rng=3)
    want = dropkit.dropout(x.as_subclass(torch.Tensor), 0.4, rng=3)
    assert isinstance(y, Tagged) and torch.equal(y.as_subclass(torch.Tensor), want)
    xg = torch.randn(6, 5, requires_grad=True)
    tagged = xg.as_subclass(Tagged)
    dropkit.dropout(tagged, 0.4, rng=3).sum().backward()
    assert torch.equal(xg.grad, (want != 0).float() / 0.6)


def test_a_user_subclass_of_ndarray_gets_the_numpy_backend():
    from dropkit._core import selected

    class Tagged(np.ndarray):
        pass

    x = np.linspace(-1, 1, 30, dtype=np.float32).view(Tagged)
    assert selected(x, "x", None).name == "numpy"
    np.testing.assert_array_equal(
        dropkit.dropout(x, 0.4, rng=3), dropkit.dropout(np.asarray(x), 0.4, rng=3)
    )
