"""Swap torch's dropout modules in a model for dropkit's: :func:`swap_dropout`.

``swap_dropout(model)`` replaces, in place, every ``torch.nn.Dropout``,
``Dropout1d``, ``Dropout2d``, ``Dropout3d``, ``AlphaDropout`` and
``FeatureAlphaDropout`` of a model with the :mod:`dropkit_torch.nn` layer of
the same name (same ``p``, ``inplace``, training mode; a stream's buffers on the
model's device), and returns a :class:`SwapReport` of what it replaced and of
the dropout it could NOT replace:

- attention dropout inside ``torch.nn.MultiheadAttention`` (so inside
  ``nn.TransformerEncoderLayer``'s ``self_attn``): a float attribute,
  ``dropout``, that torch passes to its fused attention (SDPA's
  ``dropout_p``); no module to swap;
- the dropout between stacked layers of ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``
  (inside torch's fused RNN kernel);
- float attributes named like a dropout rate on other modules
  (``attention_dropout = 0.1``): probably passed to ``F.dropout`` or SDPA in
  a ``forward`` (a heuristic: listed, never changed);
- functional calls in ``forward`` code (``F.dropout(x, 0.1)``,
  ``F.scaled_dot_product_attention(..., dropout_p=0.1)``): found only where
  ``torch.fx.symbolic_trace`` can trace the model (with torch's and dropkit's
  modules as leaves); where it cannot, the report says the forward code was
  not inspected. Not detectable in general: Python code may call torch's
  dropout in ways no trace sees (a branch not taken, a ``dropout_p`` read from
  a module's ``.p`` at run time).
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import torch

from dropkit import Generator, as_generator

from . import nn as dnn
from ._swap_forward import inspect_forward, is_dropkit, not_traced
from ._swap_report import SwapEntry, SwapReport
from .functional import torch_p

__all__ = ["SwapEntry", "SwapReport", "swap_dropout"]

# torch's module type -> dropkit's, exact types only (a subclass may change forward).
_TORCH_TO_DROPKIT: dict[type[torch.nn.Module], type[torch.nn.Module]] = {
    torch.nn.Dropout: dnn.Dropout,
    torch.nn.Dropout1d: dnn.Dropout1d,
    torch.nn.Dropout2d: dnn.Dropout2d,
    torch.nn.Dropout3d: dnn.Dropout3d,
    torch.nn.AlphaDropout: dnn.AlphaDropout,
    torch.nn.FeatureAlphaDropout: dnn.FeatureAlphaDropout,
}
_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def swap_dropout(model: torch.nn.Module, *, rng: Any = None, trace: bool = True) -> SwapReport:
    """Replace torch's dropout modules in ``model`` with dropkit's, in place.

    Parameters
    ----------
    model : torch.nn.Module
        The model; its dropout submodules are replaced (the model itself must
        not be one: build the :mod:`dropkit_torch.nn` layer directly).
    rng : None, int, dropkit.Generator, numpy.random.Generator or torch.Generator
        ``None`` (default): every new layer draws from torch's generator at
        each call, as ``nn.Dropout`` does (``torch.manual_seed`` governs the
        masks; nothing is added to the ``state_dict``). A seed, a
        :class:`dropkit.Generator` (copied, not advanced) or a NumPy
        generator: each new layer gets its own stream, spawned from it in
        module order (``model.named_modules()``), so the same model and seed
        give the same masks on every run; the streams are buffers
        (``rng_key``, ``rng_counter``) in the ``state_dict``. A
        ``torch.Generator``: every new layer draws from it.
    trace : bool, optional
        Look for functional dropout calls in the forward code with
        ``torch.fx.symbolic_trace`` (True, default; the trace runs ``forward``
        on proxies, before anything is replaced). False skips it: the report
        then says the forward code was not inspected.

    Returns
    -------
    SwapReport
        What was replaced and what was not (print it).

    Raises
    ------
    TypeError
        ``model`` is not a ``torch.nn.Module``, or ``rng`` is of no accepted type.
    ValueError
        ``model`` is itself a dropout module, or a dropout module's ``p`` is not
        a probability (the message names the module); nothing is replaced then.

    Examples
    --------
    >>> import torch
    >>> from dropkit_torch import swap_dropout
    >>> layer = torch.nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True)
    >>> model = torch.nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
    >>> report = swap_dropout(model, rng=0)
    >>> type(model.layers[0].dropout1).__module__
    'dropkit_torch.layer'
    >>> [e.path for e in report.not_replaced]
    ['layers.0.self_attn']
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module, got {type(model).__qualname__}; swap_dropout "
            "replaces the dropout modules inside a model"
        )
    if type(model) in _TORCH_TO_DROPKIT:
        raise ValueError(
            f"model is itself a {_torch_name(model)}: swap_dropout replaces dropout modules "
            f"inside a model, in place; build dropkit_torch.nn.{type(model).__name__}"
            f"(p={model.p}) directly, or pass the model that contains it"
        )
    _check_rng(rng)
    found = _find(model)  # validates every p before anything changes
    forward_code, inspected, calls = inspect_forward(model) if trace else not_traced()
    streams = _streams(rng, len(found.targets))
    # Build every new layer before replacing any: a failure leaves the model as it was.
    built = [
        (paths, old, _build(old, new_type, stream, _device_near(model, paths[0])))
        for (paths, old, new_type), stream in zip(found.targets, streams, strict=True)
    ]
    replaced = []
    for paths, old, new in built:
        for parent, name in found.slots[id(old)]:
            parent._modules[name] = new
        note = f"-> {_dropkit_name(new)}"
        if len(paths) > 1:
            note += f" (shared: also at {', '.join(paths[1:])})"
        if getattr(old, "inplace", False) and not getattr(new, "inplace", False):
            note += " (out of place: dropkit's alpha layers never work in place)"
        replaced.append(SwapEntry(paths[0], _describe(old), note))
    return SwapReport(
        tuple(replaced),
        tuple(found.left) + tuple(calls),
        tuple(found.already),
        forward_code,
        inspected,
    )


