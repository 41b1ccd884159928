"""The backend contract: what a plugin returns and what loading it gives.

A backend supplies what the array API standard lacks: the namespace for its
arrays and devices, and the random words of Philox4x32-10 for a draw (the four
required members of :class:`Backend`). Two members are optional:
``draw(rng, like)`` (:class:`DrawsKeys`: a framework's own keys) and
``mask_scale(...)`` (:class:`MasksAndScales`: one differentiable primitive that
regenerates a mask and applies it). The core finds them once, when the backend
loads (:func:`capabilities`), and does everything else itself.

Examples
--------
>>> import array_api_strict
>>> b = ArrayAPIBackend("strict", array_api_strict)
>>> b.random_bits((0, 0), 2)
Array([1713891541, 3781805453], dtype=array_api_strict.uint32)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import array_api_compat

from . import philox
from ._dtype_facts import prime

__all__ = [
    "ArrayAPIBackend",
    "Backend",
    "BackendInfo",
    "BackendRecord",
    "Capabilities",
    "DrawsKeys",
    "MasksAndScales",
    "capabilities",
    "default_draw",
    "split_broadcast",
]

_MAX64 = 1 << 64

#: The draw every backend's ``random_bits`` accepts: ``(key, counter)``, two Python ints.
KeyCounter = tuple[int, int]


@runtime_checkable
class Backend(Protocol):
    """What every loaded backend provides: the four required members.

    Attributes
    ----------
    name : str
        The backend's registered name.
    xp : namespace
        An array-API-conforming namespace for the backend's arrays.

    Notes
    -----
    Two optional members, found once when the backend loads
    (:func:`capabilities`), never looked up on a call: ``draw(rng, like)``
    (:class:`DrawsKeys`) and ``mask_scale(...)`` (:class:`MasksAndScales`).
    Everything else (validation, modes, evaluation, ``p = 0`` and ``p = 1``,
    the scale's overflow, returned or packed masks, which mask a backward
    uses) is the core's; a backend never re-implements an op.
    """

    @property
    def name(self) -> str:
        """The backend's registered name."""
        ...

    @property
    def xp(self) -> Any:
        """An array-API-conforming namespace for the backend's arrays."""
        ...

    def devices(self) -> list[Any]:
        """The devices arrays of this backend can live on."""
        ...

    def random_bits(self, draw: Any, n: int, *, offset: int = 0, device: Any = None) -> Any:
        """The Philox words of elements ``offset .. offset + n - 1`` of one draw.

        ``draw`` is ``(key, counter)`` (two Python ints; every backend accepts
        it) or whatever the backend's own :meth:`DrawsKeys.draw` returns. The
        words must equal :func:`dropkit.philox.random_bits` bit for bit: a
        uint32 array, or (for namespaces without unsigned arithmetic) an int64
        array holding the same values.
        """
        ...


@runtime_checkable
class DrawsKeys(Protocol):
    """Optional: a backend whose framework has its own keys or generators."""

    def draw(self, rng: Any, like: Any) -> Any:
        """The draw of one ``rng=`` for an op on the array ``like``.

        Called only when an op draws a mask (never in evaluation, nor for
        ``p = 0`` or ``p = 1``). Turns a framework's key or generator (a torch
        generator, a traced JAX key) into a draw that :meth:`Backend.random_bits`
        and :meth:`MasksAndScales.mask_scale` accept; the words of a draw must
        be those of the ``(key, counter)`` it stands for. Without it the draw
        is ``dropkit.as_generator(rng).draw()`` (:func:`default_draw`).
        """
        ...


@runtime_checkable
class MasksAndScales(Protocol):
    """Optional: one differentiable primitive that regenerates a mask and applies it."""

    def mask_scale(
        self,
        x: Any,
        draw: Any,
        *,
        noise_shape: tuple[int, ...],
        threshold: int,
        scale: float,
        relu: Any,
        out: Any,
    ) -> Any:
        """``where(keep, x * scale, 0)``, or None to decline (the core then uses the reference).

        ``keep`` is the keep-mask of ``noise_shape`` (broadcast against ``x``)
        whose units' Philox words of ``draw`` are ``>= threshold``, and'ed with
        a ReLU gate: ``relu=True`` gates on ``x`` (``not x <= 0``: NaN passes),
        an array ``relu`` of ``x``'s shape gates on it (ReLU-dropout's backward
        from its output ``h``), ``relu=False`` does not gate. ``draw`` is None
        when no bits are needed: ``threshold`` is then 0 (keep every unit) or
        ``2**32`` (drop every unit). ``scale`` is rounded to ``x``'s dtype; a
        dropped unit is exactly 0. ``out`` is None (a new array) or ``x``
        itself (write in place and return ``x``). Must equal the reference
        (:func:`dropkit.primitive.reference_mask_scale`) bit for bit; the
        conformance suite checks it. The core calls it for dropout, channel
        dropout, ReLU-dropout, drop path, alpha dropout and every backward.
        """
        ...


def default_draw(rng: Any, like: Any) -> KeyCounter:
    """The draw of a backend without :class:`DrawsKeys`: ``as_generator(rng).draw()``.

    Examples
    --------
    >>> default_draw(7, None)
    (7, 0)
    """
    if type(rng) is int and 0 <= rng < _MAX64:
        return (rng, 0)  # Generator(rng).draw(), without building the generator
    from .random import as_generator

    return as_generator(rng).draw()


