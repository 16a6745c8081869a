"""Describe a table: column kinds, dtypes, nullability and (observed or public) domains."""

from tabsynth.metadata.column import KINDS, ColumnSpec
from tabsynth.metadata.sequence import SequenceMetadata
from tabsynth.metadata.table import Metadata
from tabsynth.metadata.validation import check_frame

__all__ = ["KINDS", "ColumnSpec", "Metadata", "SequenceMetadata", "check_frame"]
