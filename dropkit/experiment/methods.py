"""The regularisation methods a comparison can run, by name.

A method is a noise layer of :mod:`dropkit.layers` (named by its class name,
looked up when a method is used, so a method whose layer this installation
lacks is listed but refused with a clear error) and an activation: the
SELU-specific alpha dropout always runs in a SELU net, the others in the net
of ``--activation`` (ReLU by default). The weights follow the activation: He
normal for ReLU, LeCun normal for SELU (Klambauer et al. 2017), drawn from the
same standard normals for the same seed, so every method of one seed and one
activation starts from the same weights.

Examples
--------
>>> [m.name for m in parse_methods("standard,dropout")]
['standard', 'dropout']
>>> parse_methods("standard,nope")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: --methods: unknown method 'nope'; the methods are standard, dropout, gaussian, alpha
>>> METHODS["alpha"].activation_for("relu")
'selu'
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACTIVATIONS",
    "METHODS",
    "NOISES",
    "OPTIONAL_DEFAULTS",
    "Method",
    "MethodUnavailableError",
    "check_activation",
    "check_method_options",
    "noise_layer",
    "parse_methods",
]

#: Activations of the experiment's net, and the weight initialisation each gets.
ACTIVATIONS: dict[str, str] = {"relu": "he_normal", "selu": "lecun_normal"}


class MethodUnavailableError(ImportError):
    """A method's noise layer is missing from this installation's :mod:`dropkit.layers`."""


@dataclass(frozen=True)
class Method:
    """One regulariser of a comparison.

    Attributes
    ----------
    name : str
        Its name on the command line and in ``summary.json``.
    noise : str
        The ``TrainConfig.noise`` it trains with (a key of :data:`NOISES`).
    drop : bool
        Whether the run keeps ``p_hidden``/``p_input`` (False: both 0, no noise).
    activation : str or None
        The activation it needs, or None: the comparison's ``--activation``.
    description : str
        One line for tables and ``--help``.
    """

    name: str
    noise: str
    drop: bool
    activation: str | None
    description: str

    @property
    def layer(self) -> str:
        """The class name of its layer in :mod:`dropkit.layers`."""
        return NOISES[self.noise]

    def activation_for(self, requested: str) -> str:
        """The activation this method runs with when the comparison asks for ``requested``."""
        return self.activation if self.activation is not None else check_activation(requested)

    def available(self) -> bool:
        """Whether this installation has the method's layer."""
        try:
            noise_layer(self.noise, method=self.name)
        except MethodUnavailableError:
            return False
        return True


#: ``TrainConfig`` keys newer than some run folders, with the value their absence means
#: (``val_size``: folders made before validation sets existed trained on every example).
OPTIONAL_DEFAULTS: dict[str, Any] = {"noise": "dropout", "activation": "relu", "val_size": 0}

#: ``TrainConfig.noise`` values -> the layer class name in :mod:`dropkit.layers`.
NOISES: dict[str, str] = {
    "dropout": "Dropout",
    "gaussian": "GaussianDropout",
    "alpha": "AlphaDropout",
}

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("standard", "dropout", False, None, "no dropout (p_hidden = p_input = 0)"),
        Method("dropout", "dropout", True, None, "dropout (Bernoulli mask, Srivastava 2014)"),
        Method(
            "gaussian",
            "gaussian",
            True,
            None,
            "Gaussian dropout: multiplicative N(1, p/(1-p)) noise (Srivastava 2014, sec. 10)",
        ),
        Method(
            "alpha",
            "alpha",
            True,
            "selu",
            "alpha dropout in a SELU net with LeCun-normal weights (Klambauer 2017)",
        ),
    )
}


def check_activation(activation: Any) -> str:
    """Return ``activation`` if it is one of :data:`ACTIVATIONS`, else raise naming them.

    Examples
    --------
    >>> check_activation("tanh")
    Traceback (most recent call last):
    ...
    ValueError: activation must be one of relu, selu, got 'tanh'
    """
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    return activation


