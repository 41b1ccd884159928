"""dropkit plugin that draws accuracy and loss curves (``curves.png``) and sweeps (``sweep.png``).

The figure functions are imported on first use: the application loads the
plugin for each command, and matplotlib takes 1-2 s to import.
"""

from typing import Any

__all__ = ["plot_histories", "plot_study", "plot_sweep"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import figures

        return getattr(figures, name)
    raise AttributeError(f"module 'dropkit_plots' has no attribute {name!r}")
