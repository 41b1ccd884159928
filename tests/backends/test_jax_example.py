"""examples/jax_mlp.py trains with dropkit's JAX modules under jit: short runs."""

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax", reason="JAX is not installed")
pytest.importorskip("optax", reason="optax is not installed")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jax_mlp.py"


def _load():
    spec = importlib.util.spec_from_file_location("jax_mlp", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["jax_mlp"] = module  # Equinox modules are dataclasses: they look it up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("framework", "package"), [("nnx", "flax"), ("equinox", "equinox")])
@pytest.mark.slow  # several processes or a training: seconds
def test_the_jitted_example_learns(framework, package, capsys):
    pytest.importorskip(package, reason=f"{package} is not installed (dropkit-jax[{package}])")
    # 4 epochs: well above chance (10 classes; runs with seeds 0-2 of both frameworks
    # reached 32.8-34.7% after 4 epochs)
    result = _load().main(["--framework", framework, "--epochs", "4", "--every", "1"])
    out = capsys.readouterr().out
    assert out.count("epoch") == 4 and f"final ({framework})" in out
    assert result["best_test_acc"] > 0.25


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--every", "0"], "--every must be at least 1"),
        (["--p", "1.5"], "--p is the drop probability"),
        (["--p", "nan"], "--p is the drop probability"),
        (["--train-size", "0"], "--train-size must be between 1 and 4000"),
        (["--framework", "keras"], "invalid choice"),
    ],
)
def test_the_example_refuses_bad_options_with_a_usage_message(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _load().main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
