"""A NumPy-backed stand-in for CuPy: this package's Python code on a machine without a GPU.

For tests and benchmarks only. :func:`fake_cupy` builds a module that has the
few CuPy names the backend uses (arrays with ``data.ptr`` and ``device``,
``RawModule`` and its kernels, the device and NVRTC queries);
:func:`load_backend` imports :mod:`dropkit_cupy.kernels` and
:mod:`dropkit_cupy.backend` fresh against it and puts ``sys.modules`` back
as it was, so the modules it returns use the fake while the process's other
imports of ``cupy`` are untouched. What a launch does is the caller's: record
it, run the host-compiled kernels (:mod:`dropkit_cupy.host`), or nothing (to
time the Python path alone).

The fake's primitives are cheap (a cached data pointer, a shared device
object), so a timing on it is dominated by dropkit's own Python.

Examples
--------
>>> launches = []
>>> fake = fake_cupy(lambda name, ieee, grid, block, args: launches.append(name))
>>> loaded = load_backend(fake)
>>> loaded.backend.name, fake.compiles, launches  # nothing is built before a first launch
('cupy', 0, [])
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FakeArray", "Loaded", "as_fake", "fake_cupy", "load_backend"]

#: ``launch(name, ieee, grid, block, args)``: what a fake kernel call does.
Launch = Callable[[str, bool, tuple[int, ...], tuple[int, ...], tuple[Any, ...]], None]


class _Pointer:
    __slots__ = ("device_id", "ptr")

    def __init__(self, ptr: int) -> None:
        self.ptr = ptr
        self.device_id = 0


class FakeArray(np.ndarray):
    """A NumPy array with CuPy's ``data.ptr`` (computed once per array) and ``device``."""

    @property
    def data(self) -> _Pointer:  # type: ignore[override]
        """The array's memory, as CuPy's ``MemoryPointer`` (``ptr``, ``device_id``)."""
        pointer: _Pointer | None = self.__dict__.get("_pointer")
        if pointer is None:
            pointer = self.__dict__["_pointer"] = _Pointer(self.__array_interface__["data"][0])
        return pointer

    @property
    def device(self) -> _Device:  # type: ignore[override]
        """The array's device (always device 0)."""
        return _DEVICE


def as_fake(a: Any) -> FakeArray:
    """``a`` as a :class:`FakeArray` (a view, no copy)."""
    return np.asarray(a).view(FakeArray)


class _Device:
    """``cupy.cuda.Device``: a context manager with ``id`` and ``compute_capability``."""

    compute_capability = "90"

    def __init__(self, index: int = 0) -> None:
        self.id = int(index)

    def __enter__(self) -> _Device:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_DEVICE = _Device(0)


class _Kernel:
    def __init__(self, name: str, ieee: bool, launch: Launch) -> None:
        self.name, self.ieee, self._launch = name, ieee, launch

    def __call__(
        self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...]
    ) -> None:
        self._launch(self.name, self.ieee, grid, block, args)


def fake_cupy(launch: Launch, *, multiprocessors: int = 2) -> types.ModuleType:
    """A module standing in for ``cupy``, whose kernels call ``launch``.

    Its ``compiles`` attribute counts the ``RawModule`` compilations (one per
    module, at its first ``get_function``, as CuPy compiles lazily) and
    ``compiled`` lists their options.
    """
    cupy = types.ModuleType("cupy")
    state = vars(cupy)

    class RawModule:
        def __init__(self, *, code: str, options: tuple[str, ...] = ()) -> None:
            if not code or not all(isinstance(o, str) for o in options):
                raise TypeError("RawModule needs the source and string options")
            self.options = tuple(options)
            self.ieee = "-DDK_IEEE_F32=1" in self.options
            self._built = False

        def get_function(self, name: str) -> _Kernel:
            if not self._built:
                state["compiles"] += 1
                state["compiled"].append(self.options)
                self._built = True
            return _Kernel(name, self.ieee, launch)

    props = {"multiProcessorCount": multiprocessors}
    state.update(
        __version__="0.0-fake",
        compiles=0,
        compiled=[],
        cuda=types.SimpleNamespace(
            runtime=types.SimpleNamespace(
                getDevice=lambda: 0,
                getDeviceCount=lambda: 1,
                getDeviceProperties=lambda index: props,
            ),
            nvrtc=types.SimpleNamespace(getVersion=lambda: (12, 9)),
            Device=_Device,
            ExternalStream=lambda ptr, index=0: _DEVICE,
        ),
        RawModule=RawModule,
        ndarray=FakeArray,
        empty=lambda shape, dtype: np.empty(shape, dtype).view(FakeArray),
        ascontiguousarray=lambda a: as_fake(np.ascontiguousarray(a)),
        from_dlpack=lambda t: as_fake(np.from_dlpack(t)),
        uint32=np.uint32,
        bool_=np.bool_,
        int32=np.int32,
    )
    return cupy


@dataclass(frozen=True)
class Loaded:
    """The package's CuPy modules imported against a fake, and a backend object."""

    kernels: types.ModuleType
    backend_module: types.ModuleType
    backend: Any


_MODULES = ("dropkit_cupy.kernels", "dropkit_cupy.backend")


def load_backend(cupy: types.ModuleType) -> Loaded:
    """Import :mod:`dropkit_cupy.kernels` and ``.backend`` against ``cupy``, fresh.

    ``sys.modules`` (``cupy``, ``array_api_compat.cupy`` and the two modules)
    and the package's attributes are put back afterwards: the returned modules
    keep the fake, everything else sees what it saw before.
    """
    import array_api_compat.numpy as npx

    import dropkit_cupy

    names = ("cupy", "array_api_compat.cupy", *_MODULES)
    saved = {name: sys.modules.get(name) for name in names}
    attributes = {name: getattr(dropkit_cupy, name, None) for name in ("kernels", "backend")}
    try:
        sys.modules["cupy"] = cupy
        sys.modules["array_api_compat.cupy"] = npx
        for name in _MODULES:
            sys.modules.pop(name, None)
        kernels = importlib.import_module("dropkit_cupy.kernels")
        backend = importlib.import_module("dropkit_cupy.backend")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        for name, value in attributes.items():
            if value is None:
                if hasattr(dropkit_cupy, name):
                    delattr(dropkit_cupy, name)
            else:
                setattr(dropkit_cupy, name, value)
    return Loaded(kernels=kernels, backend_module=backend, backend=backend.CupyBackend())
