"""The application's optimiser kernels: offered by the backend distributions through the
application's hook ``dropkit_sgd_kernel`` (not the backend contract), equal to the array-API
update bit for bit, and used by the training loop."""

import array_api_compat.numpy as npx
import numpy as np
import pytest
from dk_helpers import backend_or_skip, no_plots
from dk_helpers import plugin_manager as _pm
from hypothesis import assume, given
from hypothesis import strategies as st

import dropkit
from dropkit.experiment.data import load_dataset
from dropkit.experiment.hookspecs import hookimpl
from dropkit.experiment.optim import SGD
from dropkit.experiment.plugins import new_plugin_manager, sgd_kernel
from dropkit.experiment.train import TrainConfig, train
from dropkit.testing.profiles import suite_settings
from dropkit.testing.strategies import arrays, float_dtypes, shapes, to_namespace, to_numpy

# The kernels the backend distributions offer; a backend not loadable here is skipped.
KERNEL_BACKENDS = ["numpy", "cupy"]


def _kernel_or_skip(name):
    backend = backend_or_skip(name)
    kernel = sgd_kernel(new_plugin_manager(), backend.xp)
    if kernel is None:
        pytest.skip(f"no SGD kernel is offered for {name} arrays here")
    return backend, kernel


def _sgd_reference(w, g, v, lr, momentum, decay, nesterov):
    """One SGD step in array-API operations (the formula the kernels must reproduce)."""
    if decay:
        g = g + decay * w
    if momentum:
        v = momentum * v + g
        g = g + momentum * v if nesterov else v
    return w - lr * g, v


@pytest.mark.parametrize("name", KERNEL_BACKENDS)
def test_fused_sgd_equals_array_api_update(name):
    backend, kernel = _kernel_or_skip(name)
    xp = backend.xp

    @suite_settings(max_examples=40)
    @given(
        data=st.data(),
        nesterov=st.booleans(),
        decay=st.sampled_from([0.0, 1e-3, 0.1]),
        momentum=st.sampled_from([0.0, 0.5, 0.9]),
    )
    def check(data, nesterov, decay, momentum):
        nesterov = nesterov and momentum > 0
        dtype = data.draw(st.sampled_from([d for d in float_dtypes(xp) if d != "float16"]))
        shape = data.draw(shapes(min_dims=1, max_dims=2, max_side=40))
        w, v_grad = (data.draw(arrays(dtype, st.just(shape))) for _ in range(2))
        fused_w, plain_w = to_namespace(xp, w), to_namespace(xp, w)
        fused_v, plain_v = xp.zeros_like(fused_w), xp.zeros_like(plain_w)
        for _ in range(2):
            g = to_namespace(xp, v_grad)
            done = kernel(
                fused_w, g, fused_v, lr=0.1, momentum=momentum, weight_decay=decay,
                nesterov=nesterov,
            )  # fmt: skip
            assume(done)  # a declined example is not a comparison (all declined: an error)
            plain_w, plain_v = _sgd_reference(plain_w, g, plain_v, 0.1, momentum, decay, nesterov)
        np.testing.assert_array_equal(to_numpy(fused_w), to_numpy(plain_w))
        np.testing.assert_array_equal(to_numpy(fused_v), to_numpy(plain_v))

    check()


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_with_the_kernel_equals_sgd_without(nesterov, dtype):
    _, kernel = _kernel_or_skip("numpy")
    rs = np.random.default_rng(5)
    shapes_ = [(700, 500), (500,), (3,)]
    start = [rs.standard_normal(s).astype(dtype) for s in shapes_]
    grads = [[rs.standard_normal(s).astype(dtype) for s in shapes_] for _ in range(3)]
    fused_params, plain_params = [p.copy() for p in start], [p.copy() for p in start]
    arrays_before = list(fused_params)
    options = {"momentum": 0.9, "nesterov": nesterov, "weight_decay": 1e-3}
    fused = SGD(npx, fused_params, decay=[True, False, True], kernel=kernel, **options)
    plain = SGD(npx, plain_params, decay=[True, False, True], **options)
    for g in grads:
        fused.step(g, lr=0.1)
        plain.step(g, lr=0.1)
    for f, p in zip(fused_params, plain_params, strict=True):
        np.testing.assert_array_equal(f, p)
    # the kernel updated the arrays in place (the array-API update makes new ones)
    assert all(a is b for a, b in zip(fused_params, arrays_before, strict=True))


