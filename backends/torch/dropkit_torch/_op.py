"""The registered operators ``dropkit::dropout`` and ``dropkit::dropout_``.

One op serves element-wise, channel and ReLU dropout, forward and backward:

``dropkit::dropout(Tensor x, Tensor seed, SymInt[] noise_shape, int threshold,
float scale, bool relu) -> Tensor``

``seed`` is an int64 tensor of four 32-bit words ``(key_lo, key_hi,
counter_lo, counter_hi)``: the dropkit draw ``(key, counter)``. A -1 in
``noise_shape`` stands for ``x``'s size on that axis (how ``torch.jit.trace``
records it: :func:`traced_noise_shape`). A unit of the
mask (of shape ``noise_shape``, broadcast against ``x``) is kept iff its Philox
word is ``>= threshold``; kept units of ``x`` are multiplied by ``scale``
(rounded to ``x``'s dtype), every other unit is exactly 0; with ``relu``, units
with ``x <= 0`` are 0 too (NaN is kept, as ``torch.relu`` keeps it). A scale
that is not finite in ``x``'s dtype (float16 with ``p`` near 1) is refused.

They are defined with ``torch.library`` (``Library.define`` / ``impl`` and
``register_fake``), not ``torch.library.custom_op``, whose Python wrapper
cost several microseconds per call; the autograd formula is a
``torch.autograd.Function`` outside the operator (:func:`dropout_op` applies
it only when autograd has something to record). To ``torch.compile`` the op
is one opaque node with a fake (meta) implementation, so forward and backward
stay in one graph. Its autograd formula saves only ``seed`` (32 bytes): the
backward is the same op applied to the incoming gradient, which regenerates
the mask; for the ReLU variant it
saves the output ``h`` and passes gradient where ``h > 0`` or ``h`` is NaN.
Forward mode (``torch.func.jvp``, ``jacfwd``, ``torch.autograd.forward_ad``)
applies the same to the tangent (:class:`_Dropout`'s ``jvp``), and a
batching rule serves ``vmap``; docs/backends.md ("torch: transforms, forward-mode
AD and TorchScript") gives the semantics, vmap's randomness included.

Kernels: on CPU, float32 and float64 run the NumPy backend's Numba kernel on
the tensor's own memory (zero-copy); other dtypes and devices compute the same
words (the Numba kernel on CPU, the int64 array-API reference elsewhere) and
apply them with torch operations. On CUDA, where CuPy and ``dropkit-cupy`` are
installed, the CUDA kernels run on the tensor's memory (zero-copy through
DLPack, on torch's current stream; :mod:`dropkit_torch.cuda`):
the fused dropout for float16, bfloat16, float32 and float64, and the words
and keep-masks of channel dropout. All agree bit for bit with the NumPy
backend.

Examples
--------
>>> import torch
>>> seed = torch.tensor([7, 0, 0, 0])
>>> x = torch.ones(2, 4)
>>> y = torch.ops.dropkit.dropout(x, seed, [2, 4], 2**31, 2.0, False)
>>> import dropkit, numpy as np
>>> bool(np.array_equal(y.numpy(), dropkit.dropout(np.ones((2, 4), np.float32), 0.5, rng=7)))
True
"""

from __future__ import annotations

import ctypes
import math
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import array_api_compat.torch as xp
import numpy as np
import torch
from dropkit_numpy import NumpyBackend
from torch._C._functorch import unwrap_if_dead as _unwrap_if_dead
from torch.autograd import forward_ad as _forward_ad

from dropkit import philox
from dropkit.checks import check_scale, overflow_bound
from dropkit.philox import MASK32

from .keys import seed_from_ints

__all__ = [
    "FULL",
    "compute",
    "direct",
    "dropout_inplace_op",
    "dropout_op",
    "keep_mask",
    "new_like",
    "numpy_view",
    "seed_ints",
    "seed_words",
    "tangents_possible",
    "traced_noise_shape",
    "unwatched",
    "unwatched_cuda",
    "words",
]

#: Threshold that drops every unit (p = 1).
FULL = 1 << 32
_NUMPY = NumpyBackend()
#: The NumPy backend's fused Numba kernel, or None where Numba is missing.
_NUMPY_FUSED: Callable[..., np.ndarray] | None = _NUMPY._fused
_NUMBA_DTYPES = (torch.float32, torch.float64)


def _jit_disabled() -> bool:
    """Whether Numba runs its functions as plain Python (``NUMBA_DISABLE_JIT``)."""
    import numba

    return bool(getattr(numba.config, "DISABLE_JIT", False))


if _NUMPY_FUSED is not None and not _jit_disabled():
    # (under NUMBA_DISABLE_JIT the address kernels cannot run: their intrinsics
    # need compiling; the NumPy kernel, plain Python there, serves CPU tensors)
    from ._cpu import KERNELS as _CPU_KERNELS
    from ._cpu import PARALLEL_MIN as _CPU_PARALLEL_MIN
    from ._cpu import SCALAR_KERNELS as _CPU_SCALAR_KERNELS