@dataclass
class _Found:
    targets: list[tuple[list[str], torch.nn.Module, type[torch.nn.Module]]]
    slots: dict[int, list[tuple[torch.nn.Module, str]]]
    left: list[SwapEntry]
    already: list[SwapEntry]


def _find(model: torch.nn.Module) -> _Found:
    """Every dropout of ``model``, in module order (a shared module once, with all its paths)."""
    found = _Found([], {}, [], [])
    if is_dropkit(model):
        found.already.append(SwapEntry("", _dropkit_name(model), ""))
    found.left.extend(_functional_attributes("", model))
    index: dict[int, int] = {}
    for path, parent, name, child in _children(model):
        if id(child) in index:
            found.targets[index[id(child)]][0].append(path)
            found.slots[id(child)].append((parent, name))
            continue
        if id(child) in found.slots:  # seen and left: listed once
            continue
        found.slots[id(child)] = [(parent, name)]
        if is_dropkit(child):
            found.already.append(SwapEntry(path, _dropkit_name(child), ""))
        elif type(child) in _TORCH_TO_DROPKIT:
            reason = _why_not(path, parent, child)
            if reason:
                found.left.append(SwapEntry(path, _describe(child), reason))
                continue
            index[id(child)] = len(found.targets)
            found.targets.append(([path], child, _TORCH_TO_DROPKIT[type(child)]))
        elif isinstance(child, torch.nn.modules.dropout._DropoutNd):
            found.left.append(
                SwapEntry(
                    path,
                    f"{type(child).__module__}.{type(child).__qualname__}(p={child.p})",
                    "is a subclass of torch's dropout that swap_dropout does not know (its "
                    "forward may differ): replace it by hand with a dropkit_torch.nn layer",
                )
            )
        else:
            found.left.extend(_functional_attributes(path, child))
    return found


def _children(
    module: torch.nn.Module, prefix: str = ""
) -> Iterator[tuple[str, torch.nn.Module, str, Any]]:
    """``(path, parent, name, child)`` for every registered child, depth first in module order.

    A module registered at several places is visited at each (``named_modules``
    with ``remove_duplicate=False``).
    """
    for name, child in module._modules.items():
        if child is not None:
            path = f"{prefix}.{name}" if prefix else name
            yield path, module, name, child
            yield from _children(child, path)


def _why_not(path: str, parent: torch.nn.Module, child: torch.nn.Module) -> str:
    """Why ``child`` cannot be replaced (empty: it can); checks its ``p`` first."""
    try:
        torch_p(child.p)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{path}: {_torch_name(child)} has an invalid p ({err}); fix the module's p "
            "(nothing was replaced)"
        ) from None
    if isinstance(parent, torch.jit.ScriptModule):
        return "is inside a TorchScript module (its submodules cannot be reassigned)"
    if any(getattr(child, hooks, None) for hooks in _HOOKS):
        return (
            "has forward or backward hooks, which a new module would not have: remove them, "
            "swap, and register them on the new module"
        )
    return ""


