"""The experiment's network: a fully connected ReLU net with dropout, explicit backward.

Everything is array-API code on the backend's namespace: He-normal weights drawn
from the portable generator (Box-Muller on Philox words), ReLU, dropout layers
on the hidden activations (optionally on the input), and a numerically stable
softmax cross-entropy (those functions are :mod:`~dropkit.experiment.functional`,
re-exported here). The backward pass is written out and checked against
finite differences in the tests.

Examples
--------
>>> import numpy as np
>>> from dropkit import Generator, get_backend
>>> net = MLP([4, 8, 3], backend=get_backend("numpy"), rng=Generator(0), p_hidden=0.5)
>>> x = np.ones((5, 4), dtype=np.float32)
>>> logits = net.forward(x, training=True)
>>> loss, dlogits = softmax_cross_entropy(net.xp, logits, np.array([0, 1, 2, 0, 1]))
>>> grads = net.backward(dlogits)
>>> [g.shape for g in grads]
[(4, 8), (8,), (8, 3), (3,)]
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import array_api_compat

from ..backend import Backend
from ..checks import as_integer, check_flag, namespace_of
from ..layers import Dropout
from ..normals import standard_normal
from ..ops import dropout, eval_factor, relu_dropout, relu_dropout_backward
from ..random import Generator, RNGLike, as_generator
from ..selection import get_backend
from .functional import (
    INITS,
    SELU_ALPHA,
    SELU_SCALE,
    accuracy,
    activate,
    activation_grad,
    he_normal,
    lecun_normal,
    relu_scaled,
    selu,
    softmax_cross_entropy,
)

__all__ = [
    "MLP",
    "SELU_ALPHA",
    "SELU_SCALE",
    "accuracy",
    "he_normal",
    "lecun_normal",
    "relu_scaled",
    "selu",
    "softmax_cross_entropy",
    "standard_normal",
]


def _check_sizes(sizes: Any) -> list[int]:
    """Layer widths: at least two positive integers (NumPy integers too)."""
    problem = (
        f"sizes must be a sequence of positive integers (the widths, input first), got {sizes!r}"
    )
    if isinstance(sizes, str | bytes):
        raise TypeError(problem)
    try:
        entries = list(sizes)
    except TypeError:
        raise TypeError(problem) from None
    out = []
    for i, n in enumerate(entries):
        try:
            width = as_integer(n)
        except TypeError:
            raise TypeError(
                f"sizes must be a sequence of positive integers, got {entries!r}: entry {i} is "
                f"{n!r} ({type(n).__name__})"
            ) from None
        if width < 1:
            raise ValueError(
                f"sizes must be a sequence of positive integers, got {entries!r}: entry {i} is "
                f"{width}"
            )
        out.append(width)
    if len(out) < 2:
        raise ValueError(f"sizes must list at least 2 positive widths, got {entries!r}")
    return out


def _check_backend(backend: Any) -> Backend:
    """A loaded backend, or a backend name to load."""
    if isinstance(backend, str):
        return get_backend(backend)
    if not all(hasattr(backend, attr) for attr in ("name", "xp", "random_bits")):
        raise TypeError(
            "backend must be a loaded dropkit backend (dropkit.get_backend(name)) or a backend "
            f"name, got {backend!r} ({type(backend).__name__})"
        )
    return backend


def _is_dtype(xp: Any, dtype: Any) -> bool:
    try:
        xp.isdtype(dtype, "real floating")
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def _float_dtype(xp: Any, dtype: Any) -> Any:
    """The namespace's dtype for ``dtype`` (a name or a dtype); it must be real floating."""
    names = [n for n in ("float16", "float32", "float64") if hasattr(xp, n)]
    resolved = dtype
    if isinstance(dtype, str):
        resolved = getattr(xp, dtype, None) if dtype.isidentifier() else None
        if resolved is None or not _is_dtype(xp, resolved):
            raise ValueError(f"dtype {dtype!r} is not a dtype of {xp.__name__}; use one of {names}")
    if not _is_dtype(xp, resolved):
        raise TypeError(
            f"dtype must be a float dtype name ({', '.join(names)}) or a dtype of "
            f"{xp.__name__}, got {dtype!r} ({type(dtype).__name__})"
        )
    if not xp.isdtype(resolved, "real floating"):
        raise TypeError(
            f"dtype must be a real floating dtype ({', '.join(names)}), got {dtype!r}: the "
            "parameters and activations of the net share it"
        )
    return resolved