else:  # no Numba (or no compiling): the NumPy kernel or torch's operations serve CPU tensors
    _CPU_KERNELS, _CPU_SCALAR_KERNELS, _CPU_PARALLEL_MIN = {}, {}, 0
_AS_NUMPY: dict[torch.dtype, type[np.floating]] = {
    torch.float16: np.float16,
    torch.float32: np.float32,
    torch.float64: np.float64,
}
#: Outputs from this many elements up are advised to use huge pages (see ``new_like``).
LARGE = 1 << 20
#: Whether CPU tensors use the NumPy backend's kernels (tests switch it off to run,
#: on the CPU, the device-independent path that CUDA tensors take).
CPU_KERNELS = True
#: Whether CUDA tensors use the CuPy backend's kernels where CuPy is installed
#: (tests switch it off to compare them with the torch-operations path).
CUDA_KERNELS = True
#: "module": dropkit_torch.cuda, or None where unavailable.
_CUDA: dict[str, ModuleType | None] = {}
#: Device -> whether it is a CUDA device (a handful of devices per process).
_IS_CUDA: dict[torch.device, bool] = {}


def _numpy_kernels(device: torch.device) -> bool:
    return CPU_KERNELS and device.type == "cpu"


def _cuda_kernels(device: torch.device) -> ModuleType | None:
    """:mod:`dropkit_torch.cuda` for a CUDA ``device`` where CuPy can run, else None.

    Imported once per process; without CuPy (or dropkit-cupy) the torch
    operations serve CUDA tensors, as before.
    """
    if not CUDA_KERNELS:
        return None
    cuda = _IS_CUDA.get(device)  # (device.type builds a string: 0.2 us a call)
    if cuda is None:
        cuda = _IS_CUDA[device] = device.type == "cuda"
    if not cuda:
        return None
    if "module" not in _CUDA:
        loaded: ModuleType | None
        try:
            from . import cuda as loaded
        except Exception:  # no CuPy, no dropkit-cupy, or CuPy without a usable CUDA
            loaded = None
        _CUDA["module"] = loaded
    module = _CUDA["module"]
    return module if module is not None and module.usable(device) else None


def _advise_huge_pages() -> Callable[[int, int], object] | None:
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        advise = libc.madvise
    except (OSError, AttributeError):  # pragma: no cover - an unusual libc
        return None
    advise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return lambda start, length: advise(start, length, 14)  # MADV_HUGEPAGE


_MADVISE = _advise_huge_pages()


def new_like(x: torch.Tensor) -> torch.Tensor:
    """``torch.empty_like(x)``; large CPU outputs are advised to use huge pages.

    NumPy asks Linux for transparent huge pages on its large arrays
    (``madvise``); torch's CPU allocator does not, and faulting the output in
    4 KiB pages cost a quarter of a 16M float32 dropout on this project's VM
    (measured in one process, 10 rounds: 41.4 ms with plain ``empty_like``,
    32.7 ms advised, 29.1 ms with a NumPy-allocated output, which would leave
    the caller a tensor whose storage cannot be resized).
    """
    y = torch.empty_like(x)
    if _MADVISE is not None and y.numel() >= LARGE and y.is_cpu:
        first, size = y.data_ptr(), y.numel() * y.element_size()
        start, end = (first + 4095) & ~4095, (first + size) & ~4095
        if end > start:
            _MADVISE(start, end - start)
    return y


def _raw_bytes(address: int, size: int) -> Any:
    """A ctypes byte array of ``size`` bytes at ``address`` (its type built once per size)."""
    kind = _BYTES.get(size)
    if kind is None:
        if len(_BYTES) >= 1024:
            _BYTES.clear()
        kind = _BYTES[size] = ctypes.c_char * size
    return kind.from_address(address)


_BYTES: dict[int, Any] = {}


def numpy_view(t: torch.Tensor) -> np.ndarray:
    """A NumPy array on a C-contiguous CPU tensor's memory (zero-copy).

    Not ``t.numpy()``: that marks the tensor's storage as not resizable, a
    lasting side effect on the caller's tensor. The view lives only as long as
    the call that uses it.

    Examples
    --------
    >>> t = torch.arange(4.0)
    >>> numpy_view(t)[1] = 7.0
    >>> t.tolist()
    [0.0, 7.0, 2.0, 3.0]
    """
    dtype = _AS_NUMPY[t.dtype]
    if t.numel() == 0:
        return np.empty(tuple(t.shape), dtype=dtype)
    raw = _raw_bytes(t.data_ptr(), t.numel() * t.element_size())
    return np.frombuffer(raw, dtype=dtype).reshape(tuple(t.shape))


