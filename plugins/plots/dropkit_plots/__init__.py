"""dropkit plugin that draws accuracy and loss curves (``curves.png``)."""

from .figures import plot_histories

__all__ = ["plot_histories"]
