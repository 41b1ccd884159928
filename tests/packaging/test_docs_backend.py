"""The backends of docs/backends.md, registered as a third party would, against the suite.

Each ```python block after a ``<!-- file: NAME -->`` line is written to a folder
with a ``.dist-info`` that declares it in the entry-point group ``dropkit`` (what
installing a distribution writes), put on ``PYTHONPATH`` of a subprocess.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "backends.md"
BLOCK = re.compile(r"<!-- file: (\w+)\.py -->\n```python\n(.*?)```", re.S)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    files = dict(BLOCK.findall(DOC.read_text()))
    assert set(files) == {"minimal_backend", "counting_backend"}
    lines = ["[dropkit]"]
    for module, source in files.items():
        (root / f"{module}.py").write_text(source)
        lines.append(f"{module.removesuffix('_backend')} = {module}")
    info = root / "dropkit_docs_backends-0.1.0.dist-info"
    info.mkdir()
    metadata = "Metadata-Version: 2.1\nName: dropkit-docs-backends\nVersion: 0.1.0\n"
    (info / "METADATA").write_text(metadata)
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root


def _env(site):
    return {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_the_minimal_backend_is_small():
    source = dict(BLOCK.findall(DOC.read_text()))["minimal_backend"]
    code = [line for line in source.splitlines() if line.strip()]
    assert len(code) <= 16  # the four required members and the hook


@pytest.mark.slow  # several processes or a training: seconds
def test_the_minimal_backend_passes_the_shipped_suite(site):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "dropkit.testing", "--dropkit-backend",
         "minimal", "-q", "-p", "no:cacheprovider", "-x"],
        capture_output=True, text=True, env=_env(site), cwd=site, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout


COUNT = """
import numpy as np
import dropkit
from counting_backend import Counting

x = np.linspace(-1, 1, 2 * 3 * 4 * 5 * 6).reshape(2, 3, 4, 5, 6)
calls = {}
with dropkit.use_backend("counting"):
    h = dropkit.relu_dropout(x, 0.5, rng=1)
    ops = {
        "dropout": lambda: dropkit.dropout(x, 0.5, rng=1),
        "dropout inplace": lambda: dropkit.dropout(x.copy(), 0.5, rng=1, inplace=True),
        "noise_shape": lambda: dropkit.dropout(x, 0.5, rng=1, noise_shape=(2, 1, 4, 1, 6)),
        "dropout1d": lambda: dropkit.dropout1d(x[:, :, 0, 0], 0.5, rng=1),
        "dropout2d": lambda: dropkit.dropout2d(x[:, :, 0], 0.5, rng=1),
        "dropout3d": lambda: dropkit.dropout3d(x, 0.5, rng=1),
        "relu_dropout": lambda: dropkit.relu_dropout(x, 0.5, rng=1),
        "drop_path": lambda: dropkit.drop_path(x, 0.5, rng=1),
        "alpha_dropout": lambda: dropkit.alpha_dropout(x, 0.5, rng=1),
        "feature_alpha_dropout": lambda: dropkit.feature_alpha_dropout(x, 0.5, rng=1),
        "dropout p=1": lambda: dropkit.dropout(x, 1.0),
        "dropout_backward": lambda: dropkit.dropout_backward(x, 0.5, rng=1),
        "dropout2d_backward": lambda: dropkit.dropout2d_backward(x[:, :, 0], 0.5, rng=1),
        "relu_dropout_backward": lambda: dropkit.relu_dropout_backward(x, h, 0.5),
        "drop_path_backward": lambda: dropkit.drop_path_backward(x, 0.5, rng=1),
        "alpha_dropout_backward": lambda: dropkit.alpha_dropout_backward(x, 0.5, rng=1),
        "gaussian_dropout": lambda: dropkit.gaussian_dropout(x, 0.5, rng=1),
        "gaussian_noise": lambda: dropkit.gaussian_noise(x, 0.1, rng=1),
        "dropblock2d": lambda: dropkit.dropblock2d(x[:, :, 0], 0.2, block_size=3, rng=1),
        "evaluation": lambda: dropkit.dropout(x, 0.5, training=False),
    }
    for name, op in ops.items():
        before = Counting.calls
        y = op()
        calls[name] = Counting.calls - before
        with dropkit.use_backend("numpy"):  # the same values as the shipped NumPy backend
            assert np.array_equal(np.asarray(op()), np.asarray(y), equal_nan=True), name
print(calls)
"""


def test_a_backend_with_mask_scale_is_used_by_every_op_that_reduces_to_it(site):
    done = subprocess.run(
        [sys.executable, "-c", COUNT], capture_output=True, text=True, env=_env(site),
        cwd=site, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    calls = eval(done.stdout.strip().splitlines()[-1])
    never = {"gaussian_dropout", "gaussian_noise", "dropblock2d", "evaluation"}
    assert {name for name, n in calls.items() if n == 0} == never, calls
    assert all(n == 1 for name, n in calls.items() if name not in never), calls
