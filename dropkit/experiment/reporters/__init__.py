"""Built-in plugins of the training hooks: a progress display and a metrics file.

Also the display of a whole study's progress (:class:`StudyProgress`), fed by
:class:`Events`, the plugin that passes each run's start and epochs on (from
worker processes through a queue).

They are registered by the command line for the duration of a command; any
other program can register them (or its own) on the plugin manager the same way.
"""

from .metrics import MetricsFile
from .progress import Progress
from .study_progress import Events, StudyProgress

__all__ = ["Events", "MetricsFile", "Progress", "StudyProgress"]
