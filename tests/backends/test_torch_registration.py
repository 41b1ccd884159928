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


def test_import_dropkit_torch_registers_the_op_for_compiled_code():
    done = _run("import torch\nimport dropkit_torch\nimport dropkit\n")
    assert done.returncode == 0, done.stderr[-2000:]
    assert 0 < int(done.stdout.split()[-1]) < 64


def test_without_registration_the_error_says_what_to_import():
    done = _run("import dropkit\n")
    assert done.returncode != 0
    assert "register the torch backend before compiling: `import dropkit_torch`" in done.stderr


def test_an_eager_call_first_also_registers_it():
    done = _run("import torch, dropkit\ndropkit.dropout(torch.ones(2), 0.5, rng=0)\n")
    assert done.returncode == 0, done.stderr[-2000:]
