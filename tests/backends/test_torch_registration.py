"""How the torch ops are found inside torch.compile, in fresh processes."""

import subprocess
import sys

from dk_helpers import torch_or_skip

torch_or_skip(module_level=True)

COMPILE = (
    "import torch\n"
    "f = torch.compile(lambda x: dropkit.dropout(x, 0.5, rng=1), fullgraph=True, "
    "backend='aot_eager')\n"
    "print(int((f(torch.ones(64)) == 0).sum()))\n"
)


def _run(prelude: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", prelude + COMPILE], capture_output=True, text=True, timeout=300
    )


def test_loading_the_backend_first_lets_compiled_code_find_it():
    done = _run("import torch, dropkit\ndropkit.get_backend('torch')\n")
    assert done.returncode == 0, done.stderr[-2000:]
    assert 0 < int(done.stdout.split()[-1]) < 64


def test_importing_dropkit_torch_registers_nothing():
    # no import side effects: the error says how to load the backend before compiling
    done = _run("import torch\nimport dropkit_torch, dropkit_torch.nn\nimport dropkit\n")
    assert done.returncode != 0
    assert "load the backend before compiling" in done.stderr
    assert "dropkit.get_backend('torch')" in done.stderr


def test_an_eager_call_first_also_loads_it():
    done = _run("import torch, dropkit\ndropkit.dropout(torch.ones(2), 0.5, rng=0)\n")
    assert done.returncode == 0, done.stderr[-2000:]


def test_compiled_code_compiles_once_for_every_key():
    code = (
        "import torch, dropkit\n"
        "from torch._dynamo.utils import counters\n"
        "dropkit.get_backend('torch')\n"
        "f = torch.compile(lambda x: (dropkit.dropout(x, 0.5), dropkit.dropout2d(x[None], 0.3)),"
        " fullgraph=True, backend='aot_eager')\n"
        # the element-wise masks (256 units): the sum with dropout2d's was the same
        # all-kept mask whenever two calls dropped no channel (a quarter of the runs)
        "masks = {tuple((f(torch.ones(4, 8, 8))[0] == 0).flatten().tolist()) for _ in range(4)}\n"
        "print(len(masks), counters['stats']['unique_graphs'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["4", "1"]  # four masks (keys from torch), one graph
