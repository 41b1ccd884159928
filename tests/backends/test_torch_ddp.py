"""Per-rank streams under DDP and FSDP2: 2 gloo processes on the CPU (issue 22.3).

DDP broadcasts rank 0's buffers before every forward (``broadcast_buffers=True``,
its default): per-rank keys held in the buffers would all become rank 0's.
:func:`dropkit_torch.nn.per_rank_streams` keeps the buffers equal on every
rank and folds the rank into the draw instead: masks independent per rank,
identical for layers left shared, and a rerun bit-identical.
"""

import socket

import pytest
from dk_helpers import torch_or_skip

torch = torch_or_skip(module_level=True)

import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from dropkit_torch import nn as dnn  # noqa: E402
from dropkit_torch.layer import rank_key  # noqa: E402

import dropkit  # noqa: E402

pytestmark = pytest.mark.slow  # two processes start torch: over 5 s
WORLD = 2
STEPS = 3


def _model(own=7):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 8),
        dnn.Dropout(0.5, rng=9),  # shared: the same masks on every rank
        dnn.Dropout(0.5, rng=own),  # per rank
        torch.nn.Linear(8, 1),
    )


def _train(model, wrapped):
    """STEPS training steps; the (input, output) of the two dropkit layers at each."""
    seen = []
    hooks = [
        model[i].register_forward_hook(
            lambda m, a, y, i=i: seen.append((i, a[0].detach(), y.detach()))
        )
        for i in (1, 2)
    ]
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.ones(4, 8)
    for _ in range(STEPS):
        optimiser.zero_grad()
        wrapped(x).sum().backward()
        optimiser.step()
    for hook in hooks:
        hook.remove()
    counters = [int(model[i].rng_counter) for i in (1, 2)]
    return {"seen": seen, "counters": counters}


def _worker(rank, port, out):
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        result = {}
        model = _model()
        assert dnn.per_rank_streams(model) == ["1", "2"]
        model[1].rank = None  # this one stays shared
        ddp = torch.nn.parallel.DistributedDataParallel(model)  # broadcast_buffers=True
        result["ddp"] = _train(model, ddp)
        result["ddp_weight"] = model[0].weight.detach().clone()

        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        model = _model()
        dnn.per_rank_streams(model, rank)
        model[1].rank = None
        fully_shard(model, mesh=init_device_mesh("cpu", (WORLD,)))
        result["fsdp2"] = _train(model, model)

        # per-rank keys in the buffers (what DDP's broadcast overwrites): refused
        mismatched = _model(own=dropkit.Generator(7).spawn(WORLD)[rank])
        try:
            dnn.per_rank_streams(mismatched)
            result["mismatch"] = None
        except ValueError as error:
            result["mismatch"] = str(error)
        torch.save(result, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(folder):
    folder.mkdir()
    mp.spawn(_worker, args=(_free_port(), str(folder)), nprocs=WORLD, join=True)
    return [torch.load(folder / f"rank{r}.pt") for r in range(WORLD)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    return _run(base / "first"), _run(base / "second")


def _expected(h, key, counter):
    return dropkit.dropout(h, 0.5, rng=dropkit.Generator(key, counter))


@pytest.mark.parametrize("wrapper", ["ddp", "fsdp2"])
def test_per_rank_layers_draw_each_ranks_own_masks(runs, wrapper):
    first, _ = runs
    masks = []
    for rank in range(WORLD):
        calls = [(h, y) for i, h, y in first[rank][wrapper]["seen"] if i == 2]
        assert len(calls) == STEPS
        for step, (h, y) in enumerate(calls):
            assert torch.equal(y, _expected(h, rank_key(7, rank), step))
        masks.append(torch.stack([y == 0 for _, y in calls]))
    assert not torch.equal(masks[0], masks[1])  # independent per rank


@pytest.mark.parametrize("wrapper", ["ddp", "fsdp2"])
def test_shared_layers_draw_the_same_masks_on_every_rank(runs, wrapper):
    first, _ = runs
    outputs = []
    for rank in range(WORLD):
        calls = [(h, y) for i, h, y in first[rank][wrapper]["seen"] if i == 1]
        assert len(calls) == STEPS
        for step, (h, y) in enumerate(calls):
            assert torch.equal(y, _expected(h, 9, step))
        outputs.append(torch.stack([y for _, y in calls]))
    assert torch.equal(outputs[0], outputs[1])  # same input (same weights), same mask


def test_the_buffers_stay_equal_on_every_rank_under_the_broadcast(runs):
    first, _ = runs
    for wrapper in ("ddp", "fsdp2"):
        assert [first[r][wrapper]["counters"] for r in range(WORLD)] == [[STEPS, STEPS]] * WORLD
    assert torch.equal(first[0]["ddp_weight"], first[1]["ddp_weight"])  # gradients averaged


def test_per_rank_keys_in_the_buffers_are_refused(runs):
    first, _ = runs
    for rank in range(WORLD):
        assert "differ from rank 0's" in first[rank]["mismatch"]
        assert "same seeds" in first[rank]["mismatch"]


def test_a_rerun_is_bit_identical(runs):
    first, second = runs
    for a, b in zip(first, second, strict=True):
        for wrapper in ("ddp", "fsdp2"):
            assert a[wrapper]["counters"] == b[wrapper]["counters"]
            for (i, h, y), (j, h2, y2) in zip(a[wrapper]["seen"], b[wrapper]["seen"], strict=True):
                assert i == j and torch.equal(h, h2) and torch.equal(y, y2)
        assert torch.equal(a["ddp_weight"], b["ddp_weight"])
