"""The flags of the training commands (``train``, ``compare``, ``sweep``) and their types.

Shared by :mod:`~dropkit.experiment.cli` and :mod:`~dropkit.experiment.cli_study`.

Examples
--------
>>> parse_widths("512,256")
(512, 256)
>>> flag_of("p_hidden"), show_value("hidden", [512, 256])
('--p-hidden', '512,256')
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from .data import DATASETS
from .train import PRESETS

__all__ = [
    "CONFIG_FLAGS",
    "DATA_FLAGS",
    "add_training_flags",
    "flag_of",
    "parse_finite",
    "parse_integer",
    "parse_val_size",
    "parse_widths",
    "show_value",
]


def add_training_flags(p: argparse.ArgumentParser, *, sizes: bool = False) -> None:
    """Add the experiment and output flags to ``p`` (``sizes``: a list of train sizes)."""
    g = p.add_argument_group("experiment (defaults: the MNIST-1D experiment, or --preset)")
    g.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="a named set of hyperparameters; flags given explicitly override it",
    )
    g.add_argument("--dataset", choices=DATASETS, default=None, help="default: mnist1d")
    g.add_argument("--data-dir", default=None, help="folder with the cifar10 or mnist files")
    if sizes:  # dropkit sweep: a list, parsed (and refused if bad) by the command
        g.add_argument(
            "--train-size",
            default=None,
            metavar="N1,N2,...",
            help="a study on the first N training examples for each N (default, when no other "
            "option has several values: 500,1000,2000,4000)",
        )
    else:
        g.add_argument(
            "--train-size",
            type=parse_integer,
            default=None,
            help="use only the first N training examples",
        )
    g.add_argument(
        "--backend", default=None, help="backend name (default: $DROPKIT_BACKEND or numpy)"
    )
    g.add_argument("--seed", type=parse_integer, default=None, help="default: 0")
    g.add_argument("--epochs", type=parse_integer, default=None, help="default: 300")
    g.add_argument(
        "--hidden",
        type=parse_widths,
        default=None,
        metavar="W1,W2,...",
        help="hidden layer widths (default: 512,256)",
    )
    # on `dropkit sweep`, lists (parsed and refused if bad by the command): its axes
    number: Any = str if sizes else parse_finite
    axis = " (a list P1,P2,... sweeps it)" if sizes else ""
    g.add_argument(
        "--p-hidden",
        type=number,
        default=None,
        help=f"DROP probability of hidden units (default: 0.5){axis}",
    )
    g.add_argument(
        "--p-input",
        type=parse_finite,
        default=None,
        help="DROP probability of input units (default: 0)",
    )
    g.add_argument("--mode", choices=("inverted", "vanilla"), default=None)
    g.add_argument("--lr", type=number, default=None, help=f"default: 0.05{axis}")
    g.add_argument(
        "--lr-every",
        type=parse_integer,
        default=None,
        help="halve the learning rate every K epochs (default: 75)",
    )
    g.add_argument(
        "--lr-times", type=parse_integer, default=None, help="... at most N times (default: 3)"
    )
    g.add_argument("--momentum", type=parse_finite, default=None, help="default: 0.9")
    g.add_argument("--nesterov", action="store_true", default=None, help="Nesterov momentum")
    g.add_argument("--weight-decay", type=number, default=None, help=f"L2 on weights (1e-3){axis}")
    g.add_argument("--batch-size", type=parse_integer, default=None, help="default: 256")
    g.add_argument("--dtype", choices=("float16", "float32", "float64"), default=None)
    g.add_argument(
        "--val-size",
        type=parse_val_size,
        default=None,
        metavar="N|F",
        help="training examples held out for validation: a count N, or a fraction F in (0, 1) "
        "(default 0.1; 0: none, and only test-selected numbers are reported). The same "
        "examples for every method and seed; the table's headline is the test accuracy at the "
        "best validation epoch",
    )
    g.add_argument(
        "--threads",
        type=parse_integer,
        default=None,
        metavar="N",
        help="BLAS threads per run (default: chosen for the net's matrix sizes, 1 for the "
        "MNIST-1D net; a set OPENBLAS_NUM_THREADS or OMP_NUM_THREADS is left alone)",
    )
    g = p.add_argument_group("output")
    g.add_argument(
        "--out", default=None, help="output folder (default: a new runs/<command>-<time> folder)"
    )
    g.add_argument(
        "--resume",
        default=None,
        metavar="DIR",
        help="continue the run saved in DIR (its config.json; --epochs may extend it)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress lines")


def parse_finite(text: str) -> float:
    """An argparse type: a finite float (``nan`` and ``inf`` are refused up front)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def parse_integer(text: str) -> int:
    """An argparse type: an integer."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def parse_val_size(text: str) -> int | float:
    """An argparse type: a count (``500``) or a fraction (``0.1``) of the training examples."""
    from .split import check_val_size

    try:
        return check_val_size(int(text) if text.strip().lstrip("+-").isdigit() else float(text))
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"must be a count >= 0 like 500 (0: no validation set) or a fraction in (0, 1) "
            f"like 0.1, got {text!r}"
        ) from None


def parse_widths(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated positive layer widths."""
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 512,256, got {text!r}"
        ) from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


CONFIG_FLAGS = (
    "dataset",
    "hidden",
    "p_hidden",
    "p_input",
    "mode",
    "lr",
    "lr_every",
    "lr_times",
    "momentum",
    "nesterov",
    "weight_decay",
    "batch_size",
    "epochs",
    "seed",
    "backend",
    "dtype",
    "val_size",
)


DATA_FLAGS = ("data_dir", "train_size")


def flag_of(key: str) -> str:
    """The flag of a configuration key: ``p_hidden`` -> ``--p-hidden``."""
    return "--" + key.replace("_", "-")


def show_value(key: str, value: Any) -> str:
    """A configuration value as its flag would be written."""
    if key == "hidden" and isinstance(value, list | tuple):
        return ",".join(str(w) for w in value)
    return str(value)