def test_the_numpy_kernel_declines_what_it_does_not_serve():
    _, kernel = _kernel_or_skip("numpy")
    kwargs = {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "nesterov": False}
    w = np.ones((4, 4), np.float32)
    assert not kernel(w.T, w.T, np.zeros((4, 4), np.float32).T, **kwargs)  # not C-contiguous
    half = np.ones(4, np.float16)
    assert not kernel(half, half, half.copy(), **kwargs)
    assert not kernel([1.0], [1.0], [0.0], **kwargs)  # not arrays
    np.testing.assert_array_equal(w, 1)  # nothing changed


def test_kernels_are_offered_for_their_own_namespace_only(monkeypatch):
    pm = new_plugin_manager()
    assert sgd_kernel(pm, dropkit.get_backend("array_api_strict").xp) is None
    if sgd_kernel(pm, npx) is None:
        pytest.skip("no Numba here: dropkit-numpy offers no kernel")
    monkeypatch.setenv("DROPKIT_NUMPY_KERNELS", "numpy")  # the pure-NumPy choice: no kernel
    assert sgd_kernel(pm, npx) is None


def test_a_kernel_that_is_not_callable_is_ignored_with_a_warning():
    class Junk:
        @hookimpl
        def dropkit_sgd_kernel(self, xp):
            return "fast"

    with pytest.warns(RuntimeWarning, match="not a callable kernel"):
        assert sgd_kernel(_pm(Junk()), npx) is None


class _Counting:
    """A plugin offering the installed kernel through a counter (first result wins)."""

    def __init__(self, kernel):
        self.kernel, self.calls = kernel, 0

    @hookimpl(tryfirst=True)
    def dropkit_sgd_kernel(self, xp):
        def counted(*args, **kwargs):
            self.calls += 1
            return self.kernel(*args, **kwargs)

        return counted


def test_the_training_loop_uses_the_kernel_and_its_numbers_do_not_change():
    _, kernel = _kernel_or_skip("numpy")
    data = load_dataset(train_size=300)
    config = TrainConfig(epochs=2, hidden=(16, 8), batch_size=64)
    counting = _Counting(kernel)
    with no_plots():
        fused = train(config, data, plugin_manager=new_plugin_manager(counting))
    plain = train(config, data, plugin_manager=_pm())  # no plugins: the array-API update
    # 6 parameters, ceil(270 / 64) = 5 steps an epoch, 2 epochs
    assert counting.calls == 6 * 5 * 2
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in fused.history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in plain.history]
    for a, b in zip(fused.params, plain.params, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cupy_kernel_equals_the_numpy_one():
    backend, gpu_kernel = _kernel_or_skip("cupy")
    _, cpu_kernel = _kernel_or_skip("numpy")
    cupy = backend.xp
    rs = np.random.default_rng(5)
    w0 = [rs.standard_normal((64, 33)).astype(np.float32), rs.standard_normal(33).astype("f4")]
    grads = [[rs.standard_normal(w.shape).astype(np.float32) for w in w0] for _ in range(3)]
    kwargs = {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}
    gpu_w = [cupy.asarray(w) for w in w0]
    cpu_w = [w.copy() for w in w0]
    gpu = SGD(cupy, gpu_w, kernel=gpu_kernel, **kwargs)
    cpu = SGD(npx, cpu_w, kernel=cpu_kernel, **kwargs)
    for gs in grads:
        gpu.step([cupy.asarray(g) for g in gs], lr=0.1)
        cpu.step(gs, lr=0.1)
    for a, b in zip(gpu_w, cpu_w, strict=True):
        np.testing.assert_array_equal(to_numpy(a), b)