@dataclass(frozen=True, slots=True)
class Capabilities:
    """A loaded backend and its capabilities, found once when it loads.

    Attributes
    ----------
    backend : Backend
        The loaded backend object.
    name : str
        Its name.
    xp : namespace
        Its array namespace.
    random_bits : callable
        Its ``random_bits``.
    draw : callable
        Its ``draw``, or :func:`default_draw`.
    mask_scale : callable or None
        Its ``mask_scale``, if it has one.
    libraries : tuple of str
        Top-level module names of the array types it serves (from its record).
    bounds : mapping
        The real floating dtypes of ``xp`` found when it loaded, each with the
        smallest value that overflows it: an op's dtype and scale checks are
        dict look-ups for these (:func:`dropkit._core.selected`).
    """

    backend: Backend
    name: str
    xp: Any
    random_bits: Callable[..., Any]
    draw: Callable[[Any, Any], Any]
    mask_scale: Callable[..., Any] | None
    libraries: tuple[str, ...] = ()
    bounds: Mapping[Any, float] = field(default_factory=dict)


def capabilities(backend: Backend, libraries: tuple[str, ...] = ()) -> Capabilities:
    """Find ``backend``'s optional members once, into a :class:`Capabilities` record.

    Examples
    --------
    >>> import array_api_strict
    >>> caps = capabilities(ArrayAPIBackend("s", array_api_strict))
    >>> caps.mask_scale is None, caps.draw is default_draw
    (True, True)
    """
    draw = getattr(backend, "draw", None)
    mask_scale = getattr(backend, "mask_scale", None)
    bounds = prime(backend.xp)
    return Capabilities(
        backend=backend,
        name=backend.name,
        xp=backend.xp,
        random_bits=backend.random_bits,
        draw=draw if callable(draw) else default_draw,
        mask_scale=mask_scale if callable(mask_scale) else None,
        libraries=tuple(libraries),
        bounds=bounds,
    )


class ArrayAPIBackend:
    """A backend that computes the bits with the array-API reference.

    Parameters
    ----------
    name : str
        The backend's name.
    xp : namespace
        Any array-API-conforming namespace.

    Examples
    --------
    >>> import array_api_strict
    >>> ArrayAPIBackend("s", array_api_strict).devices()[0]
    array_api_strict.Device('CPU_DEVICE')
    """

    def __init__(self, name: str, xp: Any) -> None:
        self.name = name
        self.xp = xp

    def devices(self) -> list[Any]:
        """The namespace's devices (array API inspection), or its default one."""
        info = getattr(self.xp, "__array_namespace_info__", None)
        if info is not None:
            return list(info().devices())
        return [array_api_compat.device(self.xp.empty(0))]

    def random_bits(self, draw: Any, n: int, *, offset: int = 0, device: Any = None) -> Any:
        """The reference words of ``draw = (key, counter)``: :func:`dropkit.philox.random_bits`."""
        key, counter = draw
        return philox.random_bits(self.xp, key, counter, n, offset=offset, device=device)

    def __repr__(self) -> str:
        return f"<dropkit backend {self.name!r} ({type(self).__name__})>"


@dataclass(frozen=True)
class BackendRecord:
    """What a plugin's ``dropkit_backends`` hook returns for one backend.

    Parameters
    ----------
    name : str
        Unique name used to select the backend.
    summary : str
        One line for ``dropkit backends``.
    load : callable
        Lazily imports the library and returns a :class:`Backend`; raises
        (e.g. ``ImportError``) when the library or device is missing.
    namespaces : tuple of str
        Top-level module names of the array types this backend serves (for
        ``numpy.ndarray`` that is ``"numpy"``).
    """

    name: str
    summary: str
    load: Callable[[], Backend]
    namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackendInfo:
    """A listed backend and whether it can be loaded here.

    Attributes
    ----------
    name, summary : str
        From the record (for a broken plugin: the entry point's name).
    distribution, version : str
        The distribution that registered it.
    available : bool
        Whether it loaded.
    reason : str or None
        Why it is unavailable.
    """

    name: str
    summary: str
    distribution: str
    version: str
    available: bool
    reason: str | None = None


@functools.lru_cache(maxsize=256)
def split_broadcast(shape: tuple[int, ...], noise: tuple[int, ...]) -> tuple[int, int, int] | None:
    """``(A, B, C)``: ``shape`` as outer, broadcast and inner sizes, or None.

    ``None`` when the mask is not broadcast along one contiguous run of axes
    (then a backend's one-pass broadcast-mask kernel does not apply). Shared
    by the backends' ``mask_scale`` kernels of channel dropout (NumPy, CuPy).

    Examples
    --------
    >>> split_broadcast((8, 3, 32, 32), (8, 3, 1, 1))
    (24, 1024, 1)
    >>> split_broadcast((8, 32, 32, 3), (8, 1, 1, 3))
    (8, 1024, 3)
    >>> split_broadcast((8, 3, 32, 32), (8, 1, 32, 1)) is None
    True
    """
    spread = [i for i, (n, m) in enumerate(zip(shape, noise, strict=True)) if m == 1 and n != 1]
    if not spread:
        return None
    lo, hi = spread[0], spread[-1] + 1
    if any(noise[i] != 1 and shape[i] != 1 for i in range(lo, hi)):
        return None
    return math.prod(shape[:lo]), math.prod(shape[lo:hi]), math.prod(shape[hi:])
