"""The dropout experiment application, built on the library in :mod:`dropkit`.

The library (``dropkit.ops``, ``dropkit.layers``, ``dropkit.random``, the
backends' registry, ...) never imports this package; the application uses the
library like any other user does. Here: the network and its explicit backward
(:mod:`~dropkit.experiment.nn`), the optimiser, the training loop with exact
resume (:mod:`~dropkit.experiment.train`), run folders and checkpoints, the
datasets, the reporters, the two-net comparison
(:mod:`~dropkit.experiment.compare`), multi-seed studies and sweeps, and the
``dropkit`` command (:mod:`~dropkit.experiment.cli`). Its hooks
(:mod:`~dropkit.experiment.hookspecs`) and their entry-point group
``dropkit.experiment`` are its own: each command or run builds its own plugin
manager (:mod:`~dropkit.experiment.plugins`), and the library never loads them.

Examples
--------
>>> from dropkit.experiment import NETS
>>> NETS
('standard', 'dropout')
"""

from .compare import NETS, format_table, net_configs, run_compare

__all__ = ["NETS", "format_table", "net_configs", "run_compare"]
