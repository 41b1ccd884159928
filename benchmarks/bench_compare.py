"""Where the time of `dropkit compare` goes: training steps alone vs whole epochs, side by side.

The default experiment (MNIST-1D, 40-512-256-10, batch 256, 16 steps an epoch),
both nets (standard and dropout), measured round by round in one process,
medians in ms per epoch:

- steps: the epoch's 16 training steps alone (forward, loss, backward, SGD);
- evaluation: full train- and test-set accuracy, read back;
- loop epoch: what the loop does per epoch before saving (steps, evaluation,
  the one read-back of losses, counts and parameter finiteness);
- checkpoint write: one checkpoint (parameters to the host, ``.npz``, two fsyncs);
- train() epoch: the wall time between two epochs of ``train()`` with an output
  folder and the command's reporters (metrics file, progress), with the default
  checkpoint interval and with a checkpoint after every epoch;
- overhead: train() epoch minus steps.

``--backend cupy`` runs it on the GPU (the device is synchronised before every
clock read). ``--wall numpy,cupy`` also times the whole command
(``dropkit compare --quiet``, fresh processes, alternating) on each backend and
prints the ratio to the first: the issue's target is cupy <= 0.25x numpy.

Every output folder is a temporary folder (in the system's, or ``--scratch DIR``)
removed when the benchmark ends.

Run:  uv run python benchmarks/bench_compare.py [--backend numpy] [--rounds 5] [--epochs 8]
      uv run python benchmarks/bench_compare.py --wall numpy,cupy [--wall-epochs 300]
"""

from __future__ import annotations

import argparse
import atexit
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from machine import describe, gpu_name

import dropkit
from dropkit.checks import to_numpy
from dropkit.experiment import net_configs
from dropkit.experiment.checkpoint import CHECKPOINT_INTERVAL, save_checkpoint
from dropkit.experiment.data import load_dataset
from dropkit.experiment.hookspecs import hookimpl
from dropkit.experiment.plugins import new_plugin_manager, sgd_kernel
from dropkit.experiment.reporters import MetricsFile, Progress
from dropkit.experiment.train import (
    TrainConfig,
    _correct,
    _epoch,
    _net_and_optimizer,
    _state,
    _steps,
    train,
)


def _sync(xp: Any) -> None:
    """Wait for the device (CuPy, torch CUDA); nothing on the CPU."""
    name = getattr(xp, "__name__", "")
    if "cupy" in name:
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    elif "torch" in name:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


def _clock(fn: Callable[[], Any], xp: Any) -> float:
    _sync(xp)
    start = time.perf_counter()
    fn()
    _sync(xp)
    return time.perf_counter() - start


