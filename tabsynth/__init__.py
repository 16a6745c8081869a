"""tabsynth: private, useful synthetic tables."""

from tabsynth import datasets, errors
from tabsynth.metadata import ColumnSpec, Metadata

__version__ = "0.1.0"

__all__ = ["ColumnSpec", "Metadata", "datasets", "errors", "__version__"]
