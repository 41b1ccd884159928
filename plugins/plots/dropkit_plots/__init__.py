"""dropkit plugin that draws accuracy and loss curves (``curves.png``).

``plot_histories`` is imported on first use: the plugin is loaded on every
process's first dropkit call, and matplotlib takes 1-2 s to import.
"""

from typing import Any

__all__ = ["plot_histories"]


def __getattr__(name: str) -> Any:
    if name == "plot_histories":
        from .figures import plot_histories

        return plot_histories
    raise AttributeError(f"module 'dropkit_plots' has no attribute {name!r}")