class _EpochClock:
    """Records the time of every epoch's end (after its checkpoint and the other hooks)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    @hookimpl(trylast=True)
    def dropkit_epoch_end(self, run: Any, record: dict[str, Any]) -> None:
        self.stamps.append(time.perf_counter())


def _train_epochs(config: TrainConfig, data: Any, name: str, interval: float) -> list[float]:
    """Per-epoch wall times of train() into a fresh folder (the first epoch left out)."""
    clock = _EpochClock()
    pm = new_plugin_manager(MetricsFile(), Progress(io.StringIO()), clock)
    with tempfile.TemporaryDirectory(prefix="bench_compare-") as out:
        train(
            config, data, name=name, out_dir=out, plugin_manager=pm,
            checkpoint_interval=interval,
        )  # fmt: skip
    return list(np.diff(clock.stamps))


def _parts(config: TrainConfig, data: Any, backend: Any) -> dict[str, Callable[[], Any]]:
    """The parts of one epoch as callables on one net (each call trains or evaluates it)."""
    xp = backend.xp
    net, opt = _net_and_optimizer(
        config, data, backend, sgd_kernel(new_plugin_manager(), backend.xp)
    )
    dtype = getattr(xp, config.dtype)
    arrays = (
        xp.asarray(data.x_train, dtype=dtype),
        xp.asarray(data.y_train),
        xp.asarray(data.x_test, dtype=dtype),
        xp.asarray(data.y_test),
    )
    folder = tempfile.mkdtemp(prefix="bench_compare-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = Path(folder) / "checkpoint.npz"
    meta = {"epoch": 1, "config": config.to_dict(), "history": []}

    def steps() -> None:
        _steps(net, opt, config, 0, config.lr, arrays[0], arrays[1])

    def evaluation() -> None:
        for c in (_correct(net, *arrays[:2]), _correct(net, *arrays[2:])):
            int(to_numpy(c))

    def epoch() -> None:
        _epoch(net, opt, config, 0, config.lr, arrays)

    def checkpoint() -> None:
        save_checkpoint(path, {k: to_numpy(a) for k, a in _state(net, opt, False).items()}, meta)

    return {"steps": steps, "evaluation": evaluation, "loop epoch": epoch, "checkpoint": checkpoint}


def _wall(backends: list[str], epochs: int | None, rounds: int) -> None:
    """The whole command per backend, in fresh processes, alternating."""
    times: dict[str, list[float]] = {b: [] for b in backends}
    for _ in range(rounds):
        for b in backends:
            with tempfile.TemporaryDirectory(prefix="bench_compare-") as out:
                cmd = [
                    sys.executable,
                    "-m",
                    "dropkit.experiment.cli",
                    "compare",
                    "--quiet",
                    "--backend",
                    b,
                ]
                cmd += ["--out", str(Path(out) / "run")]
                if epochs is not None:
                    cmd += ["--epochs", str(epochs)]
                start = time.perf_counter()
                done = subprocess.run(cmd, capture_output=True, text=True)
                seconds = time.perf_counter() - start
            if done.returncode != 0:
                print(f"`{' '.join(cmd[1:])}` failed ({done.returncode}):\n{done.stderr[-2000:]}")
                return
            times[b].append(seconds)
    first = backends[0]
    print(f"\n`dropkit compare --quiet` wall clock, {rounds} round(s), epochs {epochs or 300}:")
    print(f"| backend | median s | x {first} |\n|---|---:|---:|")
    for b in backends:
        ratio = statistics.median(t / f for t, f in zip(times[b], times[first], strict=True))
        print(f"| {b} | {statistics.median(times[b]):.1f} | {ratio:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=8, help="epochs per train() in a round")
    parser.add_argument(
        "--train-size", type=int, default=4000, help="(a smaller run: a smoke test)"
    )
    parser.add_argument("--wall", help="comma-separated backends: time the whole command too")
    parser.add_argument("--wall-epochs", type=int, default=None, help="(default: the command's)")
    parser.add_argument("--wall-rounds", type=int, default=1)
    parser.add_argument(
        "--scratch",
        type=Path,
        default=None,
        help="folder for the runs' temporary output folders (default: the system's temporary "
        "folder; '--scratch .' times the disk that `dropkit compare` writes runs/ to). Every "
        "folder is removed at exit",
    )
    args = parser.parse_args()
    if args.scratch is not None:
        if not args.scratch.is_dir():
            parser.error(f"--scratch {args.scratch}: no such folder")
        tempfile.tempdir = str(args.scratch)  # every TemporaryDirectory / mkdtemp below

    backend = dropkit.get_backend(args.backend)
    xp = backend.xp
    data = load_dataset("mnist1d", train_size=args.train_size)
    n = data.x_train.shape[0]
    base = TrainConfig(backend=args.backend, epochs=args.epochs)
    configs = net_configs(base)
    print(describe())
    if "cupy" in getattr(xp, "__name__", ""):
        print(f"GPU {gpu_name()}")
    print(
        f"numpy {np.__version__}, backend {backend.name}; mnist1d {n}/{data.x_test.shape[0]}, "
        f"40-{'-'.join(map(str, base.hidden))}-10, batch {base.batch_size} "
        f"({-(-n // base.batch_size)} steps an epoch); {args.rounds} rounds"
    )
    parts = {name: _parts(cfg, data, backend) for name, cfg in configs.items()}
    for fns in parts.values():  # warm up (kernels compiled, caches filled)
        for fn in fns.values():
            fn()
    cadences = {"train() epoch, default cadence": CHECKPOINT_INTERVAL, "train() epoch, every": 0.0}
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, fns in parts.items():
            for part, fn in fns.items():
                times.setdefault((name, part), []).append(_clock(fn, xp))
        for name, cfg in configs.items():
            for label, interval in cadences.items():
                times.setdefault((name, label), []).extend(_train_epochs(cfg, data, name, interval))

    columns = [*next(iter(parts.values())), *cadences]
    print("\nms per epoch (medians; checkpoint: one write)")
    print("| net | " + " | ".join(columns) + " | overhead (default) | overhead (every) |")
    print("|---|" + "---:|" * (len(columns) + 2))
    total = 0.0
    for name in configs:
        med = {c: statistics.median(times[(name, c)]) * 1e3 for c in columns}
        over = [med[c] - med["steps"] for c in cadences]
        total += med[columns[len(columns) - 2]]
        cells = [f"{med[c]:.1f}" for c in columns] + [f"{o:.1f}" for o in over]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(
        f"\nestimate for `dropkit compare` (300 epochs each): {300 * total / 1e3:.1f} s "
        "of epochs (plus start-up and the figure)"
    )
    if args.wall:
        _wall(args.wall.split(","), args.wall_epochs, args.wall_rounds)


if __name__ == "__main__":
    main()
