"""tabsynth: private, useful synthetic tables."""

from tabsynth import (  # noqa: E402
           datasets,
           errors,
           release,  # noqa: E402  (a callable module: ts.release(df, ...) runs release.release)
)
from tabsynth.metadata import ColumnSpec, Metadata, SequenceMetadata  # noqa: E402
from tabsynth.models import CTGAN, TVAE, TabularAR, load  # noqa: E402
from tabsynth.privacy import PrivacySpent  # noqa: E402
from tabsynth.privacy.config import DPConfig  # noqa: E402
from tabsynth.privacy.ledger import Ledger  # noqa: E402
from tabsynth.report import Report, evaluate  # noqa: E402
from tabsynth.version import __version__

__all__ = ["CTGAN", "DPConfig", "TVAE", "ColumnSpec", "Ledger", "Metadata", "PrivacySpent", "Report", "SequenceMetadata",
           "TabularAR", "datasets",
           "errors",
           "evaluate", "load", "release",
           "__version__"]
