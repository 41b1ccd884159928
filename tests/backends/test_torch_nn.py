"""dropkit_torch.nn layers: train/eval, Sequential, state_dict streams, bad input."""

import io

import numpy as np
import pytest
from dk_helpers import torch_or_skip

torch = torch_or_skip(module_level=True)

from dropkit_torch import nn as dnn  # noqa: E402

import dropkit  # noqa: E402


def test_train_eval_follow_the_parent_module():
    model = torch.nn.Sequential(torch.nn.Linear(5, 50), dnn.Dropout(0.5), dnn.Dropout(0.2))
    x = torch.randn(8, 5)
    model.eval()
    assert all(not m.training for m in model)
    with torch.no_grad():
        assert torch.equal(model(x), model[0](x))
    vanilla = dnn.Dropout(0.2, mode="vanilla").eval()
    assert torch.allclose(vanilla(x), x * 0.8)
    model.train()
    with torch.no_grad():
        assert bool((model(x) == 0).any())


def test_layers_equal_the_functional_ops_and_advance_like_a_generator():
    x = torch.randn(6, 4, 3, 3)
    layers = {
        dnn.Dropout(0.3, rng=21): lambda a, g: dropkit.dropout(a, 0.3, rng=g),
        dnn.Dropout2d(0.3, rng=21): lambda a, g: dropkit.dropout2d(a, 0.3, rng=g),
        dnn.Dropout2d(0.3, rng=21, channel_axis=-1): lambda a, g: dropkit.dropout2d(
            a, 0.3, rng=g, channel_axis=-1
        ),
        dnn.Dropout(0.3, rng=21, mode="vanilla"): lambda a, g: dropkit.dropout(
            a, 0.3, rng=g, mode="vanilla"
        ),
    }
    for layer, ref in layers.items():
        gen = dropkit.Generator(21)
        for _ in range(3):
            np.testing.assert_array_equal(layer(x).numpy(), ref(x.numpy(), gen))
    y1 = dnn.Dropout1d(0.5, rng=1)(torch.ones(2, 8, 5))
    assert torch.all(y1.amin(dim=2) == y1.amax(dim=2))
    y3 = dnn.Dropout3d(0.5, rng=1)(torch.ones(2, 8, 2, 2, 2))
    assert torch.all(y3.flatten(2).amin(dim=2) == y3.flatten(2).amax(dim=2))


def test_a_dropkit_generator_is_copied_not_advanced():
    gen = dropkit.Generator(4, counter=2)
    layer = dnn.Dropout(0.5, rng=gen)
    layer(torch.ones(10))
    assert gen.counter == 2 and layer.stream == dropkit.Generator(4, 3)


def test_state_dict_resumes_the_same_sequence_of_masks():
    def make():
        return torch.nn.Sequential(torch.nn.Linear(4, 64), dnn.Dropout(0.5, rng=2**63 + 3))

    model = make()
    x = torch.randn(3, 4)
    for _ in range(5):
        model(x)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    expected = [model(x) for _ in range(3)]
    fresh = make()
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf))
    assert int(fresh[1].rng_counter) == 5
    for want in expected:
        assert torch.equal(fresh(x), want)
    assert {"1.rng_key", "1.rng_counter"} <= set(model.state_dict())
    assert "rng_key" not in dnn.Dropout(0.5).state_dict()  # rng=None: nothing to save


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"rng_key": torch.tensor([2**40, 0])}, "rng_key must hold two 32-bit words, got 1099"),
        ({"rng_key": torch.tensor([-1, 0])}, "rng_key must hold two 32-bit words, got -1"),
        ({"rng_key": torch.tensor([1.7, 2.9])}, "rng_key must be an int64 tensor .* torch.float32"),
        ({"rng_key": torch.tensor([1, 2], dtype=torch.int32)}, "rng_key must be an int64"),
        ({"rng_key": torch.tensor([1, 2, 3])}, r"of shape \(2,\)"),
        ({"rng_counter": torch.tensor(-3)}, "rng_counter must hold a non-negative count"),
        ({"rng_counter": torch.tensor(float("nan"))}, "rng_counter must be an int64 tensor"),
        ({"rng_counter": torch.tensor(3.9)}, "rng_counter must be an int64 tensor"),
        ({"rng_counter": torch.tensor([3])}, r"rng_counter must be an int64 tensor of shape \(\)"),
        ({"rng_counter": torch.tensor(2**63 - 1)}, "below 2\\*\\*62 .*, got 9223372036854775807"),
        ({"rng_counter": torch.tensor(2**62)}, "below 2\\*\\*62 .*, got 4611686018427387904"),
    ],
)
def test_a_corrupt_stream_in_a_state_dict_is_refused_and_changes_nothing(bad, match):
    layer = dnn.Dropout(0.5, rng=1)
    layer(torch.ones(4))
    good = {k: v.clone() for k, v in layer.state_dict().items()}
    with pytest.raises(RuntimeError, match=match):
        layer.load_state_dict({**good, **bad})
    for name, value in good.items():
        assert torch.equal(layer.state_dict()[name], value)
    assert layer.stream == dropkit.Generator(1, 1)