def seed_words(seed: torch.Tensor) -> list[int]:
    """The four 32-bit words ``[key_lo, key_hi, counter_lo, counter_hi]`` of a seed tensor.

    Examples
    --------
    >>> seed_words(torch.tensor([1, 2, 3, 0]))
    [1, 2, 3, 0]
    """
    words = seed.tolist() if seed.dtype is torch.int64 and seed.dim() == 1 else None
    # (a | b | c | d) >> 32 is 0 iff every word is in [0, 2**32): negatives shift to -1
    if words is None or len(words) != 4 or (words[0] | words[1] | words[2] | words[3]) >> 32:
        raise ValueError(
            "seed must be an int64 tensor of four 32-bit words (key_lo, key_hi, counter_lo, "
            f"counter_hi), got {seed!r}; build it with dropkit_torch.keys.seed_from_ints"
        )
    return words


def seed_ints(seed: torch.Tensor) -> tuple[int, int]:
    """``(key, counter)`` from a seed tensor of four 32-bit words.

    Examples
    --------
    >>> seed_ints(torch.tensor([1, 2, 3, 0]))
    (8589934593, 3)
    """
    k0, k1, c0, c1 = seed_words(seed)
    return k0 | (k1 << 32), c0 | (c1 << 32)


def words(key: int, counter: int, n: int, device: torch.device, *, offset: int = 0) -> torch.Tensor:
    """Philox words of elements ``offset .. offset + n - 1`` (int64 values < 2**32).

    On CPU the NumPy backend's kernel computes them; elsewhere the core's int64
    reference, on ``device``.

    Examples
    --------
    >>> hex(int(words(0, 0, 1, torch.device("cpu"))[0]))
    '0x6627e8d5'
    """
    if _numpy_kernels(device):
        bits = _NUMPY.random_bits((key, counter), n, offset=offset)
        return torch.from_numpy(bits.astype("int64"))
    cuda = _cuda_kernels(device)
    if cuda is not None:
        return cuda.words(key, counter, n, device, offset=offset)
    return philox.random_bits(xp, key, counter, n, offset=offset, device=device, int64=True)


def keep_mask(
    seed: torch.Tensor, shape: Sequence[int], threshold: int, device: torch.device
) -> torch.Tensor:
    """The boolean keep-mask of ``shape`` (C order) for a seed tensor.

    Examples
    --------
    >>> keep_mask(torch.tensor([0, 0, 0, 0]), (2,), 2**31, torch.device("cpu")).tolist()
    [False, True]
    """
    shape = tuple(int(n) for n in shape)
    if threshold >= FULL:
        return torch.zeros(shape, dtype=torch.bool, device=device)
    if threshold <= 0:
        return torch.ones(shape, dtype=torch.bool, device=device)
    cuda = _cuda_kernels(device)
    if cuda is not None:  # one kernel writes the mask's bytes (reading a GPU seed itself)
        on_device = cuda.device_seed(seed, device)
        key, counter = (0, 0) if on_device is not None else seed_ints(seed)
        return cuda.keep_mask(key, counter, shape, threshold, device, seed=on_device)
    key, counter = seed_ints(seed)
    n = math.prod(shape)
    if _numpy_kernels(device):  # compare the uint32 words in NumPy: no int64 copy
        bits = _NUMPY.random_bits((key, counter), n)
        return torch.from_numpy(bits >= np.uint32(threshold)).reshape(shape)
    return (words(key, counter, n, device) >= threshold).reshape(shape)


_BOUNDS: dict[torch.dtype, float] = {}


def _overflow_bound(dtype: torch.dtype) -> float:
    """The smallest scale that is not finite in ``dtype`` (cached per dtype)."""
    bound = _BOUNDS.get(dtype)
    if bound is None:
        bound = _BOUNDS[dtype] = overflow_bound(torch.finfo(dtype))
    return bound


def _apply(x: torch.Tensor, keep: torch.Tensor, scale: float, out: torch.Tensor) -> torch.Tensor:
    """``out = where(keep, x * scale, 0)`` with the scale rounded to ``x``'s dtype."""
    if scale == 1.0:
        out.copy_(x)
    else:
        torch.mul(x, torch.tensor(scale, dtype=x.dtype, device=x.device), out=out)
    return out.masked_fill_(keep.logical_not(), 0)


