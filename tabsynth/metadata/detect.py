"""Detect column kinds and observed domains from a DataFrame.

Everything found here is *observed*: it describes the private table and is never treated as
public by the DP mode (docs/privacy.md rule 4).
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Literal, overload

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from tabsynth.errors import DataWarning
from tabsynth.metadata.column import ColumnSpec

#: At least this many non-null values before a unique column is taken for an id.
MIN_ID_ROWS = 20
#: Share of distinct values above which a string column is a key, not a category.
ID_UNIQUE_RATIO = 0.95
#: A string column named like an id (``caseid``, ``household_key``) with at least this share of
#: distinct values is a group key shared by a few rows each: an id, not a category.
GROUP_KEY_RATIO = 0.2

_ID_NAME = re.compile(r"(^|[_\-\s.])(id|key|uuid|guid)$|[a-z]Id$|ID$", re.IGNORECASE)
_ISO_FORMATS = [
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "%Y-%m-%d"),
    (re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}$"), "%Y-%m-%d %H:%M:%S"),
]
_UNIT_NS = {"D": 86_400 * 10**9, "h": 3600 * 10**9, "min": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3}


def dtype_kind(dtype: Any) -> str:
    """The kind a pandas dtype implies on its own, without looking at a value. Integer and float
    dtypes are one kind, ``numerical``: a CSV parser makes an integer column float when one cell is
    missing, so whether a column holds whole numbers is declared (kind ``integer``), never taken
    from the dtype."""
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numerical"
    return "categorical"


def dtype_spec(name: str, dtype: Any) -> ColumnSpec:
    """A column described by its name and dtype only: nullable, no domain, no format; every integer
    or float dtype is written ``float64``, so neither its width nor its integer-ness is published."""
    kind = dtype_kind(dtype)
    tz = getattr(dtype, "tz", None) if kind == "datetime" else None
    return ColumnSpec(name=name, kind=kind, dtype="float64" if kind == "numerical" else str(dtype), nullable=True,
                      timezone=str(tz) if tz is not None else None)


def detect_column(name: str, s: pd.Series) -> ColumnSpec:
    """Describe one column from its values."""
    dtype = str(s.dtype)
    nullable = bool(s.isna().any())
    v = s.dropna()
    base: dict[str, Any] = dict(name=name, dtype=dtype, nullable=nullable)
    if len(v) == 0:
        warnings.warn(
            f"column {name!r} is entirely missing; it is kept and generated as all-missing",
            DataWarning,
            stacklevel=3,
        )
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            kind = "datetime"
        elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            kind = "numerical"
        else:
            kind = "categorical"
        return ColumnSpec(kind=kind, extra={"all_missing": True}, **base)

    if pd.api.types.is_bool_dtype(s.dtype) or (
        s.dtype == object and pd.api.types.infer_dtype(v, skipna=True) == "boolean"
    ):
        return ColumnSpec(kind="boolean", categories=_sorted_unique(v), domain_source="observed", **base)

    if isinstance(s.dtype, pd.CategoricalDtype):
        return ColumnSpec(kind="categorical", categories=_sorted_unique(v), domain_source="observed", **base)

    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return _datetime_spec(base, v, fmt=None)

    if pd.api.types.is_numeric_dtype(s.dtype):
        return _numeric_spec(name, base, v.astype("float64"))

    if s.dtype == object:
        inferred = pd.api.types.infer_dtype(v, skipna=True)
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            return _numeric_spec(name, base, pd.to_numeric(v).astype("float64"))
        if inferred in ("datetime", "datetime64", "date"):
            return _datetime_spec(base, to_datetimes(v), fmt=None)

    # strings (object or string dtype)
    text = v.astype(str)
    fmt = _date_format(text)
    if fmt is not None:
        parsed = parse_datetimes(text, fmt)
        if parsed is not None:
            return _datetime_spec(base, parsed, fmt=fmt)
    numbers = numbers_with_few_words(name, text)
    if numbers is not None:
        return _numeric_spec(name, {**base, "nullable": True}, numbers.dropna())
    n_unique = int(text.nunique())
    ratio = n_unique / len(text)
    if len(text) >= MIN_ID_ROWS and (ratio >= ID_UNIQUE_RATIO or (_ID_NAME.search(name) and ratio >= GROUP_KEY_RATIO)):
        return ColumnSpec(kind="id", **base)
    return ColumnSpec(kind="categorical", categories=_sorted_unique(v), domain_source="observed", **base)


def _numeric_spec(name: str, base: dict[str, Any], v: pd.Series) -> ColumnSpec:
    arr = v.to_numpy(dtype="float64")
    lo, hi = float(arr.min()), float(arr.max())
    # beyond 2**53 every float is integral: such a column is not one of integers
    integral = bool(np.all(np.equal(np.floor(arr), arr))) and max(-lo, hi) <= 2.0**53
    uniq = np.unique(arr) if len(arr) < 5_000_000 else np.unique(arr[:5_000_000])
    if len(uniq) == 2 and set(uniq.tolist()) == {0.0, 1.0}:
        return ColumnSpec(kind="boolean", categories=(0, 1), domain_source="observed", **base)
    if integral and _ID_NAME.search(name) and len(uniq) == len(arr) and len(arr) >= MIN_ID_ROWS:
        return ColumnSpec(kind="id", **base)
    kind = "integer" if integral else "numerical"
    bounds = (int(lo), int(hi)) if integral else (lo, hi)
    return ColumnSpec(kind=kind, bounds=bounds, domain_source="observed", **base)


def _datetime_spec(base: dict[str, Any], v: pd.Series, fmt: str | None) -> ColumnSpec:
    tz = getattr(v.dt, "tz", None)
    local = v.dt.tz_localize(None) if tz is not None else v
    return ColumnSpec(
        kind="datetime",
        datetime_format=fmt,
        timezone=str(tz) if tz is not None else None,
        resolution=datetime_resolution(local),
        bounds=(local.min().isoformat(), local.max().isoformat()),
        domain_source="observed",
        **base,
    )


def datetime_resolution(v: pd.Series) -> str:
    """The coarsest unit (D, h, min, s, ms, us, ns) that every timestamp is a whole multiple of."""
    unit = np.datetime_data(v.dtype)[0] if v.dtype.kind == "M" else "ns"
    ticks = v.to_numpy().astype("int64")
    per_ns = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}.get(unit, 1)
    for res, ns in _UNIT_NS.items():
        if ns % per_ns:
            continue
        step = ns // per_ns
        if step >= 1 and np.all(ticks % step == 0):
            return res
    return unit if unit in ("s", "ms", "us", "ns") else "ns"


def _date_format(text: pd.Series) -> str | None:
    sample = str(text.iloc[0])  # pandas' guess refuses str subclasses such as numpy.str_
    if len(sample) < 6 or not any(ch.isdigit() for ch in sample):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fmt = guess_datetime_format(sample)
    if fmt is None:  # pandas cannot guess dates outside its nanosecond range; ISO still parses
        for pattern, iso in _ISO_FORMATS:
            if pattern.match(sample):
                return iso
    return fmt


@overload
def parse_datetimes(text: pd.Series, fmt: str, coerce: Literal[True]) -> pd.Series: ...
@overload
def parse_datetimes(text: pd.Series, fmt: str, coerce: bool = False) -> pd.Series | None: ...
def parse_datetimes(text: pd.Series, fmt: str, coerce: bool = False) -> pd.Series | None:
    """Parse strings with ``fmt``; None when any value does not match (``coerce``: NaT for it).

    Dates outside pandas' nanosecond range (before 1677 or after 2262) are parsed at second
    resolution when written in ISO form (not when coercing).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)  # mixed UTC offsets: pandas' object fallback
            try:
                parsed = pd.to_datetime(text, format=fmt, errors="coerce")
            except (FutureWarning, ValueError):
                parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        parsed = None
    if parsed is not None and (coerce or not parsed.isna().any()):
        return parsed
    if coerce:
        return pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    if fmt.startswith("%Y-%m-%d"):
        try:
            arr = np.array(text.to_numpy(dtype=str), dtype="datetime64[s]")
        except ValueError:
            return None
        return pd.Series(arr, index=text.index)
    return None


