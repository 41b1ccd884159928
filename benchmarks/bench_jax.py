"""dropkit under jax.jit vs dropout from jax.random.bernoulli: forward and training.

Run:  uv run python benchmarks/bench_jax.py [--repeats R] [--large-repeats R] [--no-modules]

Every function is jitted with the key as an argument (one compilation each), p
= 0.5, and every call gets a fresh key. Rows:

- forward: ``dropout(x)`` against ``where(bernoulli(key, 0.5, shape), x / 0.5, 0)``;
- training: ``jit(value_and_grad(loss))`` with ``loss = sum(dropout(x) ** 2)``
  (float32 accumulation), the same loss through bernoulli dropout beside it;
- backward (second table): the training row's dropkit function with the packed
  mask kept for the backward against the same traced with
  ``dropkit_jax.keep.KEEP_PACKED_MAX = 0`` (the mask regenerated), the choice
  the backend makes by size;
- module steps (with Flax and Equinox installed): a training step (forward,
  gradient, SGD update) of a 512-512-10 MLP with ReLU and dropout, batch 256,
  with dropkit's module against the framework's own ``Dropout``.

The two methods of a row run in round-robin order, one call each per round
(``block_until_ready``), so machine noise hits them alike; the table gives
medians, the median of the within-round ratios and their quartiles (a call here
takes well under a millisecond and its time is bimodal on a shared 2-core
machine, hence the many rounds).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from machine import describe

Pair = tuple[Callable[[Any], Any], Callable[[Any], Any]]


def _race(ours: Callable[[Any], Any], theirs: Callable[[Any], Any], repeats: int) -> str:
    """Median µs of each and the within-round ratios' median and quartiles, as table cells."""
    import jax

    key = jax.random.key(0)
    for fn in (ours, theirs):  # compile, warm up
        jax.block_until_ready(fn(key))
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, sink in ((ours, times[0]), (theirs, times[1])):
            key, sub = jax.random.split(key)
            start = time.perf_counter()
            jax.block_until_ready(fn(sub))
            sink.append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(*times, strict=True)]
    low, ratio, high = statistics.quantiles(ratios, n=4)
    a, b = (statistics.median(t) * 1e6 for t in times)
    return f"{a:,.0f} | {b:,.0f} | {ratio:.2f} | {low:.2f}-{high:.2f}"


def _dropout_pairs(shape: tuple[int, int], dtype: Any, train: bool) -> Pair:
    import jax
    import jax.numpy as jnp

    import dropkit

    def ours(x: jax.Array, key: jax.Array) -> jax.Array:
        return dropkit.dropout(x, 0.5, rng=key)

    def bernoulli(x: jax.Array, key: jax.Array) -> jax.Array:
        keep = jax.random.bernoulli(key, 0.5, x.shape)
        return jnp.where(keep, x / jnp.asarray(0.5, x.dtype), jnp.zeros((), x.dtype))

    x = jax.random.normal(jax.random.key(1), shape, dtype=dtype)
    fns = []
    for drop in (ours, bernoulli):
        if train:

            def loss(t: jax.Array, key: jax.Array, drop: Any = drop) -> jax.Array:
                return jnp.sum(drop(t, key).astype(jnp.float32) ** 2)

            fn = jax.jit(jax.value_and_grad(loss))
        else:
            fn = jax.jit(drop)
        fns.append(lambda key, fn=fn: fn(x, key))
    return fns[0], fns[1]


def _kept_regenerated_pair(shape: tuple[int, int]) -> Pair:
    import jax
    import jax.numpy as jnp
    from dropkit_jax import keep

    import dropkit

    def loss(t: jax.Array, key: jax.Array) -> jax.Array:
        return jnp.sum(dropkit.dropout(t, 0.5, rng=key) ** 2)

    x = jax.random.normal(jax.random.key(1), shape, dtype=jnp.float32)
    limit = keep.KEEP_PACKED_MAX
    fns = []
    try:
        for keep_up_to in (max(limit, x.size), 0):
            keep.KEEP_PACKED_MAX = keep_up_to  # read when tracing: the first call below
            fn = jax.jit(jax.value_and_grad(loss))
            jax.block_until_ready(fn(x, jax.random.key(0)))
            fns.append(lambda key, fn=fn: fn(x, key))
    finally:
        keep.KEEP_PACKED_MAX = limit
    return fns[0], fns[1]


