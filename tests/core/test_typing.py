"""Static typing: the shipped backends satisfy the published protocols, ``return_mask`` types.

One mypy run (the project's ``[tool.mypy]`` settings) over a snippet that
assigns every shipped backend class to a ``Backend`` (and the framework ones to
a ``MasksAndScales``), asserts the result types of ``dropout(..., return_mask=)``
and, as a control, assigns a class that lacks ``random_bits``: mypy must
reject exactly that line, so a check that silently passes everything fails.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SNIPPET = textwrap.dedent(
    """
    from typing import Any, assert_type

    import numpy as np

    import dropkit
    from dropkit.backend import ArrayAPIBackend, Backend, DrawsKeys, MasksAndScales
    from dropkit.packed import PackedMask
    from dropkit_cupy.backend import CupyBackend
    from dropkit_dask.backend import DaskBackend
    from dropkit_jax.backend import JaxBackend
    from dropkit_numpy.backend import NumpyBackend
    from dropkit_torch.backend import TorchBackend


    class NotABackend:
        name = "broken"
        xp = np

        def devices(self) -> list[Any]:
            return []


    def backends(
        strict: ArrayAPIBackend,
        numpy: NumpyBackend,
        cupy: CupyBackend,
        dask: DaskBackend,
        jax: JaxBackend,
        torch: TorchBackend,
    ) -> None:
        plain: list[Backend] = [strict, numpy, cupy, dask, jax, torch]
        primitive: list[MasksAndScales] = [numpy, cupy, dask, jax, torch]
        keys: list[DrawsKeys] = [jax, torch]


    def control(broken: NotABackend) -> None:
        b: Backend = broken  # CONTROL


    def masks(x: Any, flag: bool) -> None:
        assert_type(dropkit.dropout(x, 0.5), Any)
        assert_type(dropkit.dropout(x, 0.5, return_mask=True), tuple[Any, Any])
        assert_type(dropkit.dropout(x, 0.5, return_mask="packed"), tuple[Any, PackedMask])
        assert_type(dropkit.dropout(x, 0.5, return_mask=flag), Any)
        assert_type(dropkit.dropout2d(x, 0.5, return_mask="packed"), tuple[Any, PackedMask])
        assert_type(dropkit.dropout3d(x, 0.5, return_mask=True), tuple[Any, Any])
        assert_type(dropkit.alpha_dropout(x, 0.5, return_mask="packed"), tuple[Any, PackedMask])
        assert_type(dropkit.feature_alpha_dropout(x, 0.5, return_mask=True), tuple[Any, Any])
        assert_type(dropkit.drop_path(x, 0.5), Any)
        assert_type(dropkit.drop_path(x, 0.5, return_mask="packed"), tuple[Any, PackedMask])
        assert_type(dropkit.dropblock2d(x, 0.5, block_size=3, return_mask=True), tuple[Any, Any])
    """
)


@pytest.mark.slow
def test_backends_satisfy_the_protocols_and_return_mask_types(tmp_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (it is in the dev dependency group: uv sync)")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET)
    control = 1 + SNIPPET.splitlines().index("    b: Backend = broken  # CONTROL")
    # The backends' sources, also where an install lacks a py.typed marker.
    paths = [str(ROOT), *(str(p.parent) for p in sorted(ROOT.glob("backends/*/dropkit_*")))]
    env = {**os.environ, "MYPYPATH": os.pathsep.join(paths)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            "--hide-error-context",
            "--no-pretty",
            snippet.name,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    errors = [line for line in done.stdout.splitlines() if re.search(r": error: ", line)]
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(errors) == 1, "\n".join(errors)
    expected = f"{snippet.name}:{control}: error: Incompatible types in assignment"
    assert errors[0].startswith(expected), errors[0]
    assert '"NotABackend"' in errors[0] and '"Backend"' in errors[0]
