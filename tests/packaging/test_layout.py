"""The library half of dropkit never imports the application half (dropkit.experiment)."""

import subprocess
import sys


def test_the_library_does_not_import_the_application():
    code = (
        "import sys, numpy as np, dropkit\n"
        "x = np.ones((4, 3), np.float32)\n"
        "dropkit.dropout(x, 0.5, rng=0); dropkit.dropout2d(np.ones((2, 3, 4, 4)), 0.5, rng=0)\n"
        "dropkit.gaussian_dropout(x, 0.5, rng=0); dropkit.alpha_dropout(x, 0.5, rng=0)\n"
        "dropkit.Dropout(0.5)(x); dropkit.list_backends()\n"
        "import dropkit.testing, dropkit.mc\n"
        "print(sorted(m for m in sys.modules if m.startswith('dropkit.experiment')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_command_and_public_names_still_work():
    import dropkit
    from dropkit.experiment import run_compare
    from dropkit.experiment.cli import main

    assert callable(run_compare) and callable(main)
    assert dropkit.Dropout is dropkit.layers.Dropout
    out = subprocess.run(
        [sys.executable, "-m", "dropkit.experiment.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "compare" in out.stdout