def _compute(
    x: torch.Tensor,
    seed: torch.Tensor | tuple[int, int],
    noise_shape: Sequence[int],
    threshold: int,
    scale: float,
    relu: bool,
    out: torch.Tensor,
) -> torch.Tensor:
    """Write the op's result into ``out`` (which has ``x``'s shape; may be ``x``).

    ``seed`` is a seed tensor, or (on the eager CPU path, :func:`direct`) the
    draw ``(key, counter)`` itself.
    """
    if not x.is_floating_point():
        raise TypeError(f"x must have a real floating dtype, got {x.dtype}")
    if not 0 <= threshold <= FULL:
        raise ValueError(f"threshold must be in [0, 2**32], got {threshold}")
    n = out.numel()
    if threshold >= FULL or n == 0:
        return out.zero_()
    if scale > 1.0 and scale >= (_BOUNDS.get(x.dtype) or _overflow_bound(x.dtype)):
        check_scale(scale, 1.0 - 1.0 / scale, x.dtype, torch.finfo(x.dtype))  # raises
    elementwise = tuple(noise_shape) == x.shape
    if not elementwise and -1 in noise_shape:  # x's sizes, as torch.jit.trace records them
        noise_shape = [s if n == -1 else n for n, s in zip(noise_shape, x.shape, strict=True)]
        elementwise = tuple(noise_shape) == x.shape
    if elementwise and CPU_KERNELS and x.is_cpu:
        # The Numba kernel on the tensors' memory, as 1-d (the words are in C order)
        kernel = _CPU_KERNELS.get(x.dtype) if n < _CPU_PARALLEL_MIN else None
        if kernel is not None or (_NUMPY_FUSED is not None and x.dtype in _NUMBA_DTYPES):
            if isinstance(seed, tuple):
                key, counter = seed
                k0, k1, c0, c1 = key & MASK32, key >> 32, counter & MASK32, counter >> 32
            else:
                k0, k1, c0, c1 = seed_words(seed)
            if x.is_contiguous():
                src = x
            elif kernel is not None and not any(x.stride()):  # one element, expanded
                src, kernel = x, _CPU_SCALAR_KERNELS[x.dtype]  # read in place: no copy
            else:
                src = x.contiguous()
            dst = out if out.is_contiguous() else new_like(src)  # (C-contiguous, src expanded too)
            if kernel is not None:  # by address: no NumPy arrays built (small tensors)
                kernel(src.data_ptr(), dst.data_ptr(), n, threshold, scale, relu, k0, k1, c0, c1)
            else:  # the NumPy entry point, whose parallel kernel serves large tensors
                _fused_numpy(src, dst, k0 | (k1 << 32), c0 | (c1 << 32), threshold, scale, relu)
            if dst is not out:
                out.copy_(dst)
            return out
    if isinstance(seed, tuple):  # a draw as integers (the eager CPU path): its seed tensor
        key, counter = seed
        seed = seed_from_ints(key, counter, x.device)
    cuda = _cuda_kernels(x.device) if elementwise else None
    if cuda is not None and cuda.supports(x):  # the CuPy kernel on the tensor's memory
        on_device = cuda.device_seed(seed, x.device)  # read by the kernel: no host sync
        key, counter = (0, 0) if on_device is not None else seed_ints(seed)
        src = x.contiguous()
        dst = out if out.is_contiguous() else torch.empty_like(src)
        cuda.dropout(src, dst, key, counter, threshold, scale, relu, on_device)
        if dst is not out:
            out.copy_(dst)
        return out
    keep = keep_mask(seed, noise_shape, threshold, x.device)
    if relu:
        keep = keep & (x <= 0).logical_not()  # NaN is kept, as torch.relu keeps it
    return _apply(x, keep, scale, out)


def _fused_numpy(
    src: torch.Tensor,
    dst: torch.Tensor,
    key: int,
    counter: int,
    threshold: int,
    scale: float,
    relu: bool,
) -> None:
    """The NumPy backend's fused kernel from C-contiguous ``src`` into ``dst`` (NumPy views)."""
    assert _NUMPY_FUSED is not None
    size = src.numel() * src.element_size()
    dtype = _AS_NUMPY[src.dtype]
    flat = np.frombuffer(_raw_bytes(src.data_ptr(), size), dtype=dtype)
    flat_out = np.frombuffer(_raw_bytes(dst.data_ptr(), size), dtype=dtype)
    _NUMPY_FUSED(flat, key, counter, threshold, scale, relu, flat_out)


_LIB = torch.library.Library("dropkit", "FRAGMENT")
_LIB.define(
    "dropout(Tensor x, Tensor seed, SymInt[] noise_shape, int threshold, float scale, "
    "bool relu) -> Tensor"
)
# The same operator with the Function's formula as its autograd kernel, for vmap
# over inputs that require grad only (an Autograd kernel in Python would cost
# every other call, compiled ones too).
_LIB.define(
    "dropout_differentiable(Tensor x, Tensor seed, SymInt[] noise_shape, int threshold, "
    "float scale, bool relu) -> Tensor"
)
_LIB.define(
    "dropout_(Tensor(a!) x, Tensor seed, SymInt[] noise_shape, int threshold, float scale, "
    "bool relu) -> ()"
)


def _dropout_impl(
    x: torch.Tensor,
    seed: torch.Tensor,
    noise_shape: list[int],
    threshold: int,
    scale: float,
    relu: bool,
) -> torch.Tensor:
    if _forward_ad._current_level >= 0 and torch._C._is_fwd_grad_enabled():
        _refuse_tangent()
    with torch.no_grad():
        return _compute(x, seed, noise_shape, threshold, scale, relu, new_like(x))


