"""Dask: lazy, chunk by chunk, the same mask whatever the chunking, on a real local cluster."""

import os

import numpy as np
import pytest

import dropkit

da = pytest.importorskip("dask.array")


def _numpy_reference(shape, p, key):
    a = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + 1
    return a, dropkit.dropout(a, p, rng=key)


@pytest.mark.parametrize("chunks", [(7, 5, 3), (1, 40, 9), (30, 1, 1), (30, 40, 9), (4, 13, 2)])
def test_mask_does_not_depend_on_the_chunking(chunks):
    a, want = _numpy_reference((30, 40, 9), 0.4, 2**64 - 3)
    x = da.from_array(a, chunks=chunks)
    y = dropkit.dropout(x, 0.4, rng=2**64 - 3)
    assert isinstance(y, da.Array) and y.chunks == x.chunks  # lazy, same chunks
    np.testing.assert_array_equal(y.compute(), want)
    h = dropkit.relu_dropout(x - 600, 0.4, rng=5)
    np.testing.assert_array_equal(h.compute(), dropkit.relu_dropout(a - 600, 0.4, rng=5))
    dx = dropkit.dropout_backward(da.ones_like(x), 0.4, rng=2**64 - 3)
    np.testing.assert_array_equal(dx.compute() != 0, want != 0)


def test_nothing_is_computed_until_asked():
    calls = []

    def source(block, block_info=None):
        calls.append(block_info[0]["chunk-location"])
        return block

    x = da.ones((100, 100), chunks=(25, 25), dtype=np.float32).map_blocks(
        source, dtype=np.float32, meta=np.empty((0, 0), np.float32)
    )
    y = dropkit.dropout(x, 0.5, rng=1)
    assert calls == []
    y.compute()
    assert len(calls) == 16


def test_random_bits_are_lazy_and_equal_the_reference():
    b = dropkit.get_backend("dask")
    bits = b.random_bits((9, 4), 100_003, offset=4 * 2**32 - 50_000)
    assert isinstance(bits, da.Array)
    want = dropkit.get_backend("numpy").random_bits((9, 4), 100_003, offset=4 * 2**32 - 50_000)
    np.testing.assert_array_equal(bits.compute(), want)


@pytest.fixture
def restored_environ():
    """Put os.environ back: distributed's nanny writes its pre-spawn variables
    (OPENBLAS_NUM_THREADS=1, ...) into the parent process's environment."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.slow  # several processes or a training: seconds
def test_dropout_on_a_local_cluster_with_several_workers(restored_environ):
    distributed = pytest.importorskip("distributed")
    a, want = _numpy_reference((64, 50, 8), 0.3, 77)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        workers = set(client.scheduler_info()["workers"])
        assert len(workers) == 2
        with distributed.get_task_stream(client) as stream:
            got = dropkit.dropout(da.from_array(a, chunks=(16, 25, 8)), 0.3, rng=77).compute()
    np.testing.assert_array_equal(got, want)
    ran = [t for t in stream.data if isinstance(t["key"], tuple) and "chunk_dropout" in t["key"][0]]
    # each of the 8 chunks was computed by a worker process of the cluster
    assert {t["key"][1:] for t in ran} == {(i, j, 0) for i in range(4) for j in range(2)}
    assert {t["worker"] for t in ran} <= workers


def test_contiguous_chunk_detection():
    from dropkit_dask.chunks import _contiguous_start, global_indices

    shape = (6, 4, 5)
    for loc in (
        [(2, 4), (0, 4), (0, 5)],
        [(3, 4), (1, 3), (0, 5)],
        [(3, 4), (2, 3), (1, 4)],
        [(0, 6), (0, 2), (0, 5)],
        [(1, 3), (1, 3), (0, 5)],
        [(0, 6), (0, 4), (2, 3)],
    ):
        idx = global_indices(shape, loc).ravel()
        contiguous = bool(np.all(np.diff(idx) == 1))
        start = _contiguous_start(shape, loc)
        assert (start is not None) == contiguous, loc
        if contiguous:
            assert start == idx[0]
