"""The CuPy path's per-call machinery on the fake CuPy (no GPU): caches, one build, the notice.

The arrays are :class:`dropkit_cupy.fake.FakeArray` and every launch runs the
host-compiled kernels (:mod:`dropkit_cupy.host`), so results are checked bit
for bit against the NumPy backend through the public ``dropkit.dropout``
(the fake's array type routed to the fake backend as a CuPy array's type is).
What this cannot check: CuPy's own launch, its disk cache, devices, streams.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from dropkit_cupy.fake import FakeArray, as_fake, fake_cupy, load_backend
from dropkit_cupy.host import compiler, host_kernels
from dropkit_cupy.kernels_src import NVRTC_OPTIONS

import dropkit
from dropkit.backend import capabilities
from dropkit.philox import split64
from dropkit.selection import BY_TYPE

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C compiler to build the harness")

LAUNCHES: list[tuple[str, tuple]] = []


def _host_launch(name, ieee, grid, block, args):
    LAUNCHES.append((name, args))
    args = tuple(np.asarray(a) if isinstance(a, np.ndarray) else a for a in args)
    host_kernels(ieee=ieee).launch(name, args, threads=grid[0] * block[0])


@pytest.fixture
def loaded(monkeypatch, tmp_path):
    """The backend on a fresh fake CuPy (a fresh "process"), its cache folder in tmp_path."""
    monkeypatch.setenv("CUPY_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CUPY_CACHE_IN_MEMORY", raising=False)
    from dropkit_cupy import build_notice

    monkeypatch.setattr(build_notice, "_TOLD", [False])
    cupy = fake_cupy(_host_launch)
    found = load_backend(cupy)
    LAUNCHES.clear()
    BY_TYPE[FakeArray] = capabilities(found.backend, ("cupy",))
    yield cupy, found
    BY_TYPE.pop(FakeArray, None)


def _fresh_process(monkeypatch):
    """What a new process has: nothing built, the notice not yet printed."""
    from dropkit_cupy import build_notice

    monkeypatch.setattr(build_notice, "_TOLD", [False])
    cupy = fake_cupy(_host_launch)
    found = load_backend(cupy)
    BY_TYPE[FakeArray] = capabilities(found.backend, ("cupy",))
    return cupy, found


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "bfloat16"])
@pytest.mark.parametrize("rng", [0, 2**63 + 5])
def test_dropout_on_fake_cupy_arrays_equals_numpy_bit_for_bit(loaded, dtype, rng):
    if dtype == "bfloat16":  # ml_dtypes' (what CuPy 14 holds with NumPy 2.5)
        dtype = pytest.importorskip("ml_dtypes", reason="ml_dtypes is not installed").bfloat16
    a = np.random.default_rng(3).standard_normal((37, 11)).astype(np.float32).astype(dtype)
    for p in (0.1, 0.5):
        want = dropkit.dropout(a, p, rng=rng)
        for _ in range(2):  # the second call takes the cached launcher
            got = dropkit.dropout(as_fake(a), p, rng=rng)
            assert type(got) is FakeArray and got.dtype == a.dtype
            np.testing.assert_array_equal(np.asarray(got).view(np.uint8), want.view(np.uint8))
        relu = dropkit.relu_dropout(as_fake(a), p, rng=rng)
        np.testing.assert_array_equal(np.asarray(relu), dropkit.relu_dropout(a, p, rng=rng))
    assert LAUNCHES and all(name.startswith("dk_dropout_") for name, _ in LAUNCHES)


def test_a_generator_stream_and_counters_above_32_bits(loaded):
    """The draw's words (the key's cached, the counter's per call) for every 32-bit half."""
    _, found = loaded
    a = np.random.default_rng(4).standard_normal(1001).astype(np.float32)
    t = dropkit.keep_threshold(0.4)
    for key, counter in ((5, 0), (5, 1), (2**40 + 7, 2**32 + 3), (2**64 - 1, 2**64 - 1)):
        kw = {"noise_shape": a.shape, "threshold": t, "scale": 2.5}
        got = found.backend.mask_scale(as_fake(a), (key, counter), **kw)
        numpy = dropkit.get_backend("numpy")
        want = numpy.mask_scale(a, (key, counter), **kw)
        np.testing.assert_array_equal(np.asarray(got), want)
        words = [int(w) for w in LAUNCHES[-1][1][6:10]]
        assert words == [*split64(key), *split64(counter)]


def test_the_launcher_and_its_fixed_arguments_are_made_once(loaded):
    _, found = loaded
    x = as_fake(np.ones((8, 8), np.float32))
    for _ in range(3):
        dropkit.dropout(x, 0.5, rng=1)
    dropkit.dropout(as_fake(np.ones(5, np.float32)), 0.5, rng=1)  # another size
    plans = found.backend_module._PLANS
    assert len(plans) == 1 and len(found.kernels._fused) == 1
    args = [a for _, a in LAUNCHES]
    assert len(args) == 4
    for i in (3, 4, 5, 10):  # scale, flags, threshold, NULL seed: the same objects each call
        assert len({id(a[i]) for a in args}) == 1
    assert args[0][2] is args[1][2] and int(args[3][2]) == 5  # n, per size
    dropkit.dropout(x, 0.3, rng=1)  # another p: another launcher
    assert len(plans) == 2


