"""The kernels' arguments and launch sizes, computed without CuPy.

Both the CuPy launcher (:mod:`dropkit_cupy.kernels`) and the host harness
(:mod:`dropkit_cupy.host`) build every call's arguments here, so the argument
types (NumPy scalars of the kernels' exact C types: CuPy passes a NumPy scalar
by its own size, a Python ``int`` as 8 bytes and a ``float`` as a double),
the flags and the scale encodings are tested on the host against the C
signatures in :data:`dropkit_cupy.kernels_src.KERNEL_SOURCE`.

Examples
--------
>>> name, args = dropout_call("float32", "X", "Y", 10, 7, 0, 2**31, 2.0, 2.0, relu=True, vec=True)
>>> name, [type(a).__name__ for a in args[2:6]]
('dk_dropout_f32', ['int64', 'float32', 'int32', 'uint32'])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dropkit.backend import split_broadcast
from dropkit.philox import split64

from .kernels_src import (
    DK_DECAY,
    DK_MOMENTUM,
    DK_NESTEROV,
    DK_RELU,
    DK_SCALE,
    DK_VEC,
)

__all__ = [
    "ALIGNMENT",
    "BLOCKS_PER_SM",
    "KINDS",
    "NULL",
    "SIGNATURES",
    "THREADS",
    "DropoutArgs",
    "bf16_round",
    "bits_call",
    "dropout_call",
    "grid_size",
    "keep_mask_call",
    "key_words",
    "masked_call",
    "relu_backward_call",
    "relu_backward_fixed",
    "scale_arg",
    "sgd_call",
    "sgd_fixed",
    "split_broadcast",
]

#: Threads per block of every launch.
THREADS = 256
#: Grid-stride loops launch at most this many blocks per multiprocessor.
BLOCKS_PER_SM = 16

#: dtype name -> kernel suffix.
KINDS = {"float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16"}
#: Bytes of alignment the vector path needs (one Philox block of 4 values).
ALIGNMENT = {"f32": 16, "f64": 16, "f16": 8, "bf16": 8}

_P, _I32, _I64, _U32, _U64, _F32, _F64 = "ptr", "i32", "i64", "u32", "u64", "f32", "f64"
_PHILOX = (*(_U32,) * 5, _P)  # threshold, k0, k1, c2, c3, seed (NULL: use k0 .. c3)
_SCALE = {"f32": _F32, "f64": _F64, "f16": _U32, "bf16": _F32}

#: C parameter types of every kernel, in order (checked against the source by the tests).
SIGNATURES: dict[str, tuple[str, ...]] = {
    "dk_bits": (_P, _U64, _I64, _I32, _U32, _U32, _U32, _U32),
    "dk_keep_mask": (_P, _I64, _I32, *_PHILOX),
    **{f"dk_dropout_{k}": (_P, _P, _I64, s, _I32, *_PHILOX) for k, s in _SCALE.items()},
    **{f"dk_masked_{k}": (_P, _P, _P, _I64, _I64, _I64, s, _I32) for k, s in _SCALE.items()},
    **{f"dk_relu_backward_{k}": (_P, _P, _P, _I64, s, _I32) for k, s in _SCALE.items()},
    "dk_sgd_f32": (_P, _P, _P, _I64, _F32, _F32, _F32, _I32),
    "dk_sgd_f64": (_P, _P, _P, _I64, _F64, _F64, _F64, _I32),
}


def grid_size(work: int, sms: int) -> int:
    """Blocks of :data:`THREADS` for ``work`` items: one item per thread, capped.

    Examples
    --------
    >>> grid_size(1000, 132), grid_size(10**9, 132)
    (4, 2112)
    """
    return max(1, min(-(-work // THREADS), BLOCKS_PER_SM * sms))


def bf16_round(value: float) -> float:
    """``value`` rounded to bfloat16 as PyTorch rounds it: to float32, then to nearest-even.

    Examples
    --------
    >>> bf16_round(1.0 + 2**-8), bf16_round(1.0 + 3 * 2**-9)
    (1.0, 1.0078125)
    """
    bits = int(np.array(value, dtype=np.float32).view(np.uint32))
    if (bits & 0x7FFFFFFF) > 0x7F800000:
        return float("nan")
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return float(np.array(bits & 0xFFFFFFFF, dtype=np.uint32).view(np.float32))


def scale_arg(kind: str, rounded: float) -> np.generic:
    """The kernel argument for a scale already rounded to the dtype.

    float16 kernels take the 16-bit pattern in a ``uint32``; bfloat16 kernels
    the value as a float32 (exact).

    Examples
    --------
    >>> hex(int(scale_arg("f16", 2.0)))
    '0x4000'
    """
    if kind == "f16":
        return np.uint32(np.float16(rounded).view(np.uint16))
    return np.float64(rounded) if kind == "f64" else np.float32(rounded)


#: A NULL pointer argument: 8 zero bytes (CuPy passes a NumPy scalar by its size).
NULL = np.uint64(0)


_MASK32 = 0xFFFFFFFF
_ZERO = np.uint32(0)
#: key -> its two words, so that a generator's stream (one key, counters that
#: advance) builds one NumPy scalar per call for its words, not four.
_KEYS: dict[int, tuple[np.uint32, np.uint32]] = {}


def key_words(key: int, counter: int) -> tuple[np.uint32, ...]:
    """The draw's four ``uint32`` words ``(k0, k1, c2, c3)`` (low word first).

    Examples
    --------
    >>> [int(w) for w in key_words(2**32 + 5, 7)]
    [5, 1, 7, 0]
    """
    words = _KEYS.get(key)
    if words is None:
        if len(_KEYS) >= 1024:  # a bound, for processes that draw from many keys
            _KEYS.clear()
        k0, k1 = split64(key)
        words = _KEYS[key] = (np.uint32(k0), np.uint32(k1))
    high = counter >> 32
    return (*words, np.uint32(counter & _MASK32), np.uint32(high) if high else _ZERO)


class DropoutArgs:
    """The fused dropout's arguments, what one dtype, threshold, scale and ReLU fix made once.

    ``scale`` is the Python float (the kernel multiplies only when it is not 1,
    as the array-API path does), ``rounded`` the same rounded to the dtype.
    :meth:`args` adds what changes per call.

    Examples
    --------
    >>> fixed = DropoutArgs("float32", 2**31, 2.0, 2.0, relu=False)
    >>> fixed.name, fixed.alignment
    ('dk_dropout_f32', 16)
    >>> call = dropout_call("float32", "X", "Y", 9, 1, 2, 2**31, 2.0, 2.0, relu=False, vec=True)
    >>> fixed.args("X", "Y", 9, 1, 2, vec=True) == call[1]
    True
    """

    __slots__ = ("_flags", "_scale", "_threshold", "alignment", "name")

    def __init__(
        self, dtype: str, threshold: int, scale: float, rounded: float, *, relu: bool
    ) -> None:
        kind = KINDS[dtype]
        flags = (DK_RELU if relu else 0) | (DK_SCALE if scale != 1.0 else 0)
        self.name = f"dk_dropout_{kind}"
        self.alignment = ALIGNMENT[kind]
        self._scale = scale_arg(kind, rounded)
        self._flags = (np.int32(flags), np.int32(flags | DK_VEC))  # by ``vec``
        self._threshold = np.uint32(threshold)

    def args(
        self, x: Any, y: Any, n: Any, key: int, counter: int, *, vec: bool, seed: Any = None
    ) -> tuple[Any, ...]:
        """The arguments of one launch on ``n`` elements (``n`` an int or an ``int64``).

        ``vec``: both pointers are aligned to :attr:`alignment`; ``seed`` as in
        :func:`dropout_call`.
        """
        return (
            x,
            y,
            n if type(n) is np.int64 else np.int64(n),
            self._scale,
            self._flags[vec],
            self._threshold,
            *key_words(key, counter),
            NULL if seed is None else seed,
        )


def dropout_call(
    dtype: str,
    x: Any,
    y: Any,
    n: int,
    key: int,
    counter: int,
    threshold: int,
    scale: float,
    rounded: float,
    *,
    relu: bool,
    vec: bool,
    seed: Any = None,
) -> tuple[str, tuple[Any, ...]]:
    """Kernel name and arguments of the fused dropout of ``n`` elements.

    ``scale`` is the Python float (multiply only when it is not 1, as the
    array-API path does), ``rounded`` the same rounded to the dtype; ``vec``
    says that both pointers are aligned to :data:`ALIGNMENT`. ``seed``, if
    given, is an array of four int64 words ``(key_lo, key_hi, counter_lo,
    counter_hi)`` in device memory that the kernel reads instead of ``key``
    and ``counter`` (no host round trip). The same arguments as
    :class:`DropoutArgs` builds.
    """
    fixed = DropoutArgs(dtype, threshold, scale, rounded, relu=relu)
    return fixed.name, fixed.args(x, y, n, key, counter, vec=vec, seed=seed)


def bits_call(
    out: Any, first: int, nblocks: int, key: int, counter: int, *, vec: bool
) -> tuple[str, tuple[Any, ...]]:
    """Kernel name and arguments of the words of blocks ``first .. first + nblocks - 1``."""
    flags = np.int32(DK_VEC if vec else 0)
    return "dk_bits", (out, np.uint64(first), np.int64(nblocks), flags, *key_words(key, counter))


def keep_mask_call(
    out: Any, n: int, key: int, counter: int, threshold: int, *, vec: bool, seed: Any = None
) -> tuple[str, tuple[Any, ...]]:
    """Kernel name and arguments of the boolean keep-mask of elements ``0 .. n - 1``.

    ``seed`` as in :func:`dropout_call`.
    """
    flags = np.int32(DK_VEC if vec else 0)
    words = key_words(key, counter)
    seed = NULL if seed is None else seed
    return "dk_keep_mask", (out, np.int64(n), flags, np.uint32(threshold), *words, seed)


def masked_call(
    dtype: str,
    x: Any,
    y: Any,
    keep: Any,
    parts: tuple[int, int, int],
    scale: float,
    rounded: float,
) -> tuple[str, tuple[Any, ...]]:
    """Kernel name and arguments of ``where(keep, x * scale, 0)``, ``x`` viewed as ``parts``.

    ``parts`` is ``(A, B, C)`` of :func:`split_broadcast`; ``keep`` is ``(A, C)``.
    """
    kind = KINDS[dtype]
    outer, spread, inner = parts
    flags = np.int32(DK_SCALE if scale != 1.0 else 0)
    n = outer * spread * inner
    args = (x, y, keep, np.int64(n), np.int64(spread * inner), np.int64(inner))
    return f"dk_masked_{kind}", (*args, scale_arg(kind, rounded), flags)


def relu_backward_fixed(dtype: str, scale: float, rounded: float) -> tuple[str, tuple[Any, ...]]:
    """Kernel name and the arguments of :func:`relu_backward_call` fixed by dtype and scale."""
    kind = KINDS[dtype]
    flags = np.int32(DK_SCALE if scale != 1.0 else 0)
    return f"dk_relu_backward_{kind}", (scale_arg(kind, rounded), flags)


def relu_backward_call(
    dtype: str, g: Any, h: Any, y: Any, n: int, scale: float, rounded: float
) -> tuple[str, tuple[Any, ...]]:
    """Kernel name and arguments of ``where(h <= 0, 0, g * scale)`` (NaN in ``h`` passes)."""
    name, fixed = relu_backward_fixed(dtype, scale, rounded)
    return name, (g, h, y, np.int64(n), *fixed)


def sgd_fixed(
    dtype: str, *, lr: float, momentum: float, weight_decay: float, nesterov: bool
) -> tuple[str, tuple[Any, ...]]:
    """Kernel name and the arguments of :func:`sgd_call` fixed by dtype and hyperparameters."""
    kind = KINDS[dtype]
    t = np.float32 if kind == "f32" else np.float64
    flags = (
        (DK_DECAY if weight_decay else 0)
        | (DK_MOMENTUM if momentum else 0)
        | (DK_NESTEROV if nesterov and momentum else 0)
    )
    return f"dk_sgd_{kind}", (t(lr), t(momentum), t(weight_decay), np.int32(flags))


def sgd_call(
    dtype: str,
    w: Any,
    g: Any,
    v: Any,
    n: int,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    nesterov: bool,
) -> tuple[str, tuple[Any, ...]]:
    """Kernel name and arguments of one in-place SGD step (float32 or float64)."""
    name, fixed = sgd_fixed(
        dtype, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov
    )
    return name, (w, g, v, np.int64(n), *fixed)
