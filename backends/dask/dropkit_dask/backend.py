"""The loaded Dask backend: lazy Philox words and chunk-wise ``mask_scale``.

Nothing is computed until the result is: ``dropout`` on a Dask array returns a
Dask array with the input's chunks, each chunk computed by
:func:`dropkit_dask.chunks.chunk_dropout` on whichever worker holds it (local
threads, or a ``dask.distributed`` cluster). The counter is the global element
index, so the mask equals the unchunked array's, whatever the chunking.
"""

from __future__ import annotations

from typing import Any

try:
    import dask.array as da
except ImportError as exc:  # pragma: no cover - depends on the machine
    raise ImportError("Dask is not installed: pip install 'dask[array]'") from exc

import array_api_compat.dask.array as xp
import numpy as np

from .chunks import chunk_dropout, chunk_words

__all__ = ["DaskBackend"]


class DaskBackend:
    """Dask arrays of NumPy chunks.

    Examples
    --------
    >>> b = DaskBackend()
    >>> int(b.random_bits((0, 0), 1).compute()[0]) == 0x6627E8D5
    True
    """

    name = "dask"
    xp = xp

    def devices(self) -> list[Any]:
        """Dask arrays here live on the CPU (of whichever worker)."""
        return ["cpu"]

    def random_bits(
        self, draw: tuple[int, int], n: int, *, offset: int = 0, device: Any = None
    ) -> Any:
        """Lazy uint32 words of elements ``offset .. offset + n - 1`` of ``(key, counter)``."""
        key, counter = draw
        idx = da.arange(offset, offset + n, dtype=np.int64, chunks="auto")
        return idx.map_blocks(chunk_words, key, counter, dtype=np.uint32)

    def mask_scale(
        self,
        x: Any,
        draw: tuple[int, int] | None,
        *,
        noise_shape: tuple[int, ...],
        threshold: int,
        scale: float,
        relu: Any = False,
        out: Any = None,
    ) -> Any:
        """Lazy chunk-wise element-wise (ReLU-)dropout with the input's chunks.

        Declines (None) in-place requests, broadcast masks, the backward's
        gate and calls that draw nothing: the core's reference serves those.
        """
        if (
            draw is None
            or out is not None
            or (relu is not True and relu is not False)
            or tuple(noise_shape) != tuple(x.shape)
            or x.dtype.kind != "f"
        ):
            return None
        key, counter = draw
        return x.map_blocks(
            chunk_dropout, key, counter, threshold, scale, relu, dtype=x.dtype, meta=x._meta
        )

    def __repr__(self) -> str:
        import dask

        return f"<dropkit backend 'dask' (dask {dask.__version__})>"