def test_one_build_for_every_kernel_of_the_cupy_module(loaded):
    cupy, found = loaded
    b = found.backend
    a = np.random.default_rng(5).standard_normal((4, 3, 5)).astype(np.float32)
    t = dropkit.keep_threshold(0.5)
    b.mask_scale(as_fake(a), (1, 2), noise_shape=a.shape, threshold=t, scale=2.0)
    b.mask_scale(as_fake(a), (1, 2), noise_shape=(4, 3, 1), threshold=t, scale=2.0)  # masked
    b.mask_scale(as_fake(a), None, noise_shape=a.shape, threshold=0, scale=2.0, relu=as_fake(a))
    b.random_bits((1, 2), 9)
    assert {name for name, _ in LAUNCHES} >= {"dk_dropout_f32", "dk_masked_f32", "dk_bits"}
    assert cupy.compiles == 1 and cupy.compiled == [NVRTC_OPTIONS]  # no IEEE module for CuPy


def test_the_build_notice_once_per_process_and_only_when_the_cache_is_cold(
    loaded, monkeypatch, tmp_path
):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    x = as_fake(np.ones(16, np.float32))
    dropkit.dropout(x, 0.5, rng=0)
    dropkit.dropout(x, 0.3, rng=0)
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dropkit-cupy: compiling the CUDA kernels")
    assert str(tmp_path) in lines[0]
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith("dropkit-")]  # the marker

    _fresh_process(monkeypatch)  # the cache is warm now: silent
    dropkit.dropout(x, 0.5, rng=0)
    assert err.getvalue().splitlines() == lines

    monkeypatch.setenv("CUPY_CACHE_IN_MEMORY", "1")  # CuPy compiles in every process
    _fresh_process(monkeypatch)
    dropkit.dropout(x, 0.5, rng=0)
    assert len(err.getvalue().splitlines()) == 2 and "CUPY_CACHE_IN_MEMORY" in err.getvalue()


def test_a_cache_folder_that_cannot_be_written_is_no_error(loaded, monkeypatch, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # the marker's folder would be inside a file: the write fails
    monkeypatch.setenv("CUPY_CACHE_DIR", str(blocked / "cache"))
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    _fresh_process(monkeypatch)
    assert dropkit.dropout(as_fake(np.ones(4, np.float32)), 0.5, rng=0).shape == (4,)
    assert sys.stderr.getvalue().startswith("dropkit-cupy: compiling")


def test_an_array_on_another_device_is_launched_there(loaded, monkeypatch):
    """Where the array's device is not the current one, the launch runs inside its context."""
    _, found = loaded
    entered = []
    device = type(as_fake(np.ones(1)).device)
    monkeypatch.setattr(device, "__enter__", lambda self: entered.append(self.id) or self)
    monkeypatch.setattr(found.backend_module, "_get_device", lambda: 1)
    a = np.arange(12, dtype=np.float32)
    got = dropkit.dropout(as_fake(a), 0.5, rng=7)
    np.testing.assert_array_equal(np.asarray(got), dropkit.dropout(a, 0.5, rng=7))
    assert entered == [0]


def test_the_relu_backward_and_sgd_arguments_are_made_once(loaded):
    _, found = loaded
    g = np.random.default_rng(6).standard_normal((7, 9)).astype(np.float32)
    h = np.random.default_rng(7).standard_normal((7, 9)).astype(np.float32)
    gate = {"noise_shape": g.shape, "threshold": 0, "scale": 2.0}
    for _ in range(2):
        got = found.backend.mask_scale(as_fake(g), None, relu=as_fake(h), **gate)
        np.testing.assert_array_equal(np.asarray(got), np.where(h <= 0, 0, g * np.float32(2)))
    w, v = as_fake(g.copy()), as_fake(np.zeros_like(g))
    for _ in range(2):  # (dropkit_cupy.sgd's kernel, not the backend's)
        found.kernels.sgd(w, as_fake(h), v, lr=0.1, momentum=0.9, weight_decay=0.0, nesterov=False)
    args = [a for _, a in LAUNCHES]
    assert [name for name, _ in LAUNCHES] == ["dk_relu_backward_f32"] * 2 + ["dk_sgd_f32"] * 2
    assert args[0][3] is args[1][3] and args[0][4] is args[1][4]  # n, scale
    assert len(args[2]) == 8 and all(a is b for a, b in zip(args[2][3:], args[3][3:], strict=True))
