"""Stream layers under torch.export, torch.func.functional_call and torch.compile (issue 22.4).

The stream's counter advances in place: an exported program mutates the
buffer, functional_call advances the caller's tensors, a compiled model stays
one graph. (A stream in a checkpointed region under torch.compile is still
refused: tests/backends/test_torch_rng.py.)
"""

import copy

import pytest
from dk_helpers import torch_or_skip

torch = torch_or_skip(module_level=True)

from dropkit_torch import nn as dnn  # noqa: E402
from torch._dynamo.testing import CompileCounter  # noqa: E402


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 8), dnn.Dropout(0.5, rng=7), dnn.Dropout2d(0.5, rng=8)
    ).train()


def _x():
    return torch.randn(4, 3, 5, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("strict", [False, True])
def test_an_exported_train_program_mutates_the_streams(strict):
    model, x = _model(), _x()
    eager = copy.deepcopy(model)
    program = torch.export.export(copy.deepcopy(model), (x,), strict=strict)
    mutated = program.run_decompositions().graph_signature.buffers_to_mutate
    assert sorted(mutated.values()) == ["1.rng_counter", "2.rng_counter"]
    module = program.module()
    first, second = module(x), module(x)
    assert not torch.equal(first == 0, second == 0)  # a new mask per call
    assert torch.equal(first, eager(x)) and torch.equal(second, eager(x))  # eager's sequence
    counters = {n: int(b) for n, b in module.named_buffers() if n.endswith("rng_counter")}
    assert counters == {"1.rng_counter": 2, "2.rng_counter": 2}
    again = torch.export.export(copy.deepcopy(model), (x,), strict=strict).module()
    assert torch.equal(again(x), first) and torch.equal(again(x), second)  # reproducible


def test_functional_call_advances_the_callers_buffers():
    model, x = _model(), _x()
    eager = copy.deepcopy(model)
    state = {n: t.clone() for n, t in model.state_dict().items()}
    counters = [state["1.rng_counter"], state["2.rng_counter"]]
    outputs = [torch.func.functional_call(model, state, (x,)) for _ in range(2)]
    assert [int(c) for c in counters] == [2, 2]  # the caller's own tensors, in place
    assert int(model[1].rng_counter) == 0  # the module's buffers untouched
    assert torch.equal(outputs[0], eager(x)) and torch.equal(outputs[1], eager(x))
    restarted = {n: t.clone() for n, t in model.state_dict().items()}
    assert torch.equal(torch.func.functional_call(model, restarted, (x,)), outputs[0])


def test_functional_call_under_a_grad_transform_advances_the_buffers():
    model, x = _model(), _x()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}

    def loss(p):
        return torch.func.functional_call(model, {**p, **buffers}, (x,)).sum()

    grads = [torch.func.grad(loss)(params) for _ in range(2)]
    assert int(buffers["1.rng_counter"]) == 2 and int(buffers["2.rng_counter"]) == 2
    assert not torch.equal(grads[0]["0.bias"], grads[1]["0.bias"])  # another mask each step


def test_a_compiled_model_is_one_graph_and_draws_the_eager_sequence():
    model, x = _model(), _x()
    eager = copy.deepcopy(model)
    torch._dynamo.reset()
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    for _ in range(3):
        assert torch.equal(compiled(x), eager(x))
    assert counter.frame_count == 1
    assert int(model[1].rng_counter) == 3