def _dropout_inplace_impl(
    x: torch.Tensor,
    seed: torch.Tensor,
    noise_shape: list[int],
    threshold: int,
    scale: float,
    relu: bool,
) -> None:
    if _forward_ad._current_level >= 0 and torch._C._is_fwd_grad_enabled():
        _refuse_tangent()
    with torch.no_grad():
        _compute(x, seed, noise_shape, threshold, scale, relu, x)


def _refuse_tangent() -> None:
    """The bare operator in forward mode: refused (it has no formula; the tangent would be 0).

    dropkit's own calls reach the kernel there only from the autograd
    formula's forward, where torch turns forward grad off (the formula's
    ``jvp`` carries the tangent), or not at all (the batching rule's
    forward-mode case computes with torch operations).
    """
    raise RuntimeError(
        "dropkit: the bare operator torch.ops.dropkit.dropout has no forward-mode formula "
        "(torch.func.jvp, jacfwd, torch.autograd.forward_ad would get a zero tangent); call "
        "dropkit.dropout (or dropkit_torch._op.dropout_op), which carries the tangent"
    )


# One kernel for every device (the device is chosen inside _compute); no Autograd
# kernel: the autograd formula is the Function below, outside the operator, which
# costs a few microseconds less per call than torch.library.custom_op's wrapper.
_LIB.impl("dropout", _dropout_impl, "CompositeExplicitAutograd")
_LIB.impl("dropout_", _dropout_inplace_impl, "CompositeExplicitAutograd")
_LIB.impl("dropout_differentiable", _dropout_impl, "CompositeExplicitAutograd")
_RAW = torch.ops.dropkit.dropout.default
_RAW_INPLACE = torch.ops.dropkit.dropout_.default
_DIFFERENTIABLE = torch.ops.dropkit.dropout_differentiable.default


@torch.library.register_fake("dropkit::dropout_differentiable")
@torch.library.register_fake("dropkit::dropout")
def _dropout_fake(
    x: torch.Tensor,
    seed: torch.Tensor,
    noise_shape: list[int],
    threshold: int,
    scale: float,
    relu: bool,
) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.register_fake("dropkit::dropout_")
def _dropout_inplace_fake(
    x: torch.Tensor,
    seed: torch.Tensor,
    noise_shape: list[int],
    threshold: int,
    scale: float,
    relu: bool,
) -> None:
    return None


def _backward(ctx: Any, grad: torch.Tensor) -> tuple:
    """The formula: the op again on ``grad`` (the mask regenerated); for ReLU, a gate on ``h``."""
    if not ctx.relu:
        draw = ctx.draw
        if draw is None:
            (draw,) = ctx.saved_tensors
        if (type(draw) is tuple or type(draw) is torch.Tensor) and direct(grad):
            out = new_like(grad)  # (compute's body: a frame less on every backward)
            dx = _compute(grad, draw, ctx.noise_shape, ctx.threshold, ctx.scale, False, out)
        else:  # the operator (or the formula again, for a double backward)
            dx = dropout_op(grad, draw, ctx.noise_shape, ctx.threshold, ctx.scale, False)
        return dx, None, None, None, None, None
    (saved,) = ctx.saved_tensors
    cuda = _cuda_kernels(grad.device)
    if (
        cuda is not None
        and cuda.supports(grad)
        and saved.dtype == grad.dtype
        and saved.shape == grad.shape
        and saved.device == grad.device
        and grad.is_contiguous()
        and saved.is_contiguous()
    ):  # the CuPy kernel: one pass instead of a product, a comparison and a where
        return cuda.relu_backward(grad, saved, ctx.scale), None, None, None, None, None
    return _relu_gate(saved, grad, ctx.scale), None, None, None, None, None


def _relu_gate(h: torch.Tensor, g: torch.Tensor, scale: float) -> torch.Tensor:
    """``g * scale`` where the ReLU variant's output ``h`` passed (``h > 0`` or NaN), else 0."""
    factor = torch.tensor(scale, dtype=g.dtype, device=g.device)
    return torch.where(h <= 0, torch.zeros((), dtype=g.dtype, device=g.device), g * factor)


class _CompiledDropout(torch.autograd.Function):
    """The op's autograd formula: backward is the op again (the mask regenerated).

    The class that ``torch.compile`` traces (Dynamo refuses a Function with a
    custom ``jvp``); :class:`_Dropout` adds forward mode to it for every other use.
    """

    generate_vmap_rule = True  # vmap runs forward (and jvp), hence the op's batching rule

    @staticmethod
    def forward(
        x: torch.Tensor,
        seed: torch.Tensor | tuple[int, int],
        noise_shape: list[int],
        threshold: int,
        scale: float,
        relu: bool,
    ) -> torch.Tensor:
        # A draw as integers comes only from dropout_op's eager CPU path (checked there)
        if type(seed) is tuple or (
            type(seed) is torch.Tensor and (unwatched(x) or unwatched_cuda(x))
        ):
            return _compute(x, seed, noise_shape, threshold, scale, relu, new_like(x))
        return _RAW(x, seed, noise_shape, threshold, scale, relu)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        _, seed, noise_shape, threshold, scale, relu = inputs
        ctx.noise_shape, ctx.threshold, ctx.scale, ctx.relu = noise_shape, threshold, scale, relu
        # Only the 32-byte seed (or, for ReLU, the output h): never a mask. A draw
        # given as integers (eagerly) is kept as they are: two ints, no tensor.
        ctx.draw = seed if type(seed) is tuple and not relu else None
        if ctx.draw is None:
            ctx.save_for_backward(output if relu else seed)

    # the formula itself, which autograd's node calls (no frame in between)
    backward = staticmethod(_backward)


