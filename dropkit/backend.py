"""The backend contract: what a plugin returns and what loading it gives.

A backend supplies what the array API standard lacks: the namespace for its
arrays and devices, and the random words of Philox4x32-10 for a draw. The ops
do everything else with standard operations on the namespace.

Examples
--------
>>> import array_api_strict
>>> b = ArrayAPIBackend("strict", array_api_strict)
>>> b.random_bits(key=0, counter=0, n=2)
Array([1713891541, 3781805453], dtype=array_api_strict.uint32)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard, runtime_checkable

import array_api_compat

from . import philox

__all__ = [
    "ArrayAPIBackend",
    "Backend",
    "BackendInfo",
    "BackendRecord",
    "NativeBackend",
    "has_native_ops",
    "split_broadcast",
]


@runtime_checkable
class Backend(Protocol):
    """What a loaded backend provides.

    Attributes
    ----------
    name : str
        The backend's registered name.
    xp : namespace
        An array-API-conforming namespace for the backend's arrays.
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

    def random_bits(
        self, key: int, counter: int, n: int, *, offset: int = 0, device: Any = None
    ) -> Any:
        """The Philox words of elements ``offset .. offset + n - 1``.

        Must equal :func:`dropkit.philox.random_bits` bit for bit: a uint32
        array, or (for namespaces without unsigned arithmetic) an int64 array
        holding the same values.

        A backend may also define, as optional fast paths:

        ``dropout_fused(x, key, counter, threshold, scale, *, relu=False,
        out=None)``: one pass that returns ``where(word >= threshold [and x >
        0 if relu], x * scale, 0)`` over ``x``'s elements in C order, written
        into ``out`` if given (which may be ``x``), or ``None`` to decline (e.g.
        for a dtype it has no kernel for). It must equal the array-API path for
        the same bits; the conformance suite checks it.

        ``dropout_masked(x, mask, scale, *, out=None)``: ``where(mask, x *
        scale, 0)`` with the boolean ``mask`` of a noise shape broadcast to
        ``x`` (channel dropout), written into ``out`` if given (which may be
        ``x``), or ``None`` to decline. It must equal the array-API path.

        ``relu_dropout_backward_fused(grad, h, scale)``: a new array
        ``where(h > 0, grad * scale, 0)`` for ``grad`` and ``h`` of one shape,
        or ``None`` to decline (e.g. mixed dtypes). It must equal the
        array-API path.

        ``sgd_update(w, g, v, *, lr, momentum, weight_decay, nesterov)``: the
        in-place update of :class:`dropkit.experiment.optim.SGD` in one pass; returns
        False (having done nothing) to decline.

        ``family_bits(rng, x, n)``: the ``n`` words of one draw of ``rng`` for
        an op of the dropout family (:mod:`dropkit.gaussian`,
        :mod:`dropkit.alpha`, :mod:`dropkit.structured`) on the array ``x``,
        for backends whose framework has its own keys (torch's generator, JAX
        keys) or traces the draw (``torch.compile``, ``jax.jit``). The words
        must equal :meth:`random_bits`'s for the same ``(key, counter)``.
        Without it the family draws ``random_bits(*as_generator(rng).draw(), n)``.

        ``dropout_native(x, p, *, noise_shape, rng, training, mode, relu,
        return_mask, inplace)``, ``dropout_backward_native(grad, p, *,
        noise_shape, mask, rng, training, mode)`` and
        ``relu_dropout_backward_native(grad, h, p, *, training, mode)``: the
        whole op in the framework's own form (e.g. a registered torch custom
        op with an autograd formula, and keys from the framework's generator).
        When a backend has them, the core hands its arrays to them after
        selection and they own the semantics (the conformance suite checks
        them like the array-API path). Such a backend is remembered per array
        library (:func:`dropkit.registry.register_native`), so later calls
        resolve without the plugin registry, which tracing compilers cannot
        follow. :class:`NativeBackend` types these three.
        """
        ...


@runtime_checkable
class NativeBackend(Backend, Protocol):
    """A backend that runs the ops in its framework's own form.

    The core hands its arrays to these methods after selection (see
    :class:`Backend`); their arguments are those of :func:`dropkit.dropout`,
    :func:`dropkit.dropout_backward` and :func:`dropkit.relu_dropout_backward`,
    passed unchecked, with ``relu`` selecting :func:`dropkit.relu_dropout`.
    """

    def dropout_native(
        self,
        x: Any,
        p: Any,
        *,
        noise_shape: Any,
        rng: Any,
        training: bool,
        mode: str,
        relu: bool,
        return_mask: Any,
        inplace: bool,
    ) -> Any:
        """The forward op (of ``relu(x)`` if ``relu``); the mask too if ``return_mask``."""
        ...

    def dropout_backward_native(
        self,
        grad: Any,
        p: Any,
        *,
        noise_shape: Any,
        mask: Any,
        rng: Any,
        training: bool,
        mode: str,
    ) -> Any:
        """The gradient of the forward op, from ``mask`` or by regenerating it from ``rng``."""
        ...

    def relu_dropout_backward_native(
        self, grad: Any, h: Any, p: Any, *, training: bool, mode: str
    ) -> Any:
        """The gradient of ReLU-dropout from its output ``h``."""
        ...


def has_native_ops(backend: Backend) -> TypeGuard[NativeBackend]:
    """Whether ``backend`` runs the ops in its framework's own form (:class:`NativeBackend`).

    A plain attribute check, which tracing compilers follow.

    Examples
    --------
    >>> import array_api_strict
    >>> has_native_ops(ArrayAPIBackend("s", array_api_strict))
    False
    """
    return hasattr(backend, "dropout_native")


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

    def random_bits(
        self, key: int, counter: int, n: int, *, offset: int = 0, device: Any = None
    ) -> Any:
        """The reference Philox words (see :func:`dropkit.philox.random_bits`)."""
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


def split_broadcast(shape: tuple[int, ...], noise: tuple[int, ...]) -> tuple[int, int, int] | None:
    """``(A, B, C)``: ``shape`` as outer, broadcast and inner sizes, or None.

    ``None`` when the mask is not broadcast along one contiguous run of axes
    (then a backend's one-pass broadcast-mask kernel does not apply). Shared
    by the backends' ``dropout_masked`` kernels (NumPy, CuPy).

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
