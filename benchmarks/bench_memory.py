"""Peak memory of one training step of the article's network, by how the dropout mask is kept.

3072-2000-800-10, batch 256, ReLU, dropout p=0.5 on both hidden layers, SGD with
momentum (velocities preallocated). The strategies differ only in what the
forward pass keeps for the backward pass:

- article float64 mask: ``(ranf(shape) < keep) / keep``, 8 bytes per unit;
- bool mask: 1 byte per unit;
- packed mask: 1 bit per unit (``dropkit.pack_mask``);
- regeneration: nothing (dropkit's ``relu_dropout``: the backward pass needs
  only the layer's output).

Memory is measured with ``tracemalloc`` (NumPy reports its array allocations
to it): the peak during the step above what existed before it (parameters,
velocities, input). Run:  uv run python benchmarks/bench_memory.py
"""

from __future__ import annotations

import tracemalloc
from itertools import pairwise

import numpy as np

import dropkit

SIZES = [3072, 2000, 800, 10]
BATCH, P = 256, 0.5
STRATEGIES = ("article float64 mask", "bool mask", "packed mask (1 bit)", "regeneration")


def _draw(strategy: str, z: np.ndarray, g: dropkit.Generator) -> tuple[np.ndarray, object]:
    """ReLU + dropout of z (in place); returns (h, what is kept for backward)."""
    if strategy == "regeneration":
        return dropkit.relu_dropout(z, P, rng=g, inplace=True), None
    np.maximum(z, 0, out=z)
    if strategy == "article float64 mask":
        mask = (np.random.ranf(z.shape) < 1 - P) / (1 - P)
        z *= mask
        return z, mask
    keep = dropkit.dropout_mask(z.shape, P, rng=g)
    z *= np.where(keep, np.float32(1 / (1 - P)), np.float32(0))
    return z, (dropkit.pack_mask(keep) if strategy.startswith("packed") else keep)


def _undo(strategy: str, dh: np.ndarray, h: np.ndarray, kept: object) -> np.ndarray:
    """Backward of ReLU + dropout from what the forward pass kept."""
    if strategy == "regeneration":
        return dropkit.relu_dropout_backward(dh, h, P)
    if strategy == "article float64 mask":
        return (dh * kept * (h > 0)).astype(np.float32)
    keep = dropkit.unpack_mask(kept) if strategy.startswith("packed") else kept
    return np.where(keep & (h > 0), dh * np.float32(1 / (1 - P)), np.float32(0))


def measure(strategy: str) -> tuple[int, int]:
    rs = np.random.default_rng(0)
    params = []
    for a, b in pairwise(SIZES):
        params += [
            rs.standard_normal((a, b), dtype=np.float32) * np.float32((2 / a) ** 0.5),
            np.zeros(b, np.float32),
        ]
    velocity = [np.zeros_like(p) for p in params]
    x = rs.standard_normal((BATCH, SIZES[0]), dtype=np.float32)
    y = rs.integers(0, 10, BATCH)
    g = dropkit.Generator(0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    hs, kept = [x], []
    for i in range(3):
        z = hs[-1] @ params[2 * i]
        z += params[2 * i + 1]
        if i < 2:
            z, k = _draw(strategy, z, g)
            kept.append(k)
        hs.append(z)
    kept_bytes = sum(k.nbytes for k in kept if k is not None)
    logits = hs[-1]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    delta = e / e.sum(axis=1, keepdims=True)
    delta[np.arange(BATCH), y] -= 1
    delta /= BATCH
    for i in reversed(range(3)):
        gw, gb = hs[i].T @ delta, delta.sum(axis=0)
        if i > 0:
            delta = _undo(strategy, delta @ params[2 * i].T, hs[i], kept[i - 1])
        for j, grad in ((2 * i, gw), (2 * i + 1, gb)):
            velocity[j] *= 0.9
            velocity[j] += grad
            params[j] -= 1e-3 * velocity[j]
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    return peak, kept_bytes


def main() -> None:
    print(f"{'-'.join(map(str, SIZES))}, batch {BATCH}, p={P}; peak above the step's start")
    print("| mask kept for backward | kept bytes | peak MiB during step |\n|---|---:|---:|")
    for strategy in STRATEGIES:  # warm-up: load compiled kernels, fill caches
        measure(strategy)
    for strategy in STRATEGIES:
        peak, kept = min(measure(strategy) for _ in range(3))
        print(f"| {strategy} | {kept:,} | {peak / 2**20:.2f} |")


if __name__ == "__main__":
    main()
