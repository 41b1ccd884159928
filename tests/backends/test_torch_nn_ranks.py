"""Per-rank streams in one process: the rank folded into the key (issue 22.3).

DDP and FSDP2 with two processes: test_torch_ddp.py.
"""

import copy

import pytest
from dk_helpers import torch_or_skip

torch = torch_or_skip(module_level=True)

from dropkit_torch import nn as dnn  # noqa: E402
from dropkit_torch.layer import rank_key  # noqa: E402
from torch._dynamo.testing import CompileCounter  # noqa: E402

import dropkit  # noqa: E402


def test_a_ranks_masks_are_those_of_its_folded_key_at_the_shared_counter():
    x = torch.ones(64)
    layers = [dnn.Dropout(0.5, rng=dropkit.Generator(7, 3)) for _ in range(3)]
    layers[1].rank, layers[2].rank = 0, 1
    outputs = [[layer(x) for _ in range(2)] for layer in layers]
    for rank, layer in ((0, layers[1]), (1, layers[2])):
        gen = dropkit.Generator(rank_key(7, rank), 3)
        assert all(torch.equal(y, dropkit.dropout(x, 0.5, rng=gen)) for y in outputs[rank + 1])
        assert layer.stream == dropkit.Generator(rank_key(7, rank), 5)
        assert int(layer.rng_counter) == 5 and layer.rng_key.tolist() == [7, 0]  # buffers shared
    assert len({tuple((y == 0).tolist()) for y, _ in outputs}) == 3  # three different masks
    assert "rank=1" in repr(layers[2])


def test_the_rank_is_not_saved_and_a_rank_0_checkpoint_resumes_any_rank():
    trained = dnn.Dropout(0.5, rng=7)
    trained.rank = 0
    trained(torch.ones(8))
    state = trained.state_dict()
    assert set(state) == {"rng_key", "rng_counter"}
    other = dnn.Dropout(0.5, rng=7)
    other.rank = 1
    other.load_state_dict(state)
    assert other.rank == 1 and other.stream == dropkit.Generator(rank_key(7, 1), 1)


def test_per_rank_streams_sets_the_stream_layers_only():
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 4),
        dnn.Dropout(0.5, rng=1),
        dnn.Dropout(0.5),  # torch's generator: seeded per rank by the user
        torch.nn.Sequential(dnn.GaussianDropout(0.2, rng=2), dnn.Dropout2d(0.1, rng=3)),
    )
    assert dnn.per_rank_streams(model, 3) == ["1", "3.0", "3.1"]
    assert [getattr(m, "rank", None) for m in model.modules()] == [None, None, 3, None, None, 3, 3]


def test_rank_errors_say_what_to_do():
    with pytest.raises(ValueError, match=r"no process group is initialised.*pass rank="):
        dnn.per_rank_streams(torch.nn.Sequential(dnn.Dropout(0.5, rng=1)))
    with pytest.raises(ValueError, match=r"torch.manual_seed\(seed \+ rank\)"):
        dnn.Dropout(0.5).rank = 1
    with pytest.raises(ValueError, match="non-negative int"):
        dnn.Dropout(0.5, rng=1).rank = -1


def test_a_per_rank_model_compiles_to_one_graph_with_the_eager_masks():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), dnn.Dropout(0.5, rng=7))
    dnn.per_rank_streams(model, 5)
    eager = copy.deepcopy(model)
    torch._dynamo.reset()
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    x = torch.randn(4, 8)
    assert all(torch.equal(compiled(x), eager(x)) for _ in range(3))
    assert counter.frame_count == 1


def test_a_layer_pickled_before_ranks_existed_still_draws():
    layer = dnn.Dropout(0.5, rng=3)
    del layer.__dict__["_rank"], layer.__dict__["_rank_words"]  # as an older pickle
    assert layer.rank is None
    assert torch.equal(layer(torch.ones(8)), dropkit.dropout(torch.ones(8), 0.5, rng=3))