def _nnx_pair(batch: int) -> Pair:
    import jax
    import jax.numpy as jnp
    from dropkit_jax.nnx import Dropout
    from flax import nnx

    def make(drop: Callable[[], nnx.Module]) -> Callable[[Any], Any]:
        class MLP(nnx.Module):
            def __init__(self, rngs: nnx.Rngs) -> None:
                self.hidden = nnx.Linear(512, 512, rngs=rngs)
                self.drop = drop()
                self.out = nnx.Linear(512, 10, rngs=rngs)

            def __call__(self, x: jax.Array, key: jax.Array) -> jax.Array:
                return self.out(self.drop(jax.nn.relu(self.hidden(x)), rngs=key))

        model = MLP(nnx.Rngs(0))

        @nnx.jit
        def step(model: MLP, x: jax.Array, key: jax.Array) -> jax.Array:
            loss, grads = nnx.value_and_grad(lambda m: (m(x, key) ** 2).mean())(model)
            params = nnx.state(model, nnx.Param)
            nnx.update(model, jax.tree.map(lambda p, g: p - 0.01 * g, params, grads))
            return loss

        x = jax.random.normal(jax.random.key(2), (batch, 512), dtype=jnp.float32)
        return lambda key: step(model, x, key)

    return make(lambda: Dropout(0.5)), make(lambda: nnx.Dropout(0.5))


def _equinox_pair(batch: int) -> Pair:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    from dropkit_jax.equinox import Dropout

    def make(drop: Any) -> Callable[[Any], Any]:
        class MLP(eqx.Module):
            hidden: eqx.nn.Linear
            drop: Any
            out: eqx.nn.Linear

            def __init__(self, key: jax.Array) -> None:
                k1, k2 = jax.random.split(key)
                self.hidden = eqx.nn.Linear(512, 512, key=k1)
                self.drop = drop
                self.out = eqx.nn.Linear(512, 10, key=k2)

            def __call__(self, x: jax.Array, key: jax.Array) -> jax.Array:
                h = self.drop(jax.nn.relu(jax.vmap(self.hidden)(x)), key=key)
                return jax.vmap(self.out)(h)

        @eqx.filter_jit
        def step(model: MLP, x: jax.Array, key: jax.Array) -> tuple[MLP, jax.Array]:
            loss, grads = eqx.filter_value_and_grad(lambda m: (m(x, key) ** 2).mean())(model)
            return eqx.apply_updates(model, jax.tree.map(lambda g: -0.01 * g, grads)), loss

        box = {"model": MLP(jax.random.key(0))}
        x = jax.random.normal(jax.random.key(2), (batch, 512), dtype=jnp.float32)

        def run(key: Any) -> Any:
            box["model"], loss = step(box["model"], x, key)
            return loss

        return run

    return make(Dropout(0.5)), make(eqx.nn.Dropout(0.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--large-repeats", type=int, default=9)
    parser.add_argument("--no-modules", action="store_true", help="skip the NNX / Equinox steps")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp

    print(f"{describe()}; jax {jax.__version__} ({jax.devices()[0]})")
    print(
        "\n| row | input | dropkit µs | bernoulli µs | dropkit / bernoulli | ratio, quartiles |"
        "\n|---|---|---:|---:|---:|---:|",
        flush=True,
    )
    rows: list[tuple[str, str, Pair, int]] = []
    for shape, repeats in (((256, 512), args.repeats), ((4096, 4096), args.large_repeats)):
        pair = _dropout_pairs(shape, jnp.float32, train=False)
        rows.append(("forward", f"{shape[0]}x{shape[1]} float32", pair, repeats))
    for dtype in (jnp.float32, jnp.bfloat16):
        for shape in ((128, 512), (256, 512), (1024, 512)):
            pair = _dropout_pairs(shape, dtype, train=True)
            rows.append(("training", f"{shape[0]}x{shape[1]} {dtype.__name__}", pair, args.repeats))
    for label, name, build in (
        ("NNX step", "flax", _nnx_pair),
        ("Equinox step", "equinox", _equinox_pair),
    ):
        if args.no_modules:
            break
        try:
            pair = build(256)
        except ImportError as exc:
            print(f"({label} skipped: {exc})")
            continue
        rows.append((label, f"MLP 512-512-10, batch 256 (vs {name}'s Dropout)", pair, args.repeats))
    for row, what, (ours, theirs), repeats in rows:
        print(f"| {row} | {what} | {_race(ours, theirs, repeats)} |", flush=True)
    print(
        "\n| training, float32 | mask kept µs | regenerated µs | kept / regenerated "
        "| ratio, quartiles |\n|---|---:|---:|---:|---:|",
        flush=True,
    )
    for shape, repeats in (((256, 512), args.repeats), ((2048, 2048), args.large_repeats * 4)):
        pair = _kept_regenerated_pair(shape)
        print(f"| {shape[0]}x{shape[1]} | {_race(*pair, repeats)} |", flush=True)


if __name__ == "__main__":
    main()
