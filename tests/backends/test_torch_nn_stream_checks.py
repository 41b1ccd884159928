"""A layer's stream and its input agree on device and dtype; counters near 2**63 refused.

Issue 21.2.
"""

import pytest
from dk_helpers import torch_or_skip

torch = torch_or_skip(module_level=True)

from dropkit_torch import nn as dnn  # noqa: E402

import dropkit  # noqa: E402

COUNTER_LIMIT = 2**62  # dropkit_torch.layer.COUNTER_LIMIT

LAYERS = [
    lambda: dnn.Dropout(0.5, rng=0),
    lambda: dnn.Dropout1d(0.5, rng=0),
    lambda: dnn.DropPath(0.5, rng=0),
    lambda: dnn.AlphaDropout(0.5, rng=0),
    lambda: dnn.GaussianDropout(0.5, rng=0),
    lambda: dnn.GaussianNoise(0.5, rng=0),
]


@pytest.mark.parametrize("make", LAYERS)
def test_a_stream_on_the_meta_device_is_an_error_that_says_what_to_do(make):
    layer = make().to("meta")
    with pytest.raises(RuntimeError, match=r"on the meta device.*to_empty\(device='cpu'\)"):
        layer(torch.ones(2, 4, 3))


def test_an_input_on_another_device_than_the_stream_is_an_error():
    layer = dnn.Dropout(0.5, rng=0)
    with pytest.raises(
        RuntimeError, match=r"stream .* is on cpu but the input is on meta: .*to\('meta'\)"
    ):
        layer(torch.ones(2, 4, device="meta"))
    assert int(layer.rng_counter) == 0


def test_a_materialised_meta_layer_draws_its_seeds_masks():
    layer = dnn.Dropout(0.5, rng=3).to("meta").to_empty(device="cpu")
    layer.reset_parameters()
    assert torch.equal(layer(torch.ones(10)), dropkit.dropout(torch.ones(10), 0.5, rng=3))


def test_stream_buffers_of_another_dtype_are_an_error():
    layer = dnn.Dropout(0.5, rng=0)
    layer.rng_counter = torch.tensor(1.0)
    with pytest.raises(TypeError, match="stream buffers must be int64"):
        layer(torch.ones(4))


@pytest.mark.parametrize("counter", [COUNTER_LIMIT, 2**63 - 2, 2**63 - 1])
def test_a_counter_near_2_63_is_refused_at_load_time(counter):
    layer = dnn.Dropout(0.5, rng=0)
    state = layer.state_dict()
    state["rng_counter"] = torch.tensor(counter)
    with pytest.raises(
        RuntimeError, match=rf"rng_counter must hold .*below 2\*\*62.*got {counter}"
    ):
        layer.load_state_dict(state)
    assert int(layer.rng_counter) == 0


def test_the_last_allowed_counter_loads_and_draws():
    layer = dnn.Dropout(0.5, rng=0)
    layer.load_state_dict(
        {"rng_key": layer.rng_key, "rng_counter": torch.tensor(COUNTER_LIMIT - 1)}
    )
    expected = dropkit.dropout(torch.ones(8), 0.5, rng=dropkit.Generator(0, COUNTER_LIMIT - 1))
    assert torch.equal(layer(torch.ones(8)), expected)


def test_a_generator_near_2_63_is_refused_when_the_layer_is_built():
    with pytest.raises(ValueError, match=r"below counter 2\*\*62.*spawn"):
        dnn.Dropout(0.5, rng=dropkit.Generator(1, 2**63 - 2))


def test_a_stream_advances_under_inference_mode_mc_dropout():
    layer = dnn.Dropout(0.5, rng=2)
    with torch.inference_mode():
        first, second = layer(torch.ones(32)), layer(torch.ones(32))
    assert int(layer.rng_counter) == 2 and not torch.equal(first, second)


def test_a_layer_built_under_inference_mode_draws_outside_it():
    with torch.inference_mode():
        layer = dnn.Dropout(0.5, rng=2)
    outputs = [layer(torch.ones(32)) for _ in range(2)]
    gen = dropkit.Generator(2)
    assert all(torch.equal(y, dropkit.dropout(torch.ones(32), 0.5, rng=gen)) for y in outputs)
    assert int(layer.rng_counter) == 2
