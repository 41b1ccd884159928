r"""Progress of a whole study or sweep: runs done, running and waiting, each run's epoch, an ETA.

A study's runs train in worker processes; each reports its events (a run
starts, an epoch ends) through :class:`Events`, a training-hook plugin that
hands them to a callable (in a Dask worker: ``worker.log_event``, which the
client subscribes to; with one job: the display itself). :class:`StudyProgress` shows them:

- on a terminal, a status block at the bottom, redrawn at most ten times a
  second: the study's counts, the epochs trained, the time since the start,
  an ETA, and one line per running run with its epoch; lines that stay (a
  finished run, a run already complete) are printed above the block;
- otherwise (a log, CI, a pipe) no escape sequence: a line per event, that is
  when a run starts, every ``max(1, epochs // 10)`` epochs of a run, and when
  it ends (the line :func:`dropkit.experiment.study.progress_printer` prints).

The ETA is the epochs left divided by the rate at which the runs have trained
epochs since the first run started (all workers together; the workers' start
is not counted); the epochs a resumed run had trained before count as done,
not as speed.

Examples
--------
>>> import io
>>> ticks = iter(range(0, 100, 10))
>>> out = io.StringIO()
>>> p = StudyProgress({"seed-0/standard": 4, "seed-0/dropout": 4}, out,
...                   clock=lambda: next(ticks))
>>> p.event("start", "seed-0/standard", 0, 4)
>>> p.event("epoch", "seed-0/standard", 2, 4)
>>> print(out.getvalue(), end="")
  started seed-0/standard (epoch 0/4)
  seed-0/standard: epoch 2/4; study 0/2 runs done, 1 running, 1 waiting; 2/8 epochs; 20s, ETA 1m 00s
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from ..hookspecs import hookimpl
from .progress import is_terminal, terminal_width

__all__ = ["Events", "StudyProgress", "duration"]


def duration(seconds: float) -> str:
    """``seconds`` for a person: ``"45s"``, ``"3m 05s"``, ``"2h 07m"``.

    Examples
    --------
    >>> duration(45.2), duration(185), duration(7640)
    ('45s', '3m 05s', '2h 07m')
    """
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


class Events:
    """A training-hook plugin that hands each run's start and epochs to ``post``.

    ``post`` receives ``(kind, name, epoch, epochs)``: ``("start", name,
    epochs already trained, epochs)`` and ``("epoch", name, epoch, epochs)``.
    """

    def __init__(self, post: Callable[[tuple[str, str, int, int]], None]) -> None:
        self.post = post

    @hookimpl
    def dropkit_train_start(self, run: Any) -> None:
        """Post the run's start."""
        self.post(("start", run.name, run.start_epoch, run.config.epochs))

    @hookimpl
    def dropkit_epoch_end(self, run: Any, record: dict[str, Any]) -> None:
        """Post the finished epoch."""
        self.post(("epoch", run.name, int(record["epoch"]), run.config.epochs))


class StudyProgress:
    """The display of a study's progress on ``stream``.

    Parameters
    ----------
    runs : mapping
        Every run's name and its number of epochs, in the order they are queued.
    stream : text stream
        Where the display goes (standard error in the command line).
    live : bool, optional
        Redraw a status block in place (default: whether ``stream`` is a terminal).
    clock : callable, optional
        Seconds, monotonic (for tests).
    """

    #: Running runs shown one per line in the live status block; more are counted.
    SHOWN = 8

    def __init__(
        self,
        runs: Mapping[str, int],
        stream: TextIO,
        *,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.epochs = dict(runs)
        self.stream = stream
        self.live = is_terminal(stream) if live is None else live
        self.clock = clock
        self.start = clock()
        self.at: dict[str, int] = {}  # running runs: their last finished epoch
        self.done: set[str] = set()
        self.trained = 0  # epochs trained since the start
        self.first: float | None = None  # when the first run started (workers take a while)
        self._drawn = 0  # lines of the live block on screen
        self._last_draw = -1.0

    # ---- events ------------------------------------------------------------------------------

    def event(self, item: tuple[str, str, int, int] | str, *rest: Any) -> None:
        """Take an event of :class:`Events`: a tuple, or its four parts as arguments."""
        kind, name, epoch, epochs = (item, *rest) if isinstance(item, str) else item
        self.epochs[name] = epochs
        if kind == "start":
            if self.first is None:
                self.first = self.clock()
            self.at[name] = epoch  # epochs of earlier sessions count as done, not as speed
            if epoch >= epochs:
                self.say(f"  {name}: already complete ({epoch}/{epochs} epochs), read back")
                return
            how = f"resuming after epoch {epoch}/{epochs}" if epoch else f"epoch 0/{epochs}"
            self.say(f"  started {name} ({how})")
        elif kind == "epoch":
            self.at[name] = epoch
            self.trained += 1
            if self.live:
                self._draw()
            elif epoch < epochs and epoch % max(1, epochs // 10) == 0:  # the end: finished()
                self.say(f"  {name}: epoch {epoch}/{epochs}; {self.status()}")

    def finished(self, name: str, line: str) -> None:
        """A run ended: print its ``line`` (it stays above the live block)."""
        self.at.pop(name, None)
        self.done.add(name)
        self.say(line)

    def close(self) -> None:
        """Remove the live block (the study is over, or stopped)."""
        if self.live:
            with contextlib.suppress(OSError, ValueError):  # the stream is gone (a closed pipe)
                self._clear()
                self.stream.flush()

    # ---- text --------------------------------------------------------------------------------

    def status(self) -> str:
        """The study's counts, epochs, time since the start and ETA, on one line."""
        total = sum(self.epochs.values())
        trained = sum(self.epochs[n] for n in self.done) + sum(self.at.values())
        waiting = len(self.epochs) - len(self.done) - len(self.at)
        now = self.clock()
        elapsed = now - self.start
        training = now - self.first if self.first is not None else 0.0
        eta = "ETA --"
        if self.trained and training > 0:
            eta = f"ETA {duration((total - trained) * training / self.trained)}"
        return (
            f"study {len(self.done)}/{len(self.epochs)} runs done, {len(self.at)} running, "
            f"{waiting} waiting; {trained}/{total} epochs; {duration(elapsed)}, {eta}"
        )

    def block(self) -> list[str]:
        """The live status block: the status, then a line per running run."""
        lines = [self.status()]
        running = list(self.at.items())
        for name, epoch in running[: self.SHOWN]:
            lines.append(f"  {name}  epoch {epoch}/{self.epochs[name]}")
        if len(running) > self.SHOWN:
            lines.append(f"  ... and {len(running) - self.SHOWN} more running")
        return lines

    # ---- output ------------------------------------------------------------------------------

    def say(self, line: str) -> None:
        """Print a line that stays (above the live block, which is redrawn below it)."""
        if self.live:
            self._clear()
            print(line, file=self.stream)
            self._draw(force=True)
        else:
            print(line, file=self.stream, flush=True)

    def _clear(self) -> None:
        if self._drawn:
            up = f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else ""
            self.stream.write("\r" + up + "\x1b[J")  # erase from the block's first line down
            self._drawn = 0

    def _draw(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        width = max(20, terminal_width(self.stream) - 1)  # no wrapped lines
        lines = [line[:width] for line in self.block()]
        self._clear()
        self.stream.write("\n".join(lines))
        self.stream.flush()
        self._drawn = len(lines)
