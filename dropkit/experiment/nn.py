"""The experiment's network: a fully connected ReLU net with dropout, explicit backward.

Everything is array-API code on the backend's namespace: He-normal weights drawn
from the portable generator (Box-Muller on Philox words), ReLU, dropout layers
on the hidden activations (optionally on the input), and a numerically stable
softmax cross-entropy. The backward pass is written out and checked against
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
import math
from collections.abc import Sequence
from typing import Any

import array_api_compat

from .._arrays import as_integer, check_flag, namespace_of
from ..backend import Backend
from ..layers import Dropout
from ..normals import standard_normal
from ..ops import dropout, eval_factor, relu_dropout, relu_dropout_backward
from ..random import Generator, RNGLike, as_generator
from ..registry import get_backend

__all__ = [
    "MLP",
    "accuracy",
    "he_normal",
    "lecun_normal",
    "relu_scaled",
    "selu",
    "softmax_cross_entropy",
    "standard_normal",
]

#: SELU's constants (Klambauer et al. 2017, eq. 14), to the digits of their paper's code.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def he_normal(
    backend: Backend, rng: Generator, fan_in: int, fan_out: int, dtype: Any, device: Any = None
) -> Any:
    """He (Kaiming) normal weights of shape ``(fan_in, fan_out)``: std sqrt(2 / fan_in)."""
    return standard_normal(backend, rng, (fan_in, fan_out), dtype, device) * math.sqrt(2.0 / fan_in)


def lecun_normal(
    backend: Backend, rng: Generator, fan_in: int, fan_out: int, dtype: Any, device: Any = None
) -> Any:
    """LeCun normal weights of shape ``(fan_in, fan_out)``: std sqrt(1 / fan_in), for SELU nets.

    The same standard normals as :func:`he_normal` for the same ``rng``, scaled
    by 1/sqrt(2) relative to it.

    Examples
    --------
    >>> import numpy as np
    >>> from dropkit import get_backend
    >>> w = lecun_normal(get_backend("numpy"), Generator(0), 400, 300, np.float64)
    >>> round(float(w.std() * 20), 1)
    1.0
    """
    return standard_normal(backend, rng, (fan_in, fan_out), dtype, device) * math.sqrt(1.0 / fan_in)


_INITS = {"relu": he_normal, "selu": lecun_normal}


def selu(xp: Any, z: Any) -> Any:
    """SELU: ``scale * z`` for z > 0, ``scale * alpha * (exp(z) - 1)`` otherwise.

    Examples
    --------
    >>> import array_api_compat.numpy as xp
    >>> [round(float(v), 4) for v in selu(xp, xp.asarray([-50.0, 0.0, 1.0]))]
    [-1.7581, 0.0, 1.0507]
    """
    negative = xp.where(z > 0, xp.zeros_like(z), z)  # no overflow of exp for large z
    return SELU_SCALE * xp.where(z > 0, z, SELU_ALPHA * xp.expm1(negative))


def _activate(xp: Any, activation: str, z: Any) -> Any:
    if activation == "selu":
        return selu(xp, z)
    return xp.where(z > 0, z, xp.zeros_like(z))


def _activation_grad(xp: Any, activation: str, a: Any, grad: Any) -> Any:
    """``grad * act'(z)`` from the activation's output ``a = act(z)``."""
    if activation == "selu":  # for z <= 0: scale * alpha * exp(z) = a + scale * alpha
        return grad * xp.where(a > 0, xp.full_like(a, SELU_SCALE), a + SELU_SCALE * SELU_ALPHA)
    return xp.where(a > 0, grad, xp.zeros_like(grad))


def softmax_cross_entropy(
    xp: Any, logits: Any, labels: Any, *, check_labels: bool = True, as_array: bool = False
) -> tuple[Any, Any]:
    """Mean softmax cross-entropy and its gradient with respect to the logits.

    Stable for any logits: the row maximum is subtracted before ``exp``.
    ``logits`` is ``(N, C)``; ``labels`` ``N`` integers in ``[0, C)``, checked
    (a label out of range would silently match no class) unless
    ``check_labels=False`` (for labels checked once beforehand: the check reads
    a result back to the host, which waits for a GPU). The loss is a Python
    float, or with ``as_array=True`` the 0-d array it is read from (same value,
    nothing read back: a training loop sums these on the device).

    Examples
    --------
    >>> import numpy as np
    >>> import array_api_compat.numpy as xp
    >>> loss, g = softmax_cross_entropy(xp, np.array([[1000.0, 0.0]]), np.array([0]))
    >>> loss, g.tolist()
    (0.0, [[0.0, 0.0]])
    >>> softmax_cross_entropy(xp, np.zeros((2, 3)), np.array([0, 3]))
    Traceback (most recent call last):
    ...
    ValueError: labels must be class indices in [0, 3) (logits have 3 columns), got 3 at index 1
    >>> loss, g = softmax_cross_entropy(xp, np.zeros((2, 4)), np.array([0, 3]), as_array=True)
    >>> loss.shape, round(float(loss), 6)
    ((), 1.386294)
    """
    check_labels = check_flag(check_labels, "check_labels")
    as_array = check_flag(as_array, "as_array")
    if len(logits.shape) != 2:
        raise ValueError(f"logits must be 2-d (N, classes), got shape {tuple(logits.shape)}")
    n, c = logits.shape
    if tuple(labels.shape) != (n,) or not xp.isdtype(labels.dtype, "integral"):
        raise ValueError(
            f"labels must be a 1-d integer array of the {n} rows of logits, got shape "
            f"{tuple(labels.shape)} and dtype {labels.dtype}"
        )
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    exp = xp.exp(shifted)
    total = xp.sum(exp, axis=1, keepdims=True)
    classes = xp.arange(c, device=array_api_compat.device(labels))
    hits = labels[:, None] == classes[None, :]
    if check_labels:
        _check_labels(xp, labels, hits, c)
    onehot = xp.astype(hits, logits.dtype)
    picked = xp.sum(shifted * onehot, axis=1)
    loss = xp.mean(xp.log(total[:, 0]) - picked)
    grad = (exp / total - onehot) / logits.shape[0]
    return (loss if as_array else float(loss)), grad


def _check_labels(xp: Any, labels: Any, hits: Any, classes: int) -> None:
    """Raise naming the first label that matches no class (one reduction on the labels)."""
    matched = xp.any(hits, axis=1)
    if labels.shape[0] and not bool(xp.all(matched)):
        first = int(xp.argmax(xp.astype(xp.logical_not(matched), xp.int32)))
        raise ValueError(
            f"labels must be class indices in [0, {classes}) (logits have {classes} columns), "
            f"got {int(labels[first])} at index {first}"
        )


def relu_scaled(xp: Any, z: Any, factor: float = 1.0) -> Any:
    """``relu(z) * factor`` as :func:`~dropkit.ops.relu_dropout` computes it without dropout.

    Equal to ``where(not (z <= 0), z * factor, 0)`` (the factor rounded to
    ``z``'s dtype; NaN passes, as in ``torch.relu``; ``-0.0`` becomes ``+0.0``)
    but with ``maximum`` instead of a select: on NumPy the select with an
    unpredictable condition costs about 8x more. ``maximum`` propagates NaN
    (the array API standard requires it); the sign of a zero it returns is
    unspecified, so ``+0.0`` is added last (``-0.0 + 0.0 == +0.0``, and
    ``v + 0.0 == v`` for every other ``v``). Used for the hidden layers of
    :class:`MLP` when no unit is dropped (evaluation, or ``p = 0``).

    Examples
    --------
    >>> import numpy as np
    >>> import array_api_compat.numpy as xp
    >>> relu_scaled(xp, np.array([-2.0, -0.0, 3.0, np.nan, -np.inf]), 0.5).tolist()
    [0.0, 0.0, 1.5, nan, 0.0]
    """
    dev = array_api_compat.device(z)
    zero = xp.zeros((), dtype=z.dtype, device=dev)
    h = xp.maximum(z, zero)  # a new array: the input is left as it is
    writable = array_api_compat.is_writeable_array(h)
    if factor != 1.0:  # after the ReLU, so -inf * 0 (p = 1, vanilla) is 0, not NaN
        f = xp.asarray(factor, dtype=z.dtype, device=dev)
        if writable:
            h *= f
        else:
            h = h * f
    if writable:
        h += zero
    else:
        h = h + zero
    return h


def accuracy(xp: Any, logits: Any, labels: Any) -> int:
    """Number of rows whose arg-max equals the label."""
    return int(xp.sum(xp.astype(xp.argmax(logits, axis=1) == labels, xp.int32)))


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
        if not isinstance(activation, str) or activation not in _INITS:
            raise ValueError(f"activation must be one of {', '.join(_INITS)}, got {activation!r}")
        noise = Dropout if noise is None else noise
        if not (isinstance(noise, type) and issubclass(noise, Dropout)):
            raise TypeError(
                f"noise must be dropkit.layers.Dropout or a subclass of it (a layer class), got "
                f"{noise!r}"
            )
        self.activation = activation
        self.noise = noise
        self._fused = activation == "relu" and noise is Dropout
        init = _INITS[activation]
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
                a = _activate(self.xp, self.activation, z)
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
                delta = _activation_grad(xp, self.activation, self._outputs[i - 1], dh)
        return grads
