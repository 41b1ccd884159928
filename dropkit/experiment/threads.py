"""BLAS threads of the training loop: how many, chosen for its matrix sizes, and applied.

The experiment's matrix products are small (the MNIST-1D net's largest, a
batch of 256 through the 512x256 layer, is 67 MFLOP), and OpenBLAS's idle
threads spin on cores that other work needs: on a 2-core machine shared with
other jobs, `dropkit train --epochs 30` took 23.5-24.1 s with OpenBLAS's
default (a thread per core) and 6.0-8.4 s with one thread, for the same bits.

The rule (:func:`choose_threads`): one thread per :data:`FLOPS_PER_THREAD`
(1 GFLOP) of the largest product of a training step, at least 1, and at
most the cores this process may use that other work does not keep busy
(the cores minus the integer part of the 1-minute load average, at least
1). Measured with ``benchmarks/bench_threads.py --products`` on a 2-core AMD
EPYC (float32, OpenBLAS 0.3.31), 2 threads against 1: at load average 3.5,
a 10 MFLOP product 7.6-12.6x slower, 67 MFLOP 2.0-2.9x slower, 0.5-1.1 GFLOP
0.53-0.67x (faster), a 3.1 GFLOP product with 256 rows 1.1-1.6x slower; at
load average 2.4, 67 MFLOP 0.55-1.2x and 3.1 GFLOP 0.51-0.53x. A second
thread wins on products of about a GFLOP when a core is free, and loses
badly on small ones, or on any when the cores are busy: hence a GFLOP per
thread, and the load cap. The choice applies to the BLAS libraries
(threadpoolctl's ``user_api="blas"``) while
:func:`~dropkit.experiment.train.train` runs (libraries loaded meanwhile
included), and the previous limits are restored after.

The user decides instead with ``--threads N`` (``train(..., threads=N)``),
or by setting one of :data:`USER_VARIABLES` (then dropkit limits nothing:
the pools stay as the variable sized them). What was chosen, and why, is in
the run's summary (``"threads"``). The thread count does not change the bits.

Examples
--------
>>> choice = choose_threads(67_108_864, environ={})
>>> choice.threads, choice.reason.split(":")[0]
(1, 'auto')
>>> choose_threads(67_108_864, requested=2).threads
2
>>> choose_threads(67_108_864, environ={"OPENBLAS_NUM_THREADS": "3"}).threads is None
True
>>> choose_threads(8_000_000_000, environ={}, cores=16, load=13.2).threads  # 3 cores idle
3
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FLOPS_PER_THREAD",
    "USER_VARIABLES",
    "BlasLimit",
    "ThreadChoice",
    "available_cores",
    "blas_info",
    "blas_threads",
    "choose_threads",
    "step_flops",
]

#: Floating-point operations of one product per BLAS thread (see the module's description).
FLOPS_PER_THREAD = 1_000_000_000
#: Variables by which a user sizes the BLAS/OpenMP pools; set, dropkit leaves the pools alone.
USER_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


@dataclass(frozen=True)
class ThreadChoice:
    """The BLAS thread limit of a run (None: none applied) and why."""

    threads: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the run's summary."""
        return {"threads": self.threads, "reason": self.reason}


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def step_flops(layers: Sequence[int], batch: int) -> int:
    """The largest product of a training step: ``2 * batch * fan_in * fan_out`` over the layers.

    Examples
    --------
    >>> step_flops([40, 512, 256, 10], 256)
    67108864
    """
    return max((2 * batch * a * b for a, b in itertools.pairwise(layers)), default=0)


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - not POSIX
        return 0.0


