"""Loaders for dataset files users already have: CIFAR-10 (python and binary) and MNIST IDX.

Nothing in a file is executed, and memory stays proportional to the data
really in the files, whatever their headers declare. CIFAR-10's python batches
are pickles, read by :func:`safe_unpickle`, which rebuilds NumPy arrays only
from the file's bytes and refuses every other global, so a crafted file cannot
run code or allocate what it does not hold. IDX files (raw or gzipped) are
read up to the size their header declares, checked against the file first
(:mod:`dropkit.experiment.data.idx`). Missing, truncated or corrupt files, labels outside
0..9 and non-finite pixels raise errors that name the file and say what was
expected.

This module gathers the public names of :mod:`~dropkit.experiment.data.cifar`,
:mod:`~dropkit.experiment.data.idx`, :mod:`~dropkit.experiment.data.pickles` and
:mod:`~dropkit.experiment.data.checks`.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> load_cifar10(d)
Traceback (most recent call last):
...
FileNotFoundError: no CIFAR-10 files under ...
"""

from __future__ import annotations

from .checks import DataFileError
from .cifar import CIFAR_TEST, CIFAR_TRAIN, load_cifar10
from .idx import MNIST_FILES, load_mnist_idx, read_idx
from .pickles import safe_unpickle

__all__ = [
    "CIFAR_TEST",
    "CIFAR_TRAIN",
    "MNIST_FILES",
    "DataFileError",
    "load_cifar10",
    "load_mnist_idx",
    "read_idx",
    "safe_unpickle",
]
