"""The schema a DP fit may use for free: declared metadata, or the pandas dtypes alone, and the cells
read as that schema says.

A column kind read off the values (id vs categorical by the share of distinct values, 0/1 as
boolean, date strings and their resolution, integer-valued floats, text that looks like names or
e-mails) changes when one row is added, so under DP it is never inferred (docs/privacy.md rule 4).
Without metadata, each column's kind follows from its dtype as given, integer and float dtypes being
one numeric kind, and one warning names the columns whose kind the user may want to declare. Each
cell is then read as its column's kind on its own: one that does not parse, an infinity or a number
too large to encode is missing, so no cell can refuse the fit or change the schema (rule 4b).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from tabsynth.errors import PrivacyWarning
from tabsynth.metadata.detect import dtype_spec, parse_datetimes
from tabsynth.metadata.table import Metadata
from tabsynth.metadata.validation import MAX_MAGNITUDE

_DTYPES_SCHEMA = "column names and pandas dtypes as given; kinds from the dtypes alone (integer and float one kind)"
_SCHEMAS = {
    "declared": "declared metadata (column kinds, dtypes and formats as given by the user)",
    "detected": "metadata detected from the rows (Metadata.detect) and passed by the user: its kinds were read off "
                "the values; declare them instead",
}
_TRUE, _FALSE = ("true", "1", "1.0"), ("false", "0", "0.0")


def public_schema(df: pd.DataFrame, metadata: Metadata | None) -> tuple[Metadata, dict[str, Any]]:
    """The metadata a DP fit uses and what it assumed public, for the privacy statement."""
    if metadata is not None and metadata.source != "dtypes":
        return metadata, {"schema": _SCHEMAS.get(metadata.source, _SCHEMAS["declared"]),
                          "kinds": {n: s.kind for n, s in metadata.columns.items()}}
    declared = [] if metadata is None else _declared_columns(df, metadata)
    guessed = {}
    if metadata is None:  # metadata built on the dtypes by the user: they have chosen what to declare
        metadata = Metadata.from_dtypes(df)
        guessed = {n: s.kind for n, s in metadata.columns.items() if s.kind in ("categorical", "numerical")}
    if guessed:
        listing = "; ".join(f"{kind}: " + ", ".join(n for n, k in guessed.items() if k == kind)
                            for kind in ("categorical", "numerical") if kind in guessed.values())
        warnings.warn(
            "differential privacy: column kinds were taken from the pandas dtypes alone, because reading them "
            f"off the values would depend on single rows: {listing}. If one of these is an id, a date, a 0/1 "
            "flag, whole numbers or free text, declare it: metadata=ts.Metadata.from_dtypes(df).with_column("
            "'visit', kind='datetime', datetime_format='%Y-%m-%d'), or a metadata JSON (tabsynth fit --metadata; "
            "--public-bounds and --public-domain declare a column numeric or categorical)",
            PrivacyWarning, stacklevel=3)
    schema = _DTYPES_SCHEMA + (f"; declared on top: {', '.join(declared)}" if declared else "")
    return metadata, {"schema": schema, "kinds": {n: s.kind for n, s in metadata.columns.items()}}


def _declared_columns(df: pd.DataFrame, metadata: Metadata) -> list[str]:
    """The columns whose description the user changed from the dtype-only one (a kind, a domain)."""
    out = []
    for name, spec in metadata.columns.items():
        plain = dtype_spec(name, df[name].dtype) if name in df.columns else None
        if plain is None or spec.with_changes(extra={}) != plain:
            out.append(name)
    return out


def declared_values(df: pd.DataFrame, metadata: Metadata) -> pd.DataFrame:
    """``df`` with each column's cells read as its kind, one cell at a time: numbers (an unparseable,
    infinite or too large cell is missing), datetimes (an unparseable cell is missing; without a
    declared format each cell is parsed on its own), booleans (true/false/1/0, else missing), and an
    object column of any other kind as text. No cell is quoted, counted or refused."""
    out = {}
    for name, spec in metadata.columns.items():
        s = df[name]
        numeric = _numeric_dtype(spec.dtype) or pd.api.types.is_float_dtype(s.dtype)
        if spec.kind in ("numerical", "integer") or (spec.kind == "categorical" and numeric):
            s = _numbers(s)
        elif spec.kind == "datetime":
            s = _datetimes(s, spec.datetime_format)
        elif spec.kind == "boolean":
            s = _booleans(s, numeric=_numeric_dtype(spec.dtype))
        elif spec.kind in ("categorical", "id", "pii") and s.dtype == object and not (spec.is_public and spec.categories):
            s = s.where(s.isna(), s.astype(str))
        out[name] = s
    return pd.DataFrame(out, index=df.index)


def _numeric_dtype(dtype: str | None) -> bool:
    if dtype is None:
        return False
    try:
        return pd.api.types.is_numeric_dtype(pd.api.types.pandas_dtype(dtype)) and dtype not in ("bool", "boolean")
    except TypeError:
        return False


def _numbers(s: pd.Series) -> pd.Series:
    if pd.api.types.is_integer_dtype(s.dtype):
        return s
    values = pd.to_numeric(s, errors="coerce").astype("float64")
    return values.where(np.abs(values) <= MAX_MAGNITUDE)  # NaN, infinities and huge values: missing


def _datetimes(s: pd.Series, fmt: str | None) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s
    present = s.notna()
    text = s[present].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = (parse_datetimes(text, fmt, coerce=True) if fmt is not None
                  else pd.to_datetime(text, errors="coerce", format="mixed", utc=True))
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    out = pd.Series(pd.NaT, index=s.index, dtype=parsed.dtype, name=s.name)
    out[present] = parsed
    return out


def _booleans(s: pd.Series, numeric: bool) -> pd.Series:
    if pd.api.types.is_bool_dtype(s.dtype):
        return s
    text = s.astype(str).str.strip().str.lower().where(s.notna())
    true, false = text.isin(_TRUE).to_numpy(), text.isin(_FALSE).to_numpy()
    if numeric:
        return pd.Series(np.where(true, 1.0, np.where(false, 0.0, np.nan)), index=s.index, name=s.name)
    flags = np.where(true, True, np.where(false, False, np.array(None, dtype=object)))
    return pd.Series(flags, index=s.index, name=s.name, dtype=object)
