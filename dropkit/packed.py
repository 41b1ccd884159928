"""1-bit packed dropout masks: 8x smaller than a boolean mask, in array-API operations.

For callers who want to keep a mask rather than regenerate it from the
generator state. Bit ``k`` of byte ``i`` is element ``8 * i + k`` of the
flattened mask (NumPy's ``packbits(..., bitorder="little")`` layout).

Examples
--------
>>> import numpy as np
>>> mask = np.array([[True, False, True], [True, True, False]])
>>> packed = pack_mask(mask)
>>> packed.bits.tolist(), packed.shape, packed.nbytes
([29], (2, 3), 1)
>>> bool(np.all(unpack_mask(packed) == mask))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import array_api_compat

from .checks import namespace_of

__all__ = ["PackedMask", "pack_mask", "unpack_mask"]


@dataclass(frozen=True)
class PackedMask:
    """A boolean mask stored as bits.

    Attributes
    ----------
    bits : array of uint8
        ``ceil(n / 8)`` bytes, little-endian bit order.
    shape : tuple of int
        Shape of the unpacked mask.
    """

    bits: Any
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        """Bytes of storage."""
        return int(self.bits.shape[0])


def pack_mask(mask: Any) -> PackedMask:
    """Pack a boolean mask into bits (on the mask's own namespace and device)."""
    xp = namespace_of(mask, "mask")
    if mask.dtype != xp.bool:
        raise TypeError(f"mask must be a boolean array, got dtype {mask.dtype}")
    n = math.prod(mask.shape)
    flat = xp.reshape(xp.astype(mask, xp.uint8), (-1,))
    pad = -n % 8
    if pad:
        flat = xp.concat(
            [flat, xp.zeros((pad,), dtype=xp.uint8, device=array_api_compat.device(mask))]
        )
    weights = xp.asarray(
        [1, 2, 4, 8, 16, 32, 64, 128], dtype=xp.uint8, device=array_api_compat.device(mask)
    )
    bits = xp.sum(xp.reshape(flat, (-1, 8)) * weights, axis=1, dtype=xp.uint8)
    return PackedMask(bits, tuple(int(s) for s in mask.shape))


def unpack_mask(packed: PackedMask) -> Any:
    """The boolean mask back from its bits.

    Raises
    ------
    TypeError
        ``packed`` is not a :class:`PackedMask` (or its bits are not an array).
    ValueError
        The number of bytes does not match ``ceil(prod(shape) / 8)``.
    """
    if not isinstance(packed, PackedMask):
        raise TypeError(
            f"packed must be a PackedMask (from return_mask='packed' or pack_mask), got "
            f"{type(packed).__name__}"
        )
    bits = packed.bits
    xp = namespace_of(bits, "packed.bits")
    need = -(-math.prod(packed.shape) // 8)
    if len(bits.shape) != 1 or bits.shape[0] != need:
        raise ValueError(
            f"packed.bits must be {need} bytes for a mask of shape {tuple(packed.shape)}, got "
            f"bits of shape {tuple(bits.shape)}; the bits and the shape do not belong together"
        )
    shifts = xp.arange(8, dtype=xp.uint8, device=array_api_compat.device(bits))
    flat = xp.reshape((bits[:, None] >> shifts[None, :]) & 1, (-1,))
    n = math.prod(packed.shape)
    return xp.reshape(xp.astype(flat[:n], xp.bool), packed.shape)