class _Dropout(_CompiledDropout):
    """The formula with forward mode (``torch.func.jvp``, ``jacfwd``, ``forward_ad``).

    The op is linear in ``x`` (the ReLU variant piecewise linear), so
    :meth:`jvp` applies the same mask and scale to the tangent that backward
    applies to the cotangent.
    """

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        _CompiledDropout.setup_context(ctx, inputs, output)
        # (tangents_possible(), inline: a tuple draw meets no tangent)
        if ctx.draw is None and _forward_ad._current_level >= 0:
            ctx.save_for_forward(output if ctx.relu else inputs[1])

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor | None, *_: Any) -> torch.Tensor | None:
        return _jvp(ctx, tangent)


# The predicates of unwatched(), bound once: each attribute chain (torch._C._...)
# costs about 25 ns a call, and they run two or three times per dropout
_profiler_enabled = torch._C._autograd._profiler_enabled
_is_compiling = torch.compiler.is_compiling
_functorch_active = torch._C._are_functorch_transforms_active
_function_mode_on = torch._C._is_torch_function_mode_enabled
_dispatch_stack_depth = torch._C._len_torch_dispatch_stack
_tracing_state = torch._C._get_tracing_state
_Tensor = torch.Tensor


def _quiet() -> bool:
    """Nothing records or transforms torch operations now (outside a compiler).

    No profiler, functorch transform, torch function or dispatch mode (fake
    tensors, export, FlopCounterMode), JIT trace or forward-mode dual level:
    all of those see (and need) the operator. Callers test
    ``torch.compiler.is_compiling()`` first (Dynamo reads no further).
    """
    return not (
        _profiler_enabled()
        or _functorch_active()
        or _function_mode_on()
        or _dispatch_stack_depth()
        or _tracing_state() is not None
        or _forward_ad._current_level >= 0  # a dual level: a tangent to carry
    )


def unwatched(x: torch.Tensor) -> bool:
    """Whether the op's CPU kernel may run on ``x`` without the dispatcher: eagerly, unwatched.

    The dispatcher's trip to the Python kernel costs about 4 us of a 20 us call on
    an (8, 8) tensor. Skipping it is invisible only for plain CPU tensors with
    nothing watching (:func:`_quiet`). There a draw may also stay two integers
    instead of a seed tensor (:func:`dropkit_torch.functional.draw`).

    Examples
    --------
    >>> unwatched(torch.ones(2)), unwatched(torch.ones(2, device="meta"))
    (True, False)
    """
    return not _is_compiling() and type(x) is _Tensor and x.is_cpu and _quiet()


def unwatched_cuda(x: torch.Tensor) -> bool:
    """:func:`unwatched` for a plain CUDA tensor: its kernel may run without the dispatcher.

    The same conditions. Its draws stay seed tensors on the device (read by the
    kernel, never copied to the host), so the launch goes on torch's current
    stream with the same arguments as from the operator, and CUDA graph
    capture records it the same way. On the host harness
    (``benchmarks/_host_torch_cuda.py``, launch stubbed) the whole public call
    on this route takes 10.1 us of Python, the operator through the dispatcher
    alone 13.2 us.

    Examples
    --------
    >>> unwatched_cuda(torch.ones(2))
    False
    """
    return not _is_compiling() and type(x) is _Tensor and x.is_cuda and _quiet()


_VMAP = torch._C._functorch.TransformType.Vmap


def tangents_possible() -> bool:
    """Whether a forward-mode tangent may be carried: a dual level is open.

    ``torch.autograd.forward_ad.dual_level()`` opens one, and so do
    ``torch.func.jvp``, ``jacfwd`` and ``hessian`` (functorch's forward mode is
    built on it). There the op goes through its autograd formula
    (:class:`_Dropout`, with a ``jvp``), even for inputs that do not require
    grad, never around it: the bare operator has no formula and would give a
    zero tangent.

    Examples
    --------
    >>> from torch.autograd import forward_ad
    >>> tangents_possible()
    False
    >>> with forward_ad.dual_level():
    ...     tangents_possible()
    True
    """
    return _forward_ad._current_level >= 0