def choose_threads(
    flops: int,
    *,
    requested: int | None = None,
    cap: int | None = None,
    environ: Mapping[str, str] | None = None,
    cores: int | None = None,
    load: float | None = None,
) -> ThreadChoice:
    """The thread limit for products of ``flops``: ``requested``, the environment's, or the rule.

    Parameters
    ----------
    flops : int
        The largest product of a training step (:func:`step_flops`).
    requested : int, optional
        The user's ``--threads``: used as given.
    cap : int, optional
        The most threads the rule may choose, whatever the load (a study's
        workers get their share of the cores).
    environ : mapping, optional
        Where to look for :data:`USER_VARIABLES` (default: ``os.environ``).
    cores, load : optional
        Without ``cap``: the cores (default :func:`available_cores`) and the
        1-minute load average (default ``os.getloadavg()``); the rule uses at
        most ``cores - int(load)`` of them, at least 1.
    """
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(
                f"threads must be an integer >= 1 (--threads N), got {requested!r}; leave it "
                "out to let dropkit choose"
            )
        return ThreadChoice(requested, f"--threads {requested}")
    env = os.environ if environ is None else environ
    given = [f"{name}={env[name]}" for name in USER_VARIABLES if env.get(name, "").strip()]
    if given:
        return ThreadChoice(None, f"{', '.join(given)} in the environment (no limit applied)")
    if cap is not None:
        most, where = max(1, cap), f"at most {max(1, cap)} (this worker's share of the cores)"
    else:
        cores = available_cores() if cores is None else cores
        load = _load() if load is None else load
        most = max(1, min(cores, cores - int(load)))
        where = f"at most {most} ({cores} cores, load average {load:.1f})"
    threads = int(min(most, max(1, flops // FLOPS_PER_THREAD)))
    return ThreadChoice(
        threads,
        f"auto: the largest product of a step is {flops / 1e6:.0f} MFLOP, one thread per "
        f"{FLOPS_PER_THREAD / 1e6:.0f} MFLOP, {where}",
    )


def blas_info() -> list[dict[str, Any]]:
    """The BLAS libraries loaded in this process: name, version and thread count (threadpoolctl).

    Examples
    --------
    >>> all(set(i) >= {"internal_api", "num_threads"} for i in blas_info())
    True
    """
    from threadpoolctl import threadpool_info

    keys = ("internal_api", "version", "num_threads", "threading_layer")
    return [{k: i.get(k) for k in keys} for i in threadpool_info() if i.get("user_api") == "blas"]


class BlasLimit:
    """Limits the BLAS pools to ``choice.threads`` while in use (None: leaves them alone).

    Libraries loaded after the limit was applied (a backend's first kernel
    may import Numba, which loads SciPy's OpenBLAS) are limited by
    :meth:`refresh`, which the training loop calls before every epoch: it
    scans the loaded libraries again only when a module was imported since
    the last scan. Leaving restores every limit it changed, however the
    block ends.
    """

    def __init__(self, choice: ThreadChoice) -> None:
        self.choice = choice
        self._stack = contextlib.ExitStack()
        self._seen: set[str] = set()
        self._modules = -1

    def __enter__(self) -> BlasLimit:
        self.refresh()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def refresh(self) -> None:
        """Limit the BLAS libraries loaded since the last call, if any."""
        if self.choice.threads is None or len(sys.modules) == self._modules:
            return
        from threadpoolctl import ThreadpoolController

        self._modules = len(sys.modules)
        controller = ThreadpoolController().select(user_api="blas")
        new = [c.filepath for c in controller.lib_controllers if c.filepath not in self._seen]
        if new:
            limiter = controller.select(filepath=new).limit(limits=self.choice.threads)
            self._stack.enter_context(limiter)
            self._seen.update(new)


@contextlib.contextmanager
def blas_threads(choice: ThreadChoice) -> Iterator[BlasLimit]:
    """Limit the BLAS pools to ``choice.threads`` while the block runs (None: leave them).

    The previous limits are restored when the block ends, however it ends.
    It yields the :class:`BlasLimit`: call its ``refresh()`` after loading
    libraries in the block.

    Examples
    --------
    >>> before = blas_info()
    >>> with blas_threads(ThreadChoice(1, "example")):
    ...     all(i["num_threads"] == 1 for i in blas_info())
    True
    >>> blas_info() == before
    True
    """
    with BlasLimit(choice) as limit:
        yield limit
