"""Built-in plugins of the training hooks: a progress display and a metrics file.

Also the display of a whole study's progress (:class:`StudyProgress`), fed by
:class:`Events`, the plugin that passes each run's start and epochs on (from
Dask workers as Dask events).

The command line passes them to the plugin manager it builds for each command
(:func:`dropkit.experiment.plugins.new_plugin_manager`); any other program can do
the same with them, or with its own.
"""

from .metrics import MetricsFile
from .progress import Progress
from .study_progress import Events, StudyProgress

__all__ = ["Events", "MetricsFile", "Progress", "StudyProgress"]
