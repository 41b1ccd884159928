"""Dropout on a Dask array larger than any chunk budget: lazy, chunk by chunk, bounded memory.

A 1 GiB float32 array (2**28 elements) that is never materialised: generated
chunk by chunk (16 MiB chunks), dropped out, and reduced. The process's peak
resident memory is compared with the array's size, and the result with the
same computation done on one chunk at a time by the NumPy backend (same mask,
since the counter is the global element index).

Run:  uv run python benchmarks/bench_dask_out_of_core.py [--log2-size 28]
"""

from __future__ import annotations

import argparse
import resource
import time

import dask
import dask.array as da
import numpy as np

import dropkit


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2-size", type=int, default=28)
    parser.add_argument("--log2-chunk", type=int, default=22)
    args = parser.parse_args()
    n, chunk = 1 << args.log2_size, 1 << args.log2_chunk
    x = da.arange(n, chunks=chunk, dtype=np.float32) % 7 - 3  # lazy, never whole in memory
    before = _peak_rss_mib()
    start = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=2):
        total = float(dropkit.dropout(x, 0.5, rng=42).sum(dtype=np.float64).compute())
    seconds = time.perf_counter() - start
    peak = _peak_rss_mib()
    # the same sum, one chunk at a time with the NumPy backend, from the global offsets
    check = 0.0
    b = dropkit.get_backend("numpy")
    t = dropkit.keep_threshold(0.5)
    for lo in range(0, n, chunk):
        a = (np.arange(lo, lo + chunk, dtype=np.float32) % 7 - 3).astype(np.float32)
        keep = b.random_bits((42, 0), chunk, offset=lo) >= t
        check += float(np.where(keep, a * np.float32(2.0), np.float32(0)).sum(dtype=np.float64))
    gib = n * 4 / 2**30
    print(
        f"array: {n} float32 = {gib:.2f} GiB in {n // chunk} chunks of {chunk * 4 / 2**20:.0f} MiB"
    )
    print(f"dropout + sum on Dask (2 threads): {seconds:.1f} s")
    print(
        f"peak resident memory: {peak:.0f} MiB (before: {before:.0f} MiB); "
        f"the array alone would take {n * 4 / 2**20:.0f} MiB"
    )
    print(f"sum {total:.1f}; chunk-by-chunk NumPy reference {check:.1f}; equal: {total == check}")


if __name__ == "__main__":
    main()