class MLP:
    """Fully connected ReLU or SELU net, dropout (or another noise) after each hidden layer.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first: ``[40, 512, 256, 10]``.
    backend : Backend or str
        Where the arrays live (a loaded backend, or its name).
    rng : Generator, int or None
        Source of the initial weights and of the dropout layers' streams
        (one spawned child each, so the weights do not depend on ``p``); an
        int seed or None as for every ``rng=`` argument.
    p_hidden, p_input : float
        Drop probabilities on hidden units and on input units.
    mode : {"inverted", "vanilla"}
        Dropout mode.
    dtype : str or dtype
        Real floating dtype of parameters and activations (``"float32"``, ...).
    activation : {"relu", "selu"}
        The hidden activation; the weights are He normal for ReLU, LeCun
        normal for SELU (the same normals, scaled).
    noise : type, optional
        The noise layer class (:class:`~dropkit.layers.Dropout` or a subclass
        with its constructor, e.g. Gaussian or alpha dropout), built with
        ``p_input`` and ``p_hidden``; default :class:`~dropkit.layers.Dropout`.
        ReLU with :class:`~dropkit.layers.Dropout` runs the fused
        :func:`~dropkit.relu_dropout`; any other pair runs
        ``noise(act(z))`` with the layer's own backward.

    Attributes
    ----------
    params : list of arrays
        ``[W1, b1, W2, b2, ...]``.
    dropouts : list of Dropout
        Input dropout (if any) then one per hidden layer.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        backend: Backend | str,
        rng: RNGLike,
        p_hidden: float = 0.0,
        p_input: float = 0.0,
        mode: str = "inverted",
        dtype: str = "float32",
        device: Any = None,
        activation: str = "relu",
        noise: type | None = None,
    ) -> None:
        self.sizes = _check_sizes(sizes)
        backend = _check_backend(backend)
        self.backend = backend
        self.xp = backend.xp
        self.dtype = _float_dtype(self.xp, dtype)
        self.device = device
        if not isinstance(activation, str) or activation not in INITS:
            raise ValueError(f"activation must be one of {', '.join(INITS)}, got {activation!r}")
        noise = Dropout if noise is None else noise
        if not (isinstance(noise, type) and issubclass(noise, Dropout)):
            raise TypeError(
                f"noise must be dropkit.layers.Dropout or a subclass of it (a layer class), got "
                f"{noise!r}"
            )
        self.activation = activation
        self.noise = noise
        self._fused = activation == "relu" and noise is Dropout
        init = INITS[activation]
        init_rng, dropout_rng = as_generator(rng).spawn(2)
        self.params: list[Any] = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            self.params.append(init(backend, init_rng, fan_in, fan_out, self.dtype, device))
            self.params.append(self.xp.zeros((fan_out,), dtype=self.dtype, device=device))
        n_hidden = len(self.sizes) - 2
        streams = dropout_rng.spawn(n_hidden + 1)
        options: dict[str, Any] = {"backend": backend.name}
        if noise is Dropout or "mode" in inspect.signature(noise).parameters:
            options["mode"] = mode  # (a noise layer without modes, e.g. alpha dropout, has none)
        self.input_dropout = noise(p_input, rng=streams[0], **options)
        self.hidden_dropouts = [noise(p_hidden, rng=s, **options) for s in streams[1:]]
        self._cache: list[Any] = []
        self._outputs: list[Any] = []

    @property
    def dropouts(self) -> list[Dropout]:
        """Every dropout layer, input first."""
        return [self.input_dropout, *self.hidden_dropouts]

    def decay_mask(self) -> list[bool]:
        """Which parameters get weight decay: the weights, not the biases."""
        return [i % 2 == 0 for i in range(len(self.params))]

    def check_input(self, x: Any) -> None:
        """Raise unless ``x`` is a ``(N, sizes[0])`` array of the net's library and dtype.

        Examples
        --------
        >>> import numpy as np
        >>> from dropkit import get_backend
        >>> net = MLP([3, 2], backend=get_backend("numpy"), rng=0)
        >>> net.check_input(np.ones((4, 5), np.float32))
        Traceback (most recent call last):
        ...
        ValueError: x must have shape (N, 3) (N inputs of the net's 3 features), got shape (4, 5)
        """
        xp = namespace_of(x, "x")
        if xp is not self.xp:
            raise TypeError(
                f"x is an array of {xp.__name__}, but the net's parameters are arrays of "
                f"{self.xp.__name__} (backend {self.backend.name!r}); convert x first"
            )
        width = self.sizes[0]
        if len(x.shape) != 2 or x.shape[1] != width:
            raise ValueError(
                f"x must have shape (N, {width}) (N inputs of the net's {width} features), got "
                f"shape {tuple(x.shape)}"
            )
        if not xp.isdtype(x.dtype, "real floating"):
            raise TypeError(
                f"x must have a real floating dtype, got dtype {x.dtype}; convert it first, "
                f"e.g. xp.astype(x, {self.params[0].dtype})"
            )
        if x.dtype != self.params[0].dtype:
            raise TypeError(
                f"x has dtype {x.dtype} but the net's parameters have dtype "
                f"{self.params[0].dtype}; convert x first (xp.astype(x, net.params[0].dtype)) "
                "rather than mixing precisions"
            )

    def forward(self, x: Any, *, training: bool) -> Any:
        """Logits for ``x``; in training mode the activations are kept for backward.

        Each hidden layer is ``relu_dropout(h @ W + b)``, fused and in place
        where the backend allows; its output is all the backward pass needs.
        Other activations or noise layers: ``noise(act(h @ W + b))``, keeping
        ``act``'s output for the backward pass (the noise is regenerated).
        ``x`` must be a ``(N, sizes[0])`` array of the parameters' library and
        dtype (see :meth:`check_input`); ``training`` a bool.
        """
        training = check_flag(training, "training")
        self.check_input(x)
        for layer in self.dropouts:
            layer.train(training)
        h = self.input_dropout(x) if self.input_dropout.p > 0 else x
        activations = [h]
        outputs: list[Any] = []  # the activations before the noise (generic path only)
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            z = h @ self.params[2 * i]
            writable = array_api_compat.is_writeable_array(z)
            if writable:
                z += self.params[2 * i + 1]
            else:
                z = z + self.params[2 * i + 1]
            if i == n_layers - 1:
                h = z
                break
            layer = self.hidden_dropouts[i]
            if self._fused and training and layer.p > 0:
                h = relu_dropout(
                    z,
                    layer.p,
                    rng=layer.generator,
                    training=training,
                    mode=layer.mode,
                    inplace=writable,
                    backend=self.backend.name,
                )
            elif self._fused:  # no units dropped: ReLU (times the evaluation factor), no bits
                h = relu_scaled(self.xp, z, 1.0 if training else eval_factor(layer.p, layer.mode))
            else:
                a = activate(self.xp, self.activation, z)
                outputs.append(a)
                h = layer(a) if layer.p > 0 else a
            activations.append(h)
        self._cache = activations if training else []
        self._outputs = outputs if training else []
        return h

    def mc_forward(self, xs: Any, rng: Generator) -> Any:
        """Logits of dropout passes over ``xs`` ``(T, N, features)``, masks drawn from ``rng``.

        The model callable of :func:`dropkit.mc_dropout_forward` (Monte Carlo
        dropout): each dropout layer draws the masks of all ``T`` passes at once
        over ``(T, N, width)``, from one child stream of ``rng`` per layer (input
        first); the net's own generators are not touched and nothing is kept
        for a backward pass. ``xs[t]`` must be what :meth:`check_input` accepts.

        Raises
        ------
        ValueError
            For a net other than ReLU with standard dropout layers (their
            passes are not this fused form).

        Examples
        --------
        >>> import numpy as np
        >>> net = MLP([3, 4, 2], backend="numpy", rng=0, p_hidden=0.5)
        >>> xs = np.ones((5, 2, 3), np.float32)  # 5 passes over a batch of 2
        >>> net.mc_forward(xs, Generator(1)).shape
        (5, 2, 2)
        """
        if not self._fused:
            raise ValueError(
                "Monte Carlo dropout here covers ReLU nets with standard dropout layers; this "
                f"net has activation={self.activation!r} or another noise layer: build it with "
                "activation='relu' and the default noise"
            )
        if len(xs.shape) < 1:
            raise ValueError(f"xs must have shape (T, N, {self.sizes[0]}), got shape ()")
        self.check_input(xs[0, ...])  # so xs is (T, N, features)
        streams = rng.spawn(len(self.hidden_dropouts) + 1)
        name = self.backend.name
        h = xs
        if self.input_dropout.p > 0:
            layer = self.input_dropout
            h = dropout(h, layer.p, rng=streams[0], mode=layer.mode, backend=name)
        for i, layer in enumerate(self.hidden_dropouts):
            z = h @ self.params[2 * i] + self.params[2 * i + 1]
            h = relu_dropout(z, layer.p, rng=streams[i + 1], mode=layer.mode, backend=name)
        return h @ self.params[-2] + self.params[-1]

    def backward(self, dlogits: Any) -> list[Any]:
        """Gradients of the loss for every parameter, from the last training forward."""
        if not self._cache:
            raise RuntimeError("MLP.backward needs a forward pass with training=True first")
        want = (self._cache[0].shape[0], self.sizes[-1])
        if tuple(dlogits.shape) != want:
            raise ValueError(
                f"dlogits must have the shape of the last training forward's logits {want}, "
                f"got {tuple(dlogits.shape)}"
            )
        xp = self.xp
        grads: list[Any] = [None] * len(self.params)
        delta = dlogits
        for i in reversed(range(len(self._cache))):
            grads[2 * i] = xp.matrix_transpose(self._cache[i]) @ delta
            grads[2 * i + 1] = xp.sum(delta, axis=0)
            if i == 0:
                break  # no gradient for the input is needed
            layer = self.hidden_dropouts[i - 1]
            dh = delta @ xp.matrix_transpose(self.params[2 * i])
            if self._fused:
                delta = relu_dropout_backward(dh, self._cache[i], layer.p, mode=layer.mode)
            else:
                dh = layer.backward(dh) if layer.p > 0 else dh
                delta = activation_grad(xp, self.activation, self._outputs[i - 1], dh)
        return grads