def to_datetimes(v: pd.Series, warn: bool = True) -> pd.Series:
    """``pd.to_datetime``; datetimes with mixed UTC offsets become UTC instants (the offsets are lost)."""
    try:
        return pd.to_datetime(v)
    except ValueError as exc:
        if "utc=True" not in str(exc):
            raise
    if warn:
        warnings.warn(f"column {v.name!r} mixes UTC offsets; it is read as UTC instants and generated in UTC",
                      DataWarning, stacklevel=4)
    return pd.to_datetime(v, utc=True)


#: A string column of numbers with at most this share of other words reads those words as missing.
MAX_WORD_SHARE = 0.05


def numbers_with_few_words(name: str, text: pd.Series) -> pd.Series | None:
    """A column of numbers written as strings, with at most 5% other values (at most 3 distinct words,
    e.g. "unknown"), as numbers with those words missing (with a warning); None for any other column.
    Columns with fewer than 20 distinct numbers or with zero-padded codes stay categorical."""
    head = pd.to_numeric(text.iloc[:100], errors="coerce")
    if head.isna().mean() > 2 * MAX_WORD_SHARE:
        return None
    numbers = pd.to_numeric(text, errors="coerce")
    words = text[numbers.isna()]
    padded = text.str.match(r"^-?0\d").any()
    if padded or numbers.nunique() < 20 or len(words) > MAX_WORD_SHARE * len(text) or words.nunique() > 3:
        return None
    if len(words):
        counts = ", ".join(f"{w!r} x{c}" for w, c in words.value_counts().items())
        warnings.warn(f"column {name!r} holds numbers and a few words ({counts}); it is read as numerical with "
                      "those words as missing values. Give its kind in the metadata to choose otherwise",
                      DataWarning, stacklevel=4)
    return numbers


def _sorted_unique(v: pd.Series) -> tuple[Any, ...]:
    uniq = pd.unique(v)
    try:
        uniq = np.sort(uniq)
    except TypeError:
        pass
    return tuple(x.item() if hasattr(x, "item") else x for x in uniq)

