"""dropkit_torch.nn as a drop-in for torch.nn's dropouts (issue 22.6; swap_dropout is elsewhere)."""

import warnings

import pytest
from dk_helpers import torch_or_skip

torch = torch_or_skip(module_level=True)

from dropkit_torch import nn as dnn  # noqa: E402
from torch.nn.modules.dropout import _DropoutNd  # noqa: E402

import dropkit  # noqa: E402

PAIRS = [
    (dnn.Dropout, torch.nn.Dropout),
    (dnn.Dropout1d, torch.nn.Dropout1d),
    (dnn.Dropout2d, torch.nn.Dropout2d),
    (dnn.Dropout3d, torch.nn.Dropout3d),
    (dnn.AlphaDropout, torch.nn.AlphaDropout),
    (dnn.FeatureAlphaDropout, torch.nn.FeatureAlphaDropout),
]


@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=[t.__name__ for _, t in PAIRS])
def test_each_layer_is_an_instance_of_its_torch_counterpart_only(ours, theirs):
    layer = ours(0.25, rng=1)
    assert isinstance(layer, theirs) and isinstance(layer, _DropoutNd)
    assert isinstance(layer, dnn.StreamLayer)
    others = [t for _, t in PAIRS if t is not theirs]
    assert not any(isinstance(layer, t) for t in others)


def test_layers_without_a_torch_counterpart_are_not_torch_dropouts():
    for layer in (
        dnn.GaussianDropout(0.2),
        dnn.GaussianNoise(0.1),
        dnn.DropBlock2d(0.1, block_size=3),
        dnn.DropPath(0.1),
    ):
        assert isinstance(layer, dnn.StreamLayer) and not isinstance(layer, _DropoutNd)


@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=[t.__name__ for _, t in PAIRS])
def test_torch_positional_signature_p_inplace(ours, theirs):
    layer = ours(0.1, True)
    assert (
        (layer.p, layer.inplace) == (0.1, True) == (theirs(0.1, True).p, theirs(0.1, True).inplace)
    )
    shape = {torch.nn.Dropout1d: (2, 3, 4), torch.nn.Dropout2d: (2, 3, 4, 5)}.get(
        theirs, (2, 3, 4, 5, 6)
    )
    x = torch.randn(shape, requires_grad=True) * 1.0  # a non-leaf: in place allowed
    before = x.data_ptr()
    y = layer(x)
    assert y.data_ptr() == before and bool((x == y).all())


def test_an_inplace_alpha_dropout_writes_the_op_over_the_input():
    x = torch.randn(50)
    expected = dropkit.alpha_dropout(x.clone(), 0.3, rng=2)
    y = dnn.AlphaDropout(0.3, True, rng=2)(x)
    assert y is x and torch.equal(x, expected)


def _shared_axes(y):
    """The axes along which every slice of ``y`` is constant (where its mask is shared)."""
    return {a for a in range(y.dim()) if bool((y.amax(dim=a) == y.amin(dim=a)).all())}


@pytest.mark.parametrize(
    ("ours", "theirs", "shape"),
    [
        (dnn.Dropout1d, torch.nn.Dropout1d, (64, 5)),  # unbatched (C, L)
        (dnn.Dropout1d, torch.nn.Dropout1d, (4, 64, 5)),
        (dnn.Dropout3d, torch.nn.Dropout3d, (64, 2, 3, 3)),  # unbatched (C, D, H, W)
        (dnn.Dropout3d, torch.nn.Dropout3d, (2, 64, 2, 3, 3)),
        (dnn.Dropout2d, torch.nn.Dropout2d, (4, 64, 3, 3)),
        (dnn.Dropout2d, torch.nn.Dropout2d, (4, 64, 5)),  # torch 2.13: (N, C, L), warned
    ],
)
def test_input_ranks_have_torchs_semantics(ours, theirs, shape):
    x = torch.ones(shape)
    with warnings.catch_warnings(record=True) as theirs_warned:
        warnings.simplefilter("always")
        expected = _shared_axes(theirs(0.5)(x))
    with warnings.catch_warnings(record=True) as ours_warned:
        warnings.simplefilter("always")
        got = ours(0.5, rng=3)(x)
    assert _shared_axes(got) == expected
    assert bool(got.ne(0).any()) and bool(got.eq(0).any())
    assert bool(ours_warned) == bool(theirs_warned)
    if ours_warned:
        assert "Dropout1d" in str(ours_warned[0].message)
        assert ours_warned[0].filename == __file__  # points at the caller


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (lambda: dnn.Dropout1d(0.5, rng=4), (6, 7)),
        (lambda: dnn.Dropout1d(0.5, rng=4, channel_axis=-1), (7, 6)),
        (lambda: dnn.Dropout3d(0.5, rng=4), (6, 2, 2, 2)),
    ],
)
def test_an_unbatched_input_gets_the_mask_of_its_batch_of_one(layer, shape):
    x = torch.randn(shape)
    assert torch.equal(layer()(x), layer()(x[None])[0])


def test_ranks_torch_refuses_or_deprecates_are_refused():
    with pytest.raises(ValueError, match=r"Dropout1d takes \(N, C, L\) or unbatched \(C, L\)"):
        dnn.Dropout1d(0.5)(torch.ones(3))
    with pytest.raises(ValueError, match=r"Dropout3d takes .* rank 3"):
        dnn.Dropout3d(0.5)(torch.ones(3, 4, 4))


def test_a_stock_dropout_state_dict_loads_strictly_and_restarts_the_stream():
    stock = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5), torch.nn.Dropout2d())
    ours = torch.nn.Sequential(
        torch.nn.Linear(4, 4), dnn.Dropout(0.5, rng=5), dnn.Dropout2d(rng=dropkit.Generator(6, 3))
    )
    ours(torch.ones(2, 4, 1, 4))
    result = ours.load_state_dict(stock.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(ours[0].weight, stock[0].weight)
    assert ours[1].stream == dropkit.Generator(5) and ours[2].stream == dropkit.Generator(6, 3)


def test_a_state_dict_with_half_a_stream_is_still_refused():
    layer = dnn.Dropout(0.5, rng=5)
    with pytest.raises(RuntimeError, match=r'Missing key.*"rng_key"'):
        layer.load_state_dict({"rng_counter": torch.tensor(3)}, strict=True)


@pytest.mark.parametrize("channel_axis", [1, -1])
def test_dropblock2d_keeps_channels_last(channel_axis):
    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    y = dnn.DropBlock2d(0.2, block_size=3, channel_axis=channel_axis, rng=1)(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    expected = dropkit.dropblock2d(
        x.contiguous(), 0.2, block_size=3, channel_axis=channel_axis, rng=1
    )
    assert torch.equal(y, expected)


def test_a_3d_input_to_dropout2d_compiles_in_one_graph():
    from torch._dynamo.testing import CompileCounter

    layer, eager = dnn.Dropout2d(0.5, rng=5), dnn.Dropout2d(0.5, rng=5)
    torch._dynamo.reset()
    counter = CompileCounter()
    compiled = torch.compile(layer, backend=counter, fullgraph=True)
    x = torch.randn(4, 16, 5)
    with pytest.warns(UserWarning, match="Dropout1d"):
        expected = eager(x)
    assert torch.equal(compiled(x), expected) and counter.frame_count == 1
