"""dropkit under jax.jit vs dropout from jax.random.bernoulli, a new key per call.

Run:  uv run python benchmarks/bench_jax.py [--repeats R]

Both are jitted with the key as an argument (one compilation each), float32,
p = 0.5, training mode; every call gets a fresh key. The methods run in
round-robin order, one call each per round (``block_until_ready``), so machine
noise hits them alike; the table gives medians, the median of the
within-round ratios and their quartiles (at 256x512 a call takes well under a
millisecond and its time is bimodal on a shared 2-core machine, hence the many
rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from bench_torch import cpu_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--large-repeats", type=int, default=9)
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp

    import dropkit

    @jax.jit
    def ours(x: jax.Array, key: jax.Array) -> jax.Array:
        return dropkit.dropout(x, 0.5, rng=key)

    @jax.jit
    def bernoulli(x: jax.Array, key: jax.Array) -> jax.Array:
        keep = jax.random.bernoulli(key, 0.5, x.shape)
        return jnp.where(keep, x / 0.5, 0.0)

    print(f"{cpu_model()}, {os.cpu_count()} cpus; jax {jax.__version__} ({jax.devices()[0]})")
    print(
        "\n| input | dropkit µs | bernoulli µs | dropkit / bernoulli | ratio, quartiles |"
        "\n|---|---:|---:|---:|---:|"
    )
    key = jax.random.key(0)
    for shape, repeats in (((256, 512), args.repeats), ((4096, 4096), args.large_repeats)):
        x = jax.random.normal(jax.random.key(1), shape, dtype=jnp.float32)
        times: dict[str, list[float]] = {"ours": [], "bernoulli": []}
        for fn in (ours, bernoulli):  # compile, warm up
            fn(x, key).block_until_ready()
        for _ in range(repeats):
            for name, fn in (("ours", ours), ("bernoulli", bernoulli)):
                key, sub = jax.random.split(key)
                start = time.perf_counter()
                fn(x, sub).block_until_ready()
                times[name].append(time.perf_counter() - start)
        ratios = [a / b for a, b in zip(times["ours"], times["bernoulli"], strict=True)]
        low, ratio, high = statistics.quantiles(ratios, n=4)
        print(
            f"| {shape[0]}x{shape[1]} float32 | {statistics.median(times['ours']) * 1e6:.0f} | "
            f"{statistics.median(times['bernoulli']) * 1e6:.0f} | {ratio:.2f} | "
            f"{low:.2f}-{high:.2f} |"
        )


if __name__ == "__main__":
    main()
