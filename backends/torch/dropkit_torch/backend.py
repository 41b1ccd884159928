"""The loaded PyTorch backend.

The ops on tensors run in torch's own form (:mod:`dropkit_torch.functional`,
the custom op :mod:`dropkit_torch._op`), declared to the core through the
``dropout_native`` hooks. The random words: on CPU the NumPy backend's Numba
kernels on the tensor's memory; elsewhere the core's int64 formulation
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

from dropkit.registry import register_native

from . import functional, keys
from ._op import _compute, words

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
    _shared: TorchBackend | None = None

    @classmethod
    def shared(cls) -> TorchBackend:
        """The one instance the plugin loads and the core routes tensors to."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    dropout_native = staticmethod(functional.dropout)
    dropout_backward_native = staticmethod(functional.dropout_backward)
    relu_dropout_backward_native = staticmethod(functional.relu_dropout_backward)
    family_bits = staticmethod(functional.family_bits)

    def devices(self) -> list[Any]:
        """The CPU and every visible CUDA device."""
        cuda = [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
        return [torch.device("cpu"), *cuda]

    def random_bits(
        self, key: int, counter: int, n: int, *, offset: int = 0, device: Any = None
    ) -> Any:
        """Philox words of elements ``offset .. offset + n - 1`` (int64 values < 2**32)."""
        device = torch.device("cpu") if device is None else torch.device(device)
        return words(key, counter, n, device, offset=offset)

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
        """``where(word >= threshold [and x > 0], x * scale, 0)``: the custom op's kernel."""
        if not x.is_floating_point():
            return None
        seed = keys.seed_from_ints(key, counter, torch.device("cpu"))
        with torch.no_grad():
            target = torch.empty_like(x) if out is None else out
            return _compute(x, seed, tuple(x.shape), threshold, scale, relu, target)

    def __repr__(self) -> str:
        return f"<dropkit backend 'torch' (torch {torch.__version__})>"


# Route dropkit's ops on tensors to this backend without the plugin registry
# (which torch.compile cannot trace).
register_native("torch", TorchBackend.shared())
