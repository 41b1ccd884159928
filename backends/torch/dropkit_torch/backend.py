"""The loaded PyTorch backend.

PyTorch 2.13 on CPU implements neither ``>>``, ``+``, ``>=`` nor ``arange`` for
uint32, so the Philox words are computed with the core's int64 formulation
(:func:`dropkit.philox.random_bits` with ``int64=True``): the same values, as
int64. Dropout is one expression on the tensor's own device: words, compare,
``where``.
"""

from __future__ import annotations

from typing import Any

try:
    import torch
except ImportError as exc:  # pragma: no cover - depends on the machine
    raise ImportError(
        "PyTorch is not installed; install the build you want, e.g. the CPU wheel: "
        "pip install torch --index-url https://download.pytorch.org/whl/cpu"
    ) from exc

import array_api_compat.torch as xp

from dropkit import philox

__all__ = ["TorchBackend"]


class TorchBackend:
    """Torch tensors on the CPU and on every visible CUDA device.

    Examples
    --------
    >>> b = TorchBackend()
    >>> int(b.random_bits(0, 0, 1)[0]) == 0x6627E8D5
    True
    """

    name = "torch"
    xp = xp

    def devices(self) -> list[Any]:
        """The CPU and every visible CUDA device."""
        cuda = [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
        return [torch.device("cpu"), *cuda]

    def random_bits(
        self, key: int, counter: int, n: int, *, offset: int = 0, device: Any = None
    ) -> Any:
        """Philox words of elements ``offset .. offset + n - 1`` (int64 values < 2**32)."""
        return philox.random_bits(xp, key, counter, n, offset=offset, device=device, int64=True)

    def dropout_fused(
        self,
        x: Any,
        key: int,
        counter: int,
        threshold: int,
        scale: float,
        *,
        relu: bool = False,
        out: Any = None,
    ) -> Any:
        """``where(word >= threshold [and x > 0], x * scale, 0)`` on ``x``'s device."""
        if not x.is_floating_point():
            return None
        words = self.random_bits(key, counter, x.numel(), device=x.device).reshape(x.shape)
        keep = words >= threshold
        if relu:
            keep &= x > 0
        factor = torch.tensor(scale, dtype=x.dtype, device=x.device)  # rounded, as in NumPy
        y = torch.where(keep, x * factor, torch.zeros((), dtype=x.dtype, device=x.device))
        if out is None:
            return y
        out.copy_(y)
        return out

    def __repr__(self) -> str:
        return f"<dropkit backend 'torch' (torch {torch.__version__})>"
