"""Dropout layers: train/eval switching, forward, and backward without a stored mask.

A layer keeps its own :class:`~dropkit.Generator`. Each training forward pass
draws once; the layer remembers only the two integers of that draw and
regenerates the mask in :meth:`Dropout.backward`.

These are the framework-free layers of dropkit's own training loop (explicit
``backward``). Inside a framework use its form: ``dropkit_torch.nn.Dropout``
is a ``torch.nn.Module`` (``model.eval()`` reaches it, autograd and
``torch.compile`` handle it).

Examples
--------
>>> import numpy as np
>>> layer = Dropout(0.5, rng=0)
>>> y = layer(np.ones((2, 3)))
>>> dx = layer.backward(np.ones((2, 3)))
>>> bool(np.all(dx == y))
True
>>> layer.eval()(np.ones(3)).tolist()
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

from .alpha import (
    alpha_dropout,
    alpha_dropout_backward,
    feature_alpha_dropout,
    feature_alpha_dropout_backward,
)
from .channel import (
    dropout1d,
    dropout1d_backward,
    dropout2d,
    dropout2d_backward,
    dropout3d,
    dropout3d_backward,
)
from .checks import check_flag, check_mode, check_p, check_stddev
from .gaussian import (
    gaussian_dropout,
    gaussian_dropout_backward,
    gaussian_dropout_stddev,
    gaussian_noise,
    gaussian_noise_backward,
)
from .ops import dropout, dropout_backward
from .random import Generator, RNGLike, as_generator
from .structured import (
    check_block_size,
    drop_path,
    drop_path_backward,
    dropblock2d,
    dropblock2d_backward,
)

__all__ = [
    "AlphaDropout",
    "DropBlock2d",
    "DropPath",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
]


#: The settings a backward reads from the layer, recorded by each forward.
_SETTINGS = ("p", "stddev", "channel_axis", "block_size", "backend")


class _Recorded(NamedTuple):
    """What a forward pass leaves for its backward: the draw, the mode, the shape, the settings."""

    generator: Generator
    kwargs: dict[str, Any]
    shape: tuple[Any, ...]
    settings: dict[str, Any]


def _shape(x: Any) -> tuple[Any, ...]:
    shape = getattr(x, "shape", None)
    return tuple(shape) if shape is not None else ()


class Dropout:
    """Element-wise dropout layer.

    Parameters
    ----------
    p : float
        Drop probability in [0, 1].
    rng : None, int, Generator or numpy.random.Generator, optional
        The layer's random stream (SPEC 7).
    mode : {"inverted", "vanilla"}, optional
        See :func:`dropkit.dropout`.
    backend : str, optional
        Backend name; default: from the arrays.

    Attributes
    ----------
    training : bool
        True after :meth:`train` (the default), False after :meth:`eval`.
    generator : Generator
        The layer's stream; its :attr:`~Generator.state` is what a checkpoint saves.
    """

    def __init__(
        self,
        p: float = 0.5,
        *,
        rng: RNGLike = None,
        mode: str = "inverted",
        backend: str | None = None,
    ) -> None:
        self.p = check_p(p)
        self.mode = check_mode(mode)
        self.backend = backend
        self.generator = as_generator(rng)
        self.training = True
        self._last: _Recorded | None = None

    def train(self, mode: bool = True) -> Dropout:
        """Switch to training (or, with ``mode=False``, evaluation); return self.

        ``mode`` must be a bool (``"no"`` is refused, not read as truthy).
        """
        self.training = check_flag(mode, "mode")
        return self

    def eval(self) -> Dropout:
        """Switch to evaluation; return self."""
        return self.train(False)

    def _kwargs(self) -> dict[str, Any]:
        return {"training": self.training, "mode": self.mode, "backend": self.backend}

    def _forward(self, x: Any, rng: Generator) -> Any:
        return dropout(x, self.p, rng=rng, **self._kwargs())

    def _backward(self, grad: Any, rng: Generator, kw: dict[str, Any]) -> Any:
        return dropout_backward(grad, self.p, rng=rng, **kw)

    def forward(self, x: Any) -> Any:
        """Apply dropout to ``x`` (one draw from the layer's generator when training).

        The draw, the mode (training or not, ``mode``), the input's shape and the
        layer's settings (``p``, ``block_size``, ...) are recorded:
        :meth:`backward` differentiates this forward, whatever :meth:`train` /
        :meth:`eval` or an assignment to ``layer.p`` did since.
        """
        settings = {name: vars(self)[name] for name in _SETTINGS if name in vars(self)}
        recorded = _Recorded(self.generator.copy(), self._kwargs(), _shape(x), settings)
        y = self._forward(x, self.generator)
        self._last = recorded
        return y

    __call__ = forward

    def backward(self, grad: Any) -> Any:
        """Gradient of the last forward's output with respect to its input.

        The mask is regenerated from the draw recorded by :meth:`forward`, in the
        mode that forward ran in (a forward in training mode followed by
        :meth:`eval` still gets its mask applied).

        Raises
        ------
        RuntimeError
            If no forward ran yet.
        ValueError
            If ``grad``'s shape is not the last forward input's shape.
        """
        last = self._last
        name = type(self).__name__
        if last is None:
            raise RuntimeError(
                f"{name}.backward called before any forward: call the layer on the input "
                "first (y = layer(x)), then layer.backward(dy) with the gradient of y"
            )
        shape = _shape(grad)
        if shape != last.shape:
            raise ValueError(
                f"{name}.backward got a gradient of shape {shape}, but the last forward's "
                f"input had shape {last.shape}: pass the gradient of that forward's output "
                "(backward differentiates the last forward only)"
            )
        as_recorded = copy.copy(self)  # the settings of the last forward, not today's
        vars(as_recorded).update(last.settings)
        return as_recorded._backward(grad, last.generator.copy(), dict(last.kwargs))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(p={self.p}, mode={self.mode!r}, "
            f"training={self.training}, generator={self.generator})"
        )


class _ChannelDropout(Dropout):
    _fwd: Any
    _bwd: Any

    def __init__(
        self,
        p: float = 0.5,
        *,
        channel_axis: int = 1,
        rng: RNGLike = None,
        mode: str = "inverted",
        backend: str | None = None,
    ) -> None:
        super().__init__(p, rng=rng, mode=mode, backend=backend)
        self.channel_axis = channel_axis

    def _forward(self, x: Any, rng: Generator) -> Any:
        fwd = type(self)._fwd
        return fwd(x, self.p, channel_axis=self.channel_axis, rng=rng, **self._kwargs())

    def _backward(self, grad: Any, rng: Generator, kw: dict[str, Any]) -> Any:
        bwd = type(self)._bwd
        return bwd(grad, self.p, channel_axis=self.channel_axis, rng=rng, **kw)


class Dropout1d(_ChannelDropout):
    """Channel dropout layer for (N, C, L) inputs; see :func:`dropkit.dropout1d`.

    Examples
    --------
    >>> import numpy as np
    >>> y = Dropout1d(0.5, rng=0)(np.ones((2, 4, 5)))
    >>> bool(np.all(y.min(axis=2) == y.max(axis=2)))
    True
    """

    _fwd = staticmethod(dropout1d)
    _bwd = staticmethod(dropout1d_backward)


class Dropout2d(_ChannelDropout):
    """Channel dropout layer for (N, C, H, W) inputs; see :func:`dropkit.dropout2d`.

    Examples
    --------
    >>> import numpy as np
    >>> Dropout2d(0.5, rng=0)(np.ones((2, 4, 3, 3))).shape
    (2, 4, 3, 3)
    """

    _fwd = staticmethod(dropout2d)
    _bwd = staticmethod(dropout2d_backward)


class Dropout3d(_ChannelDropout):
    """Channel dropout layer for (N, C, D, H, W) inputs; see :func:`dropkit.dropout3d`.

    Examples
    --------
    >>> import numpy as np
    >>> Dropout3d(0.5, rng=0)(np.ones((1, 2, 2, 2, 2))).shape
    (1, 2, 2, 2, 2)
    """

    _fwd = staticmethod(dropout3d)
    _bwd = staticmethod(dropout3d_backward)


class GaussianDropout(Dropout):
    """Gaussian dropout layer: noise of mean 1, variance ``p / (1 - p)``; see :func:`dropkit.gaussian_dropout`.

    Examples
    --------
    >>> import numpy as np
    >>> layer = GaussianDropout(0.2, rng=0)
    >>> y = layer(np.ones((2, 3)))
    >>> bool(np.all(layer.backward(np.ones((2, 3))) == y))   # the noise, regenerated
    True
    """  # noqa: E501

    def __init__(
        self,
        p: float = 0.5,
        *,
        rng: RNGLike = None,
        mode: str = "inverted",
        backend: str | None = None,
    ) -> None:
        gaussian_dropout_stddev(p)  # p = 1 refused here, not at the first call
        super().__init__(p, rng=rng, mode=mode, backend=backend)

    def _forward(self, x: Any, rng: Generator) -> Any:
        return gaussian_dropout(x, self.p, rng=rng, **self._kwargs())

    def _backward(self, grad: Any, rng: Generator, kw: dict[str, Any]) -> Any:
        return gaussian_dropout_backward(grad, self.p, rng=rng, **kw)


class GaussianNoise(Dropout):
    """Additive Gaussian noise layer (training only); see :func:`dropkit.gaussian_noise`.

    Examples
    --------
    >>> import numpy as np
    >>> layer = GaussianNoise(0.1, rng=0)
    >>> layer(np.zeros(3)).shape, layer.eval()(np.zeros(3)).tolist()
    ((3,), [0.0, 0.0, 0.0])
    """

    def __init__(self, stddev: float, *, rng: RNGLike = None, backend: str | None = None) -> None:
        super().__init__(0.0, rng=rng, backend=backend)
        self.stddev = check_stddev(stddev)

    def _forward(self, x: Any, rng: Generator) -> Any:
        return gaussian_noise(x, self.stddev, rng=rng, training=self.training, backend=self.backend)

    def _backward(self, grad: Any, rng: Generator, kw: dict[str, Any]) -> Any:
        return gaussian_noise_backward(
            grad, self.stddev, training=kw["training"], backend=self.backend
        )

    def __repr__(self) -> str:
        return (
            f"GaussianNoise(stddev={self.stddev}, training={self.training}, "
            f"generator={self.generator})"
        )


class AlphaDropout(Dropout):
    """Alpha dropout layer for SELU networks; see :func:`dropkit.alpha_dropout`.

    Examples
    --------
    >>> import numpy as np
    >>> layer = AlphaDropout(0.5, rng=0)
    >>> y = layer(np.ones(6))
    >>> dx = layer.backward(np.ones(6))
    >>> bool(np.all((dx == 0) == np.isclose(y, y.min())))   # no gradient where dropped
    True
    """

    def __init__(self, p: float = 0.5, *, rng: RNGLike = None, backend: str | None = None) -> None:
        super().__init__(p, rng=rng, backend=backend)

    def _kwargs(self) -> dict[str, Any]:
        return {"training": self.training, "backend": self.backend}

    def _forward(self, x: Any, rng: Generator) -> Any:
        return alpha_dropout(x, self.p, rng=rng, **self._kwargs())

    def _backward(self, grad: Any, rng: Generator, kw: dict[str, Any]) -> Any:
        return alpha_dropout_backward(grad, self.p, rng=rng, **kw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, training={self.training}, generator={self.generator})"  # noqa: E501


class FeatureAlphaDropout(AlphaDropout):
    """Alpha dropout of whole channels; see :func:`dropkit.feature_alpha_dropout`.

    Examples
    --------
    >>> import numpy as np
    >>> y = FeatureAlphaDropout(0.5, rng=0)(np.ones((2, 4, 5)))
    >>> bool(np.all(y.min(axis=2) == y.max(axis=2)))
    True
    """

    def __init__(
        self,
        p: float = 0.5,
        *,
        channel_axis: int = 1,
        rng: RNGLike = None,
        backend: str | None = None,
    ) -> None:
        super().__init__(p, rng=rng, backend=backend)
        self.channel_axis = channel_axis

    def _forward(self, x: Any, rng: Generator) -> Any:
        return feature_alpha_dropout(
            x, self.p, channel_axis=self.channel_axis, rng=rng, **self._kwargs()
        )

    def _backward(self, grad: Any, rng: Generator, kw: dict[str, Any]) -> Any:
        return feature_alpha_dropout_backward(
            grad, self.p, channel_axis=self.channel_axis, rng=rng, **kw
        )


class DropPath(Dropout):
    """Stochastic depth layer: drop whole samples; see :func:`dropkit.drop_path`.

    Examples
    --------
    >>> import numpy as np
    >>> y = DropPath(0.5, rng=0)(np.ones((6, 3)))
    >>> bool(np.all(y.min(axis=1) == y.max(axis=1)))
    True
    """

    def _forward(self, x: Any, rng: Generator) -> Any:
        return drop_path(x, self.p, rng=rng, **self._kwargs())

    def _backward(self, grad: Any, rng: Generator, kw: dict[str, Any]) -> Any:
        return drop_path_backward(grad, self.p, rng=rng, **kw)


class DropBlock2d(Dropout):
    """DropBlock layer for (N, C, H, W) inputs; see :func:`dropkit.dropblock2d`.

    Examples
    --------
    >>> import numpy as np
    >>> layer = DropBlock2d(0.2, block_size=3, rng=0)
    >>> y = layer(np.ones((2, 3, 8, 8)))
    >>> bool(np.all(layer.backward(np.ones((2, 3, 8, 8))) == y))
    True
    """

    def __init__(
        self,
        p: float = 0.1,
        *,
        block_size: int,
        channel_axis: int = 1,
        rng: RNGLike = None,
        mode: str = "inverted",
        backend: str | None = None,
    ) -> None:
        super().__init__(p, rng=rng, mode=mode, backend=backend)
        self.block_size = check_block_size(block_size)
        self.channel_axis = channel_axis

    def _block_kwargs(self) -> dict[str, Any]:
        return {"block_size": self.block_size, "channel_axis": self.channel_axis}

    def _forward(self, x: Any, rng: Generator) -> Any:
        return dropblock2d(x, self.p, rng=rng, **self._block_kwargs(), **self._kwargs())

    def _backward(self, grad: Any, rng: Generator, kw: dict[str, Any]) -> Any:
        return dropblock2d_backward(grad, self.p, rng=rng, **self._block_kwargs(), **kw)
