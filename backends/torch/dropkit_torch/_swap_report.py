"""The report of :func:`dropkit_torch.swap_dropout`: what was and was not replaced."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SwapEntry", "SwapReport"]


@dataclass(frozen=True)
class SwapEntry:
    """One dropout found by :func:`swap_dropout`.

    Attributes
    ----------
    path : str
        The module's qualified name in the model (``"layers.0.dropout1"``;
        ``""`` for the model itself), as ``model.get_submodule`` takes it.
    what : str
        What was found: ``"torch.nn.Dropout(p=0.1)"``, ``"F.dropout(p=0.2)"``.
    note : str
        What it became (replaced), or why it was left (not replaced).
    """

    path: str
    what: str
    note: str


@dataclass(frozen=True)
class SwapReport:
    """What :func:`swap_dropout` replaced, and the dropout it could not replace.

    ``print(report)`` (or ``repr``) lists both, one dropout per line.

    Attributes
    ----------
    replaced : tuple of SwapEntry
        torch's dropout modules now dropkit's, in module order.
    not_replaced : tuple of SwapEntry
        Dropout left to torch: attention's ``dropout_p``, RNN inter-layer
        dropout, unknown subclasses, modules with hooks, functional calls.
    already_dropkit : tuple of SwapEntry
        dropkit modules found, left as they were (a second swap changes nothing).
    forward_code : str
        Whether the models' ``forward`` code was inspected for functional calls.
    forward_inspected : bool
        True when ``torch.fx`` traced the model (its functional dropout calls
        are then in ``not_replaced``).
    """

    replaced: tuple[SwapEntry, ...]
    not_replaced: tuple[SwapEntry, ...]
    already_dropkit: tuple[SwapEntry, ...]
    forward_code: str
    forward_inspected: bool

    @property
    def complete(self) -> bool:
        """True when every dropout found is dropkit's and the forward code was inspected."""
        return not self.not_replaced and self.forward_inspected

    def __str__(self) -> str:
        lines = [
            f"swap_dropout: {len(self.replaced)} replaced, {len(self.not_replaced)} NOT "
            f"replaced, {len(self.already_dropkit)} already dropkit's"
        ]
        every = self.replaced + self.not_replaced + self.already_dropkit
        width = min(32, max((len(e.path or "(model)") for e in every), default=0))
        for title, entries in (
            ("replaced", self.replaced),
            ("NOT replaced (still torch's dropout)", self.not_replaced),
            ("already dropkit's", self.already_dropkit),
        ):
            if entries:
                lines.append(f"{title}:")
                lines.extend(
                    f"  {e.path or '(model)':<{width}}  {e.what} {e.note}".rstrip() for e in entries
                )
        lines.append(f"forward code: {self.forward_code}")
        return "\n".join(lines)

    __repr__ = __str__