def traced_noise_shape(noise_shape: Sequence[Any]) -> list[int]:
    """The noise shape as ``torch.jit.trace`` records it: -1 for each of ``x``'s own sizes.

    While tracing, ``x.shape`` holds traced sizes (0-d tensors), which the
    tracer cannot record in the op's ``SymInt[]`` argument (an internal assert
    in torch 2.13); as constants they would tie the trace to the example's
    shape (traced with a batch of 1, every row of a batch of 4 would get the
    same mask). So each traced size becomes -1, which the op reads as
    ``x``'s size on that axis (dropkit's noise shapes are ``x``'s sizes or 1):
    the traced function follows the shape of what it is called with.

    Examples
    --------
    >>> traced_noise_shape([torch.tensor(4), 1, torch.tensor(8)])
    [-1, 1, -1]
    """
    return [-1 if isinstance(n, torch.Tensor) else int(n) for n in noise_shape]


def direct(x: torch.Tensor) -> bool:
    """Whether dropout of ``x`` may skip the operator: no grad to record, nothing watching.

    :func:`unwatched` on the CPU, :func:`unwatched_cuda` on a CUDA device.

    Then the op's kernel runs on ``x`` at once (:func:`compute`): nothing
    (autograd, a compiler, a mode, the profiler) would see the difference.

    Examples
    --------
    >>> direct(torch.ones(2)), direct(torch.ones(2, requires_grad=True))
    (True, False)
    >>> with torch.no_grad():
    ...     direct(torch.ones(2, requires_grad=True))
    True
    """
    return not (x.requires_grad and torch.is_grad_enabled()) and (unwatched(x) or unwatched_cuda(x))


def compute(
    x: torch.Tensor,
    draw: torch.Tensor | tuple[int, int],
    noise_shape: Sequence[int],
    threshold: int,
    scale: float,
    relu: bool,
    *,
    inplace: bool = False,
) -> torch.Tensor:
    """The op's kernel on ``x`` (into a new tensor, or ``x`` itself): only where :func:`direct`.

    ``draw`` is a seed tensor or the draw ``(key, counter)``.

    Examples
    --------
    >>> compute(torch.ones(4), (0, 0), (4,), 2**31, 2.0, False).tolist()
    [0.0, 2.0, 2.0, 2.0]
    """
    out = x if inplace else new_like(x)
    return _compute(x, draw, noise_shape, threshold, scale, relu, out)


_APPLY = super(torch.autograd.Function, _Dropout).apply  # torch._C._FunctionBase.apply


def dropout_op(
    x: torch.Tensor,
    seed: torch.Tensor | tuple[int, int],
    noise_shape: Sequence[int],
    threshold: int,
    scale: float,
    relu: bool,
) -> torch.Tensor:
    """Dropout of ``x`` with the mask of ``seed`` (see the module docs); a new tensor.

    The operator ``torch.ops.dropkit.dropout`` itself when autograd has nothing
    to record, else through its autograd formula (:class:`_Dropout`). ``seed``
    is a seed tensor or the draw ``(key, counter)``: integers stay integers
    where the call runs eagerly on the CPU with nothing watching (:func:`unwatched`;
    autograd's formula then keeps them instead of a seed tensor), and become
    the seed tensor everywhere else.

    Examples
    --------
    >>> dropout_op(torch.ones(4), torch.tensor([0, 0, 0, 0]), [4], 2**31, 2.0, False).tolist()
    [0.0, 2.0, 2.0, 2.0]
    >>> dropout_op(torch.ones(4), (0, 0), [4], 2**31, 2.0, False).tolist()
    [0.0, 2.0, 2.0, 2.0]
    """
    if isinstance(seed, tuple):
        if unwatched(x):
            if not (x.requires_grad and torch.is_grad_enabled()):
                return _compute(x, seed, noise_shape, threshold, scale, relu, new_like(x))
            return _APPLY(_unwrap_if_dead(x), seed, noise_shape, threshold, scale, relu)
        key, counter = seed
        seed = seed_from_ints(key, counter, x.device)
    if torch._C._get_tracing_state() is not None:
        # torch.jit.trace records the twin operator, whose formula is registered with
        # torch.library (not a Python Function): the trace runs, differentiates when
        # called with inputs that require grad, and saves (torch.jit.save) like one
        # of torch's own ops; with or without grad, the same graph
        shape = traced_noise_shape(noise_shape)
        return _DIFFERENTIABLE(x, seed, shape, threshold, scale, relu)
    noise_shape = [int(n) for n in noise_shape]
    grad = x.requires_grad and torch.is_grad_enabled()
    if not grad:
        if type(seed) is torch.Tensor and (unwatched(x) or unwatched_cuda(x)):
            # nothing records: nobody sees the skip
            return _compute(x, seed, noise_shape, threshold, scale, relu, new_like(x))
        if torch.compiler.is_compiling() or not tangents_possible():
            return _RAW(x, seed, noise_shape, threshold, scale, relu)
    if torch.compiler.is_compiling():  # Dynamo traces the Function into the graph
        return _CompiledDropout.apply(x, seed, noise_shape, threshold, scale, relu)
    if torch._C._are_functorch_transforms_active():
        top = torch._C._functorch.peek_interpreter_stack()
        if top is not None and top.key() == _VMAP:
            # the Function under vmap, on inputs that require grad, finds no
            # FuncTorchVmapMode kernel: the twin operator with the same formula.
            # Otherwise the bare operator: its batching rule (_vmap) computes on the
            # unbatched tensors, with torch operations where a tangent may be carried
            if grad and not tangents_possible():
                return _DIFFERENTIABLE(x, seed, noise_shape, threshold, scale, relu)
            return _RAW(x, seed, noise_shape, threshold, scale, relu)
        return _Dropout.apply(x, seed, noise_shape, threshold, scale, relu)
    # Eagerly, what Function.apply does minus binding the arguments with inspect
    # (about a fifth of a small call): every argument here is positional, and only
    # the two tensors can be functorch wrappers (unwrap_dead_wrappers, unrolled).
    return _APPLY(_unwrap_if_dead(x), _unwrap_if_dead(seed), noise_shape, threshold, scale, relu)


