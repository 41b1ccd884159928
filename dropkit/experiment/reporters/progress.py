"""Progress of training runs on a text stream.

On a terminal one line per run is rewritten in place every epoch; otherwise
(logs, CI) a line is printed every ``max(1, epochs // 10)`` epochs and at the end.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from ...hookspecs import hookimpl

__all__ = ["Progress"]


class Progress:
    """Prints epoch, loss, accuracies, best test accuracy and time per epoch.

    Examples
    --------
    >>> import io
    >>> p = Progress(io.StringIO())
    >>> p.every(300)
    30
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())

    @staticmethod
    def every(epochs: int) -> int:
        """Epochs between two printed lines when not on a terminal."""
        return max(1, epochs // 10)

    @hookimpl
    def dropkit_train_start(self, run: Any) -> None:
        """Announce the run."""
        c = run.config
        resumed = f", resuming after epoch {run.start_epoch}" if run.start_epoch else ""
        print(
            f"[{run.name}] {c.dataset} {run.n_train} train / {run.n_test} test, layers "
            f"{list(c.hidden)}, p_hidden={c.p_hidden} p_input={c.p_input}, {c.epochs} epochs "
            f"on {run.backend}{resumed}",
            file=self.stream,
            flush=True,
        )

    @hookimpl
    def dropkit_epoch_end(self, run: Any, record: dict[str, Any]) -> None:
        """Show the epoch."""
        epochs = run.config.epochs
        best = max(r["test_acc"] for r in run.history)
        line = (
            f"[{run.name}] epoch {record['epoch']:>{len(str(epochs))}}/{epochs}  "
            f"loss {record['loss']:.4f}  train {record['train_acc']:.2%}  "
            f"test {record['test_acc']:.2%} (best {best:.2%})  lr {record['lr']:.3g}  "
            f"{record['seconds'] * 1e3:.0f} ms/epoch"
        )
        if self.live:
            end = "\n" if record["epoch"] == epochs else ""
            print("\r" + line, end=end, file=self.stream, flush=True)
        elif record["epoch"] % self.every(epochs) == 0 or record["epoch"] == epochs:
            print(line, file=self.stream, flush=True)
