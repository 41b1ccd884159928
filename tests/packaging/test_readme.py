"""The README's Python examples run as written."""

import importlib.util
import os
import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return [b for b in blocks if "my_array_lib" not in b]


def _needs_torch(block: str) -> bool:
    return "import torch" in block


def test_readme_python_examples_run():
    runnable = [b for b in _blocks() if not _needs_torch(b)]
    assert len(runnable) >= 2
    namespace: dict = {}
    for block in runnable:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["gen"].counter == 1
    assert namespace["layer"].training is False


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="torch is not installed (optional: CPU wheel); the README's PyTorch example",
)
@pytest.mark.skipif(
    not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++")),
    reason="no C++ compiler: torch.compile's default backend (Inductor) needs one",
)
def test_readme_torch_example_runs():
    import torch

    blocks = [b for b in _blocks() if _needs_torch(b)]
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    model = namespace["model"]
    assert model.training is False and not model[2].training
    with torch.no_grad():
        out = namespace["step"](torch.ones(3, 40))  # compiled, now in evaluation mode
    assert out.shape == (3, 10)


def test_readme_commands_match_ci():
    ci = (README.parent / ".ci" / "run").read_text()
    test_command = "pip install uv && uv run pytest"
    assert test_command in README.read_text()
    assert test_command in ci
