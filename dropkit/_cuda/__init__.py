"""The CUDA C source of dropkit's GPU kernels, one copy for every backend that runs them.

The file ``kernels.cu`` beside this module (package data, shipped in the core
wheel) is read by the CuPy backend (``dropkit_cupy.kernels_src``: NVRTC inside
``cupy.RawModule``, and the host harness ``dropkit_cupy.host``, which builds it
with ``cc``) and by the torch backend (``dropkit_torch._nvrtc``: NVRTC called
directly, launched on torch CUDA tensors without CuPy). Keeping it here, not in
either backend, lets torch users on CUDA run the kernels without installing
``dropkit-cupy``, and keeps the masks of both backends the same text's.

Nothing here imports a GPU library; the source is read once, on first import.

Examples
--------
>>> from dropkit._cuda import KERNEL_NAMES, KERNEL_SOURCE, SIGNATURES
>>> all(name in KERNEL_SOURCE for name in KERNEL_NAMES)
True
>>> SIGNATURES["dk_bits"]
('ptr', 'u64', 'i64', 'i32', 'u32', 'u32', 'u32', 'u32')
"""

from __future__ import annotations

from importlib import resources

__all__ = [
    "DK_DECAY",
    "DK_MOMENTUM",
    "DK_NESTEROV",
    "DK_RELU",
    "DK_SCALE",
    "DK_VEC",
    "KERNEL_NAMES",
    "KERNEL_SOURCE",
    "NVRTC_OPTIONS",
    "SIGNATURES",
]

#: Flag bits of the kernels' ``flags`` argument.
DK_RELU = 1  # also drop where x <= 0 (NaN is kept, as torch.relu keeps it)
DK_SCALE = 2  # multiply kept values by the scale (clear: the scale is 1)
DK_VEC = 4  # the pointers are aligned for the vector loads and stores
DK_DECAY = 8  # SGD: add weight_decay * w to the gradient
DK_MOMENTUM = 16  # SGD: keep a velocity
DK_NESTEROV = 32  # SGD: Nesterov momentum

#: Options of every module; the IEEE module (torch tensors) adds ``-DDK_IEEE_F32=1``.
NVRTC_OPTIONS = ("--fmad=false",)

#: The CUDA C source: one text for NVRTC and for the host harness.
KERNEL_SOURCE = (resources.files(__package__) / "kernels.cu").read_text(encoding="utf-8")

#: Every ``__global__`` kernel of :data:`KERNEL_SOURCE` (``extern "C"`` names).
KERNEL_NAMES = (
    "dk_bits",
    "dk_keep_mask",
    "dk_dropout_f32",
    "dk_dropout_f64",
    "dk_dropout_f16",
    "dk_dropout_bf16",
    "dk_masked_f32",
    "dk_masked_f64",
    "dk_masked_f16",
    "dk_masked_bf16",
    "dk_relu_backward_f32",
    "dk_relu_backward_f64",
    "dk_relu_backward_f16",
    "dk_relu_backward_bf16",
    "dk_sgd_f32",
    "dk_sgd_f64",
)

_P, _I32, _I64, _U32, _U64, _F32, _F64 = "ptr", "i32", "i64", "u32", "u64", "f32", "f64"
_PHILOX = (*(_U32,) * 5, _P)  # threshold, k0, k1, c2, c3, seed (NULL: use k0 .. c3)
_SCALE = {"f32": _F32, "f64": _F64, "f16": _U32, "bf16": _F32}

#: C parameter types of every kernel, in order (``ptr``, ``i32``, ``i64``, ``u32``,
#: ``u64``, ``f32``, ``f64``); the tests check them against the preprocessed source.
SIGNATURES: dict[str, tuple[str, ...]] = {
    "dk_bits": (_P, _U64, _I64, _I32, _U32, _U32, _U32, _U32),
    "dk_keep_mask": (_P, _I64, _I32, *_PHILOX),
    **{f"dk_dropout_{k}": (_P, _P, _I64, s, _I32, *_PHILOX) for k, s in _SCALE.items()},
    **{f"dk_masked_{k}": (_P, _P, _P, _I64, _I64, _I64, s, _I32) for k, s in _SCALE.items()},
    **{f"dk_relu_backward_{k}": (_P, _P, _P, _I64, s, _I32) for k, s in _SCALE.items()},
    "dk_sgd_f32": (_P, _P, _P, _I64, _F32, _F32, _F32, _I32),
    "dk_sgd_f64": (_P, _P, _P, _I64, _F64, _F64, _F64, _I32),
}