def _functional_attributes(path: str, module: torch.nn.Module) -> list[SwapEntry]:
    """Dropout rates a non-dropout module keeps as plain floats (used in its forward)."""
    if isinstance(module, torch.nn.MultiheadAttention):
        if not module.dropout:
            return []
        return [
            SwapEntry(
                path,
                f"torch.nn.MultiheadAttention(dropout={module.dropout})",
                "is attention dropout: a float passed to SDPA's dropout_p inside torch's "
                "attention, no module to swap (set it to 0.0 to turn it off)",
            )
        ]
    if isinstance(module, torch.nn.RNNBase):
        if not module.dropout:
            return []
        return [
            SwapEntry(
                path,
                f"torch.nn.{type(module).__name__}(dropout={module.dropout})",
                "is dropout between stacked RNN layers, inside torch's fused RNN kernel: "
                "not swappable (stack one-layer RNNs with dropkit_torch.nn.Dropout between)",
            )
        ]
    if is_dropkit(module) or type(module).__module__.startswith("torch."):
        return []
    return [
        SwapEntry(
            path,
            f"{type(module).__name__}.{name} = {value}",
            "is a float dropout rate (a guess from its name): probably passed to F.dropout "
            "or SDPA's dropout_p in forward; check that code",
        )
        for name, value in vars(module).items()
        if "drop" in name.lower() and type(value) is float and 0.0 < value <= 1.0
    ]


def _check_rng(rng: Any) -> None:
    ok = rng is None or isinstance(rng, torch.Generator | Generator)
    ok = ok or (isinstance(rng, Integral) and not isinstance(rng, bool))
    ok = ok or (hasattr(rng, "bit_generator") and hasattr(rng, "integers"))
    if not ok:
        raise TypeError(
            "rng must be None (torch's generator, as nn.Dropout), an int seed, a "
            "dropkit.Generator, a numpy.random.Generator or a torch.Generator, got "
            f"{type(rng).__qualname__}"
        )


def _streams(rng: Any, n: int) -> list[Any]:
    """The ``rng=`` of each new layer: ``rng`` itself, or one spawned stream per layer."""
    if rng is None or isinstance(rng, torch.Generator):
        return [rng] * n
    parent = rng.copy() if isinstance(rng, Generator) else as_generator(rng)
    return list(parent.spawn(n)) if n else []


def _build(old: Any, new_type: type[torch.nn.Module], rng: Any, device: torch.device | None) -> Any:
    """The dropkit layer for ``old``: its ``p``, ``inplace``, mode; its stream on ``device``."""
    if "inplace" in inspect.signature(new_type).parameters:
        new: Any = new_type(old.p, inplace=bool(old.inplace), rng=rng)
    else:  # never in place (the report's note says so)
        new = new_type(old.p, rng=rng)
    if device is not None and new.rng_key is not None:
        new.to(device)
    new.train(old.training)
    return new


def _device_near(model: torch.nn.Module, path: str) -> torch.device | None:
    """The device of the nearest enclosing module's first parameter or buffer."""
    parts = path.split(".")[:-1]
    while True:
        module = model.get_submodule(".".join(parts))
        tensor = next(itertools.chain(module.parameters(), module.buffers()), None)
        if tensor is not None:
            return tensor.device
        if not parts:
            return None
        parts.pop()


def _torch_name(module: torch.nn.Module) -> str:
    return f"torch.nn.{type(module).__name__}"


def _describe(module: torch.nn.Module) -> str:
    inplace = ", inplace=True" if getattr(module, "inplace", False) else ""
    return f"{_torch_name(module)}(p={module.p}{inplace})"


def _dropkit_name(module: Any) -> str:
    """``dropkit_torch.nn.Dropout`` and where its masks come from."""
    name = f"dropkit_torch.nn.{type(module).__name__}"
    key = getattr(module, "rng_key", None)
    if key is not None and key.device.type == "meta":
        return f"{name} (a stream, on the meta device)"
    stream = getattr(module, "stream", None) if key is not None else None
    if stream is not None:
        return f"{name} (stream key={stream.key}, counter={stream.counter})"
    if getattr(module, "generator", None) is not None:
        return f"{name} (torch.Generator)"
    return f"{name} (torch's generator)"