def dropout_inplace_op(
    x: torch.Tensor,
    seed: torch.Tensor,
    noise_shape: list[int],
    threshold: int,
    scale: float,
    relu: bool,
) -> None:
    """:func:`dropout_op` written into ``x`` itself (no autograd formula: no-grad use)."""
    _RAW_INPLACE(x, seed, noise_shape, threshold, scale, relu)


def _jvp(ctx: Any, tangent: torch.Tensor | None) -> torch.Tensor | None:
    """Forward mode: the tangent through the same mask and scale (the op is linear in x).

    For the ReLU variant, the gate of its backward on the saved output ``h``.
    """
    if tangent is None:  # x carries no tangent: neither does the output
        return None
    (saved,) = ctx.saved_tensors
    if ctx.relu:
        return _relu_gate(saved, tangent, ctx.scale)
    return dropout_op(tangent, saved, ctx.noise_shape, ctx.threshold, ctx.scale, False)


def _vmap(
    info: object,
    in_dims: tuple,
    x: torch.Tensor,
    seed: torch.Tensor,
    noise_shape: list[int],
    threshold: int,
    scale: float,
    relu: bool,
) -> tuple[torch.Tensor, int | None]:
    """Batching rule: one seed means one mask per sample (the call applied to each).

    The rule runs on the tensors of the transform below vmap while vmap's
    interpreter stays on top of the stack, where :func:`dropout_op` cannot
    route a tangent through the formula: when one may be carried (forward
    mode below vmap: ``jvp(vmap(f))``, ``jacfwd``, ``hessian``), the op is
    computed as torch operations on the keep-mask (:func:`_differentiable`),
    which every transform differentiates.
    """
    op = _differentiable if tangents_possible() else dropout_op
    x_dim, seed_dim = in_dims[0], in_dims[1]
    if seed_dim is None:
        if x_dim is None:
            return op(x, seed, noise_shape, threshold, scale, relu), None
        xb = x.movedim(x_dim, 0)  # the mask of one sample, broadcast over the batch
        return op(xb, seed, [1, *noise_shape], threshold, scale, relu), 0
    seeds = seed.movedim(seed_dim, 0)  # a seed per sample (e.g. randomness="different")
    xs = x.movedim(x_dim, 0) if x_dim is not None else x.expand(len(seeds), *x.shape)
    parts = [op(xs[i], seeds[i], noise_shape, threshold, scale, relu) for i in range(len(seeds))]
    return torch.stack(parts), 0


def _differentiable(
    x: torch.Tensor,
    seed: torch.Tensor,
    noise_shape: Sequence[int],
    threshold: int,
    scale: float,
    relu: bool,
) -> torch.Tensor:
    """The op's result as torch operations on its keep-mask (differentiable in every mode).

    ``where(keep, x * scale, 0)``, the scale rounded to ``x``'s dtype: the
    kernels' values, bit for bit. Keeps a mask-sized boolean tensor for
    autograd, so it serves only the batching rule's forward-mode case.
    """
    if not x.is_floating_point():
        raise TypeError(f"x must have a real floating dtype, got {x.dtype}")
    if scale > 1.0 and scale >= _overflow_bound(x.dtype):
        check_scale(scale, 1.0 - 1.0 / scale, x.dtype, torch.finfo(x.dtype))  # raises
    keep = keep_mask(seed, noise_shape, threshold, x.device)
    if relu:
        keep = keep & (x <= 0).logical_not()  # NaN is kept, as torch.relu keeps it
    factor = torch.tensor(scale, dtype=x.dtype, device=x.device)
    return torch.where(keep, x * factor, torch.zeros((), dtype=x.dtype, device=x.device))


torch.library.register_vmap("dropkit::dropout", _vmap)
torch.library.register_vmap("dropkit::dropout_differentiable", _vmap)
torch.library.register_autograd(
    "dropkit::dropout_differentiable",
    _CompiledDropout.backward,
    setup_context=_CompiledDropout.setup_context,
)
