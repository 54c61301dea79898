"""faceveil: workflow-orchestrated face anonymization for video archives and face datasets.
The Python entry points are in `faceveil.api`; the command line is `faceveil.cli`."""

from faceveil.version import __version__

__all__ = ["__version__"]