def test_reset_parameters_restores_the_stream_after_to_empty_and_meta_repr():
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), dnn.Dropout(0.5, rng=9))
    assert "rng=stream(on the meta device)" in repr(model)
    model.to_empty(device="cpu")
    model[1].reset_parameters()
    assert model[1].stream == dropkit.Generator(9)
    assert torch.equal(model[1](torch.ones(8)), dropkit.dropout(torch.ones(8), 0.5, rng=9))


def test_repr_says_what_the_layer_does():
    assert repr(dnn.Dropout(0.25)) == "Dropout(p=0.25, mode='inverted', inplace=False)"
    text = repr(dnn.Dropout2d(0.1, rng=7, channel_axis=-1, mode="vanilla"))
    assert text == (
        "Dropout2d(p=0.1, mode='vanilla', inplace=False, rng=stream(key=7, counter=0), "
        "channel_axis=-1)"
    )


def test_buffers_follow_dtype_and_device_moves():
    layer = dnn.Dropout(0.5, rng=3).double()
    assert layer.rng_key.dtype == torch.int64 and layer.rng_counter.dtype == torch.int64
    assert torch.equal(
        layer(torch.ones(9, dtype=torch.float64)),
        dropkit.dropout(torch.ones(9, dtype=torch.float64), 0.5, rng=3),
    )


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: dnn.Dropout(1.5), ValueError, r"must be in \[0, 1\], got 1.5"),
        (lambda: dnn.Dropout(float("nan")), ValueError, "must be in"),
        (lambda: dnn.Dropout("0.5"), TypeError, "p must be a real number"),
        (lambda: dnn.Dropout(torch.tensor([0.5, 0.2])), TypeError, "0-d real tensor"),
        (lambda: dnn.Dropout(0.5, mode="inverse"), ValueError, "mode must be one of"),
        (lambda: dnn.Dropout(0.5, rng="seed"), TypeError, "rng must be None"),
        (lambda: dnn.Dropout(0.5, rng=torch.tensor(3)), TypeError, "got a tensor"),
        (lambda: dnn.Dropout(0.5, rng=-1), ValueError, "rng must be a non-negative"),
        (lambda: dnn.Dropout2d(0.5, channel_axis=0), ValueError, "channel_axis must name"),
    ],
)
def test_bad_layer_arguments_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_a_zero_d_tensor_p_is_read_once():
    assert dnn.Dropout(torch.tensor(0.25)).p == 0.25
    y = dropkit.dropout(torch.ones(100), torch.tensor(0.5, dtype=torch.float64), rng=1)
    assert torch.equal(y, dropkit.dropout(torch.ones(100), 0.5, rng=1))


def test_channel_layer_wrong_rank_is_an_error_not_a_guess():
    with pytest.raises(
        ValueError, match=r"Dropout2d takes \(N, C, H, W\).* rank 2; .*never guessed"
    ):
        dnn.Dropout2d(0.5)(torch.ones(3, 4))