def noise_layer(noise: Any, *, method: str | None = None) -> type:
    """The layer class of a ``TrainConfig.noise`` name, looked up in :mod:`dropkit.layers`.

    Raises
    ------
    ValueError
        ``noise`` is not a known name (the message lists them).
    MethodUnavailableError
        The name is known but this installation's :mod:`dropkit.layers` lacks its class.

    Examples
    --------
    >>> noise_layer("dropout").__name__
    'Dropout'
    """
    if not isinstance(noise, str) or noise not in NOISES:
        raise ValueError(f"noise must be one of {', '.join(NOISES)}, got {noise!r}")
    from .. import layers

    name = NOISES[noise]
    cls = getattr(layers, name, None)
    if not isinstance(cls, type):
        who = f"method {method!r}" if method is not None else f"noise {noise!r}"
        raise MethodUnavailableError(
            f"{who} needs dropkit.layers.{name}, which this installation lacks; choose "
            f"among the methods it has: {', '.join(m for m in METHODS if _has(METHODS[m]))}"
        )
    return cls


def _method_of(noise: str) -> str:
    names = [m.name for m in METHODS.values() if m.noise == noise and m.drop]
    return f"method {names[0]!r}" if names else f"noise {noise!r}"


def check_method_options(noise: Any, *, p_hidden: float, p_input: float, mode: str) -> None:
    """Refuse options that the noise layer of ``noise`` does not accept.

    The one check of options against a method, used by ``TrainConfig`` (so a
    study's every run is checked when its plan is made, before anything is
    written), the command line and studies. Each non-zero ``p`` is given to
    the method's layer (which refuses what it cannot run, e.g. ``p = 1`` for
    Gaussian dropout), and a ``mode`` other than "inverted" is refused for a
    layer without modes (alpha dropout).

    Raises
    ------
    ValueError
        Naming the option, its value, the method and what to do; the message
        starts with the option's name.

    Examples
    --------
    >>> check_method_options("gaussian", p_hidden=0.5, p_input=0.0, mode="inverted")
    >>> check_method_options("gaussian", p_hidden=1.0, p_input=0.0, mode="inverted")
    ...     # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: p_hidden 1.0 does not suit method 'gaussian': gaussian_dropout needs p < 1...
    >>> check_method_options("alpha", p_hidden=0.5, p_input=0.0, mode="vanilla")
    ...     # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: mode 'vanilla' does not suit method 'alpha': ...
    """
    noise_layer(noise)  # a known name (else a ValueError listing them), its layer installed
    _check_options(noise, float(p_hidden), float(p_input), mode)


@functools.lru_cache(maxsize=256)  # a study checks one configuration per method and seed
def _check_options(noise: str, p_hidden: float, p_input: float, mode: str) -> None:
    cls = noise_layer(noise)
    who = _method_of(noise)
    takes_mode = "mode" in inspect.signature(cls).parameters
    if mode != "inverted" and not takes_mode:
        raise ValueError(
            f"mode {mode!r} does not suit {who}: its layer {cls.__name__} has no modes (it "
            f"always scales as it must); leave out mode, or leave {who.split()[-1]} out of "
            "the methods"
        )
    for name, p in (("p_hidden", p_hidden), ("p_input", p_input)):
        if p == 0:
            continue
        try:
            if takes_mode:
                cls(p, rng=0, mode=mode)
            else:
                cls(p, rng=0)
        except ValueError as exc:
            raise ValueError(
                f"{name} {p} does not suit {who}: {exc}; choose another {name}, or leave "
                f"{who.split()[-1]} out of the methods"
            ) from None


def _has(method: Method) -> bool:
    from .. import layers

    return isinstance(getattr(layers, method.layer, None), type)


def parse_methods(text: str) -> list[Method]:
    """The methods of a comma-separated list like ``"standard,dropout,gaussian"``.

    Names must be known, listed once, and their layers present.

    Examples
    --------
    >>> [m.noise for m in parse_methods(" standard , dropout ")]
    ['dropout', 'dropout']
    >>> parse_methods("dropout,dropout")
    Traceback (most recent call last):
    ...
    ValueError: --methods: 'dropout' is listed twice; list each method once
    """
    valid = ", ".join(METHODS)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"--methods needs a comma-separated list of methods among {valid}")
    chosen: list[Method] = []
    for raw in text.split(","):
        name = raw.strip()
        if name not in METHODS:
            shown = repr(name) if name else "'' (an empty entry)"
            raise ValueError(f"--methods: unknown method {shown}; the methods are {valid}")
        if any(m.name == name for m in chosen):
            raise ValueError(f"--methods: {name!r} is listed twice; list each method once")
        chosen.append(METHODS[name])
    for method in chosen:
        noise_layer(method.noise, method=method.name)
    return chosen
