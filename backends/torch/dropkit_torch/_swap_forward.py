"""Functional dropout in a model's forward code, found with ``torch.fx`` (for ``swap_dropout``)."""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
import torch.fx

from ._swap_report import SwapEntry

__all__ = ["inspect_forward", "is_dropkit", "not_traced"]


def is_dropkit(module: torch.nn.Module) -> bool:
    """A dropkit layer (by the module of its class: dropkit's layers may subclass torch's)."""
    return type(module).__module__.partition(".")[0] == "dropkit_torch"


class _Tracer(torch.fx.Tracer):
    """torch.fx's tracer with every dropout module a leaf (listed by the module scan)."""

    def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
        """torch.nn's modules (as torch.fx's tracer) and every dropout module."""
        leaf = is_dropkit(m) or isinstance(m, torch.nn.modules.dropout._DropoutNd)
        return leaf or super().is_leaf_module(m, module_qualified_name)


def inspect_forward(model: torch.nn.Module) -> tuple[str, bool, list[SwapEntry]]:
    """Functional dropout calls in the model's forward code, found with ``torch.fx``.

    Returns the report's ``forward_code`` text, whether the code was
    inspected, and one entry per call found.
    """
    if isinstance(model, torch.nn.ModuleList | torch.nn.ModuleDict):
        return f"none: a {type(model).__name__} has no forward code", True, []
    if type(model).__module__.startswith("torch.nn.") and not isinstance(
        model, torch.nn.Sequential
    ):
        return (
            f"not traced: the model is torch's own {type(model).__name__}, whose functional "
            "dropout is listed above (attention, RNN)",
            True,
            [],
        )
    tracer = _Tracer()
    tracer.record_stack_traces = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = tracer.trace(model)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return (
            "NOT inspected: torch.fx could not trace the model "
            f"({type(err).__name__}: {first[:200]}); functional dropout calls in forward "
            "code (F.dropout, SDPA's dropout_p) are not detected: check them by hand",
            False,
            [],
        )
    calls = [entry for node in graph.nodes if (entry := _call_entry(node)) is not None]
    return (f"inspected with torch.fx: {len(calls)} functional dropout call(s) found", True, calls)


def _call_entry(node: Any) -> SwapEntry | None:
    """A :class:`SwapEntry` for a traced call of torch's functional dropout (None: not one)."""
    if node.op != "call_function":
        return None
    name = getattr(node.target, "__name__", "")
    if name == "scaled_dot_product_attention":
        p = node.kwargs.get("dropout_p", node.args[4] if len(node.args) > 4 else 0.0)
        if isinstance(p, int | float) and p == 0:
            return None
        what = f"F.scaled_dot_product_attention(dropout_p={_constant(p)})"
    elif "dropout" in name:
        p = node.kwargs.get("p", node.args[1] if len(node.args) > 1 else 0.5)
        what = f"F.{name}(p={_constant(p)})"
    else:
        return None
    stack = node.meta.get("nn_module_stack") or {}
    path = next(reversed(stack.values()))[0] if stack else ""
    where = _last_frame(node.stack_trace or "")
    return SwapEntry(
        path,
        what,
        f"is a functional call in forward code{where}: replace it by hand with dropkit.dropout "
        "(training=self.training)",
    )


def _constant(value: Any) -> str:
    return str(value) if isinstance(value, int | float) else "<computed>"


def _last_frame(stack_trace: str) -> str:
    """The innermost frame of the trace outside torch's own files (empty: none)."""
    torch_dir = os.path.dirname(torch.__file__)
    frames = [
        line.strip()
        for line in stack_trace.splitlines()
        if line.strip().startswith("File") and torch_dir not in line
    ]
    return f" ({frames[-1]})" if frames else ""


def not_traced() -> tuple[str, bool, list[SwapEntry]]:
    return (
        "NOT inspected (trace=False): functional dropout calls in forward code are not detected",
        False,
        [],
    )
