"""One training step of the article's network, dropkit on NumPy vs PyTorch CPU, side by side.

3072-2000-800-10, batch 256, ReLU, dropout p=0.5 on both hidden layers, softmax
cross-entropy, SGD with momentum 0.9 and L2 1e-3 on the weights. Also timed:
the step's eight matrix products alone (NumPy), the floor for any NumPy step.

Run:  uv run python benchmarks/bench_train_step.py [--repeats R] [--rounds K]

Two tables: each method alone in fresh processes (the fair comparison: no
other library's threads around), and all interleaved in one process.
Optional: PyTorch CPU (``uv pip install --find-links "$PIP_FIND_LINKS" torch==2.13.0``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import pairwise

import numpy as np
from machine import describe

import dropkit
from dropkit.experiment.nn import MLP, softmax_cross_entropy
from dropkit.experiment.optim import SGD
from dropkit.experiment.plugins import new_plugin_manager, sgd_kernel

SIZES = [3072, 2000, 800, 10]
BATCH = 256


def _dropkit_step() -> Callable[[], None]:
    backend = dropkit.get_backend("numpy")
    xp = backend.xp
    net = MLP(SIZES, backend=backend, rng=dropkit.Generator(0), p_hidden=0.5)
    kernel = sgd_kernel(new_plugin_manager(), xp)  # the application's fused step, if offered
    opt = SGD(
        xp, net.params, momentum=0.9, weight_decay=1e-3, decay=net.decay_mask(), kernel=kernel
    )
    rs = np.random.default_rng(0)
    x = rs.standard_normal((BATCH, SIZES[0]), dtype=np.float32)
    y = rs.integers(0, 10, BATCH)

    def step() -> None:
        _, dlogits = softmax_cross_entropy(xp, net.forward(x, training=True), y)
        opt.step(net.backward(dlogits), 1e-3)

    return step


def _matmuls_only() -> Callable[[], None]:
    rs = np.random.default_rng(0)
    x = rs.standard_normal((BATCH, SIZES[0]), dtype=np.float32)
    ws = [rs.standard_normal((a, b), dtype=np.float32) for a, b in pairwise(SIZES)]
    h1, h2 = np.ones((BATCH, 2000), np.float32), np.ones((BATCH, 800), np.float32)
    d3, d2, d1 = (np.ones((BATCH, n), np.float32) for n in (10, 800, 2000))

    def step() -> None:
        x @ ws[0], h1 @ ws[1], h2 @ ws[2]  # forward
        h2.T @ d3, d3 @ ws[2].T, h1.T @ d2, d2 @ ws[1].T, x.T @ d1  # backward

    return step


def _torch_step() -> Callable[[], None] | None:
    try:
        import torch
    except ImportError:
        print("torch not installed: PyTorch row skipped")
        return None
    torch.manual_seed(0)
    layers = [torch.nn.Linear(a, b) for a, b in pairwise(SIZES)]
    model = torch.nn.Sequential(
        layers[0],
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        layers[1],
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        layers[2],
    )
    weights = [lin.weight for lin in layers]
    biases = [lin.bias for lin in layers]
    opt = torch.optim.SGD(
        [{"params": weights, "weight_decay": 1e-3}, {"params": biases, "weight_decay": 0.0}],
        lr=1e-3,
        momentum=0.9,
    )
    x = torch.randn(BATCH, SIZES[0])
    y = torch.randint(0, 10, (BATCH,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def _methods(names: list[str] | None = None) -> dict[str, Callable[[], None]]:
    factories: dict[str, Callable[[], Callable[[], None] | None]] = {
        "dropkit step (numpy)": _dropkit_step,
        "matrix products only (numpy)": _matmuls_only,
        "PyTorch CPU step": _torch_step,
    }
    made = {name: make() for name, make in factories.items() if names is None or name in names}
    return {name: fn for name, fn in made.items() if fn is not None}


def _time(methods: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[float]]:
    """Warm up, then time the methods round by round (one call of each per round)."""
    for fn in methods.values():
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def _isolated(repeats: int, rounds: int) -> list[dict[str, list[float]]]:
    """Each method alone in a fresh process, ``rounds`` times, order rotated each round.

    Interleaving in one process is fair to machine noise but not to thread
    pools: NumPy's OpenBLAS workers spin for a while after each product and
    take cores from whatever runs next (measured: the PyTorch step ran about 2x
    slower interleaved with NumPy's products than alone). Processes run one
    after another, so the machine's drift is handled by taking ratios within
    each round (adjacent processes) and reporting their median.
    """
    names = list(_methods())
    per_round = []
    for r in range(rounds):
        times: dict[str, list[float]] = {}
        for name in names[r % len(names) :] + names[: r % len(names)]:
            cmd = [sys.executable, __file__, "--only", name, "--repeats", str(repeats)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            times[name] = json.loads(out.splitlines()[-1])[name]
        per_round.append(times)
    return per_round


def _table(title: str, rounds: list[dict[str, list[float]]]) -> None:
    """Median ms over every step; ratios: median over rounds of within-round ratios."""
    names = list(rounds[0])

    def ratio(name: str, ref: str) -> float:
        return statistics.median(
            statistics.median(r[name]) / statistics.median(r[ref]) for r in rounds
        )

    torch_name, mm = "PyTorch CPU step", "matrix products only (numpy)"
    print(f"\n{title}\n| step | median ms | x PyTorch | x matmuls only |\n|---|---:|---:|---:|")
    for name in names:
        t = statistics.median(x for r in rounds for x in r[name])
        vs = f"{ratio(name, torch_name):.2f}" if torch_name in names else "n/a"
        print(f"| {name} | {t * 1e3:.1f} | {vs} | {ratio(name, mm):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="isolated processes per method")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # one method, JSON out (internal)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(_time(_methods([args.only]), args.repeats)))
        return
    try:
        import torch

        versions = f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        versions = ""
    print(describe())
    print(
        f"numpy {np.__version__}{versions}; {'-'.join(map(str, SIZES))}, batch {BATCH}, "
        "dropout 0.5 on both hidden layers; target: dropkit step <= 0.9x PyTorch CPU"
    )
    _table(
        "each method alone in its own process (the fair comparison):",
        _isolated(args.repeats // args.rounds + 1, args.rounds),
    )
    _table(
        "interleaved in one process (thread pools interfere):", [_time(_methods(), args.repeats)]
    )


if __name__ == "__main__":
    main()
