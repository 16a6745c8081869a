"""The schema a DP fit may use for free: declared metadata, or the pandas dtypes alone.

A column kind read off the values (id vs categorical by the share of distinct values, 0/1 as
boolean, date strings and their resolution, integer-valued floats) changes when one row is added,
so under DP it is never inferred (docs/privacy.md rule 4). Without metadata, each column's kind
follows from its dtype as given, and one warning names the columns whose kind the user may want to
declare.
"""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from tabsynth.errors import PrivacyWarning
from tabsynth.metadata.table import Metadata


def public_schema(df: pd.DataFrame, metadata: Metadata | None) -> tuple[Metadata, dict[str, Any]]:
    """The metadata a DP fit uses and what it assumed public, for the privacy statement."""
    if metadata is not None:
        return metadata, {"schema": "declared metadata (column kinds, dtypes and formats as given by the user)"}
    metadata = Metadata.from_dtypes(df)
    specs = list(metadata.columns.values())
    guessed = {s.name: s.kind for s in specs if s.kind in ("categorical", "integer")}
    if guessed:
        listing = "; ".join(f"{kind}: " + ", ".join(n for n, k in guessed.items() if k == kind)
                            for kind in ("categorical", "integer") if kind in guessed.values())
        warnings.warn(
            "differential privacy: column kinds were taken from the pandas dtypes alone, because reading them "
            f"off the values would depend on single rows: {listing}. If one of these is an id, a date, a 0/1 "
            "flag or free text, declare it: metadata=ts.Metadata.from_dtypes(df).with_column('visit', "
            "kind='datetime', datetime_format='%Y-%m-%d'), or a metadata JSON (tabsynth fit --metadata)",
            PrivacyWarning, stacklevel=3)
    kinds = {s.name: s.kind for s in specs}
    return metadata, {"schema": "column names and pandas dtypes as given; kinds from the dtypes alone",
                             "kinds": kinds}
