"""The loaded PyTorch backend: namespace, devices, and the primitive in torch's own form.

The ops on tensors reduce, in the core, to this backend's ``draw`` (keys from
torch's generator) and ``mask_scale`` (the registered custom op
:mod:`dropkit_torch._op`), both in :mod:`dropkit_torch.functional`. The random
words: on CPU the NumPy backend's Numba kernels on the tensor's memory; on
CUDA this package's CUDA path (:mod:`dropkit_torch.cuda`, CuPy's kernels where
CuPy is installed); elsewhere the core's int64 formulation
(:func:`dropkit.philox.random_bits` with ``int64=True``), because PyTorch 2.13
implements neither ``>>``, ``+``, ``>=`` nor ``arange`` for uint32 on CPU.
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

from . import functional

__all__ = ["TorchBackend"]


class TorchBackend:
    """Torch tensors on the CPU and on every visible CUDA device.

    Examples
    --------
    >>> b = TorchBackend()
    >>> int(b.random_bits((0, 0), 1)[0]) == 0x6627E8D5
    True
    """

    name = "torch"
    xp = xp

    draw = staticmethod(functional.draw)
    random_bits = staticmethod(functional.random_bits)
    mask_scale = staticmethod(functional.mask_scale)

    def devices(self) -> list[Any]:
        """The CPU and every visible CUDA device."""
        cuda = [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
        return [torch.device("cpu"), *cuda]

    def __repr__(self) -> str:
        return f"<dropkit backend 'torch' (torch {torch.__version__})>"
