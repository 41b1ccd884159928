"""examples/torch_mlp.py trains under torch.compile(fullgraph=True): a short run."""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest
from dk_helpers import torch_or_skip

torch = torch_or_skip(module_level=True)

# Inductor, torch.compile's default backend, compiles C++ on the CPU
HAS_CXX = any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++"))
needs_inductor = pytest.mark.skipif(
    not HAS_CXX, reason="no C++ compiler: torch.compile's default backend (Inductor) needs one"
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "torch_mlp.py"


def _load():
    spec = importlib.util.spec_from_file_location("torch_mlp", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_inductor
def test_the_compiled_example_learns_and_uses_dropkit_layers(capsys):
    example = _load()
    torch._dynamo.reset()
    # 5 epochs: well above chance (10 classes; eager runs with seeds 0-2 reached
    # 32.8-35.8%), compiled with Inductor
    result = example.main(["--epochs", "5", "--every", "1"])
    out = capsys.readouterr().out
    assert "(compiled)" in out and out.count("epoch") == 5
    assert result["best_test_acc"] > 0.25
    model = example.build([40, 64, 32, 10], 0.5)
    from dropkit_torch import nn as dnn

    assert sum(isinstance(m, dnn.Dropout) for m in model) == 2
