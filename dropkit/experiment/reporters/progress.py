r"""Progress of training runs on a text stream.

On a terminal one line per run is rewritten in place every epoch: each rewrite
starts with ``"\r\x1b[K"`` (back to the start of the line, erase to its end),
so a shorter line leaves no characters of a longer one behind, and is cut to
the terminal's width (a wrapped line could not be erased). Otherwise (logs,
CI, a pipe) no carriage return or escape sequence is written: a line is printed
every ``max(1, epochs // 10)`` epochs and at the end. :meth:`Progress.close`
ends a line left open (a run stopped by Ctrl-C, SIGTERM or an error), so the
message that follows starts on a fresh line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from typing import Any, TextIO

from ..hookspecs import hookimpl

__all__ = ["CLEAR_LINE", "Progress", "is_terminal", "terminal_width"]

#: Carriage return, then erase to the end of the line (ANSI "EL", supported by every terminal).
CLEAR_LINE = "\r\x1b[K"


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal (False when it cannot tell).

    Examples
    --------
    >>> import io
    >>> is_terminal(io.StringIO())
    False
    """
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def terminal_width(stream: TextIO) -> int:
    """Columns of the terminal ``stream`` writes to (80 when it cannot tell).

    Examples
    --------
    >>> import io
    >>> terminal_width(io.StringIO()) > 0
    True
    """
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):  # not a terminal, or no file descriptor
        return shutil.get_terminal_size().columns


def _held_out(history: list[dict[str, Any]], record: dict[str, Any]) -> str:
    """The held-out accuracies of an epoch; the best so far is chosen on validation if any.

    Examples
    --------
    >>> h = [{"epoch": 1, "val_acc": 0.5, "test_acc": 0.4},
    ...      {"epoch": 2, "val_acc": 0.4, "test_acc": 0.6}]
    >>> _held_out(h, h[1])
    'val 40.00% (best 50.00% at epoch 1)  test 60.00%'
    >>> _held_out([{"epoch": 1, "test_acc": 0.4}], {"epoch": 1, "test_acc": 0.4})
    'test 40.00% (best 40.00%)'
    """
    if record.get("val_acc") is None:
        best = max(r["test_acc"] for r in history)
        return f"test {record['test_acc']:.2%} (best {best:.2%})"
    best_val = max(history, key=lambda r: r["val_acc"])  # the first epoch among equals
    return (
        f"val {record['val_acc']:.2%} (best {best_val['val_acc']:.2%} at epoch "
        f"{best_val['epoch']})  test {record['test_acc']:.2%}"
    )


class Progress:
    """Prints epoch, loss, accuracies, the best so far (on validation if any), time per epoch.

    Parameters
    ----------
    stream : text stream, optional
        Where the lines go (default: standard error).
    live : bool, optional
        Rewrite one line in place (default: whether ``stream`` is a terminal).

    Examples
    --------
    >>> import io
    >>> p = Progress(io.StringIO())
    >>> p.every(300), p.live
    (30, False)
    """

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = is_terminal(self.stream) if live is None else live
        self._open = False  # a live line is on screen without its newline

    @staticmethod
    def every(epochs: int) -> int:
        """Epochs between two printed lines when not on a terminal."""
        return max(1, epochs // 10)

    def _print(self, text: str, end: str = "\n") -> None:
        print(text, end=end, file=self.stream, flush=True)
        self._open = end == ""

    def close(self) -> None:
        """End a live line left open, so whatever is printed next starts on a fresh line."""
        if self._open:
            self._open = False
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to end
                print(file=self.stream, flush=True)

    @hookimpl
    def dropkit_train_start(self, run: Any) -> None:
        """Announce the run."""
        self.close()
        c = run.config
        if run.start_epoch and run.start_epoch >= c.epochs:
            self._print(
                f"[{run.name}] already complete ({run.start_epoch}/{c.epochs} epochs): "
                "read back from its checkpoint, nothing to train"
            )
            return
        resumed = f", resuming after epoch {run.start_epoch}" if run.start_epoch else ""
        self._print(
            f"[{run.name}] {c.dataset} {run.n_train} train / {run.n_test} test, layers "
            f"{list(c.hidden)}, p_hidden={c.p_hidden} p_input={c.p_input}, {c.epochs} epochs "
            f"on {run.backend}{resumed}"
        )

    @hookimpl
    def dropkit_epoch_end(self, run: Any, record: dict[str, Any]) -> None:
        """Show the epoch."""
        epochs = run.config.epochs
        line = (
            f"[{run.name}] epoch {record['epoch']:>{len(str(epochs))}}/{epochs}  "
            f"loss {record['loss']:.4f}  train {record['train_acc']:.2%}  "
            f"{_held_out(run.history, record)}  lr {record['lr']:.3g}  "
            f"{record['seconds'] * 1e3:.0f} ms/epoch"
        )
        last = record["epoch"] == epochs
        if self.live:  # cut to the width: a wrapped line could not be erased
            line = line[: max(20, terminal_width(self.stream) - 1)]
            self._print(CLEAR_LINE + line, end="\n" if last else "")
        elif last or record["epoch"] % self.every(epochs) == 0:
            self._print(line)

    @hookimpl
    def dropkit_train_end(self, run: Any, result: Any) -> None:
        """End the live line (a run resumed at its last epoch left none open)."""
        self.close()
