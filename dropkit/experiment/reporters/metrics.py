"""A CSV metrics file per run, one row per epoch, flushed as it goes.

``<out_dir>/metrics.csv`` is rewritten from the run's history when a run starts
(so a resumed run has no duplicate or missing rows) and appended to after each
epoch. Checkpoints are written every few seconds
(:data:`~dropkit.experiment.checkpoint.CHECKPOINT_INTERVAL`), so after a killed process the
file may hold rows past the checkpoint's epoch; resuming recomputes those epochs
(identically) and rewrites the file.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from ..checkpoint import atomic_write_text
from ..hookspecs import hookimpl
from ..result import RECORD_KEYS
from ..runfiles import open_run_file

__all__ = ["COLUMNS", "MetricsFile"]

#: The columns, in order: every key of an epoch's record. ``val_acc`` and
#: ``val_loss`` are empty for a run without a validation set (and ``test_loss``
#: for a history saved before it was recorded).
COLUMNS = RECORD_KEYS


def _row(record: dict[str, Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(["" if record.get(c) is None else record[c] for c in COLUMNS])
    return buf.getvalue()


class MetricsFile:
    """Writes ``metrics.csv`` into each run's output folder."""

    @hookimpl
    def dropkit_train_start(self, run: Any) -> None:
        """Write the header and the rows of any resumed history."""
        if run.out_dir is None:
            return
        text = ",".join(COLUMNS) + "\r\n" + "".join(_row(r) for r in run.history)
        atomic_write_text(run.out_dir / "metrics.csv", text)

    @hookimpl
    def dropkit_epoch_end(self, run: Any, record: dict[str, Any]) -> None:
        """Append the epoch's row."""
        if run.out_dir is None:
            return
        with open_run_file(run.out_dir / "metrics.csv", "ab") as f:
            f.write(_row(record).encode())
