"""SGD with momentum or Nesterov momentum, L2 weight decay, and a step schedule.

The optimiser step is the application's own kernel, not the library's: the
array-API update below is the reference and works on every namespace, and a
faster kernel for one array library comes from a plugin of the application's
hook ``dropkit_sgd_kernel(xp)`` (:mod:`dropkit.experiment.hookspecs`). The
backend distributions keep their compiled code (dropkit-numpy a Numba kernel,
dropkit-cupy a CUDA one) and offer it through that hook, in the entry-point
group ``dropkit.experiment``, never through the backend contract; the
training loop asks its plugin manager once per run and passes the kernel to
:class:`SGD`. A kernel must give the array-API update's bits (tested in
``tests/experiment``), so a run's numbers do not depend on whether it is
installed; it may decline a call (other dtypes, strided arrays), which then
takes the array-API update.

Examples
--------
>>> import numpy as np
>>> import array_api_compat.numpy as xp
>>> params = [np.array([1.0]), np.array([1.0])]
>>> opt = SGD(xp, params, momentum=0.9, weight_decay=0.1, decay=[True, False])
>>> opt.step([np.array([0.0]), np.array([0.0])], lr=1.0)
>>> [float(p[0]) for p in params]   # only the weight decays
[0.9, 1.0]
>>> StepSchedule(0.05, every=75, times=3).lr(300)
0.00625
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .hookspecs import SGDKernel

__all__ = ["SGD", "StepSchedule"]


class SGD:
    """Stochastic gradient descent, PyTorch's formulation.

    With ``g = grad + weight_decay * w`` (for parameters with ``decay``),
    ``v = momentum * v + g`` and the step is ``v`` (classical) or
    ``g + momentum * v`` (Nesterov); ``w -= lr * step``. Parameters are
    updated in the list ``params`` (new arrays, so immutable arrays work).

    Parameters
    ----------
    xp : namespace
        Array namespace of the parameters.
    params : list of arrays
        Updated in place (list items replaced).
    momentum : float
        Momentum coefficient (0 for plain SGD).
    nesterov : bool
        Nesterov momentum.
    weight_decay : float
        L2 coefficient.
    decay : sequence of bool, optional
        Which parameters decay (default: all).
    kernel : callable, optional
        A fused in-place update (:data:`dropkit.experiment.hookspecs.SGDKernel`,
        e.g. from :func:`dropkit.experiment.plugins.sgd_kernel`): parameters and
        velocities are updated in place in one pass, same formula and bits; the
        array-API code below is the reference and the fallback.
    """

    def __init__(
        self,
        xp: Any,
        params: list[Any],
        *,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        decay: Sequence[bool] | None = None,
        kernel: SGDKernel | None = None,
    ) -> None:
        if momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"momentum and weight_decay must be >= 0, got {momentum} and {weight_decay}"
            )
        if nesterov and momentum == 0:
            raise ValueError("nesterov momentum needs momentum > 0")
        self.xp = xp
        self.params = params
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.decay = list(decay) if decay is not None else [True] * len(params)
        self.velocity = [xp.zeros_like(p) for p in params]
        self.kernel = kernel

    def step(self, grads: Sequence[Any], lr: float) -> None:
        """Apply one update with learning rate ``lr``."""
        for i, (w, g) in enumerate(zip(self.params, grads, strict=True)):
            decay = self.weight_decay if self.decay[i] else 0.0
            if self.kernel is not None and self.kernel(
                w,
                g,
                self.velocity[i],
                lr=lr,
                momentum=self.momentum,
                weight_decay=decay,
                nesterov=self.nesterov,
            ):
                continue
            if decay:
                g = g + decay * w
            if self.momentum:
                v = self.momentum * self.velocity[i] + g
                self.velocity[i] = v
                g = g + self.momentum * v if self.nesterov else v
            self.params[i] = w - lr * g


@dataclass(frozen=True)
class StepSchedule:
    """Learning rate ``base * factor ** min(times, epoch // every)`` (epochs from 0).

    Examples
    --------
    >>> s = StepSchedule(1e-3, every=50, times=4)
    >>> [s.lr(e) for e in (0, 49, 50, 199, 200, 299)]
    [0.001, 0.001, 0.0005, 0.000125, 6.25e-05, 6.25e-05]
    """

    base: float
    every: int = 0
    times: int = 0
    factor: float = 0.5

    def lr(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (0-based)."""
        if self.every <= 0 or self.times <= 0:
            return self.base
        return self.base * self.factor ** min(self.times, epoch // self.every)
