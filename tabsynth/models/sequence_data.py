"""A person table and its event table as per-person sequences, and generated sequences back to tables.

The key links the tables and is never learned. Events are put in person order (the person table's
row order), then in sequence order within a person (the ``order_by`` column, stable, so ties keep
their row order; without it the row order is the sequence). The sequence column becomes the
non-negative gap from the person's previous event, the first event's gap counting from the data's
smallest value; generated gaps are cumulated back, so order holds within every generated person.
Each person keeps at most ``cap`` events, the first ones. Everything is vectorised over events.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from tabsynth.errors import DataError
from tabsynth.models.sequence_rises import from_rises, to_rises

#: Quantile of events per person that sets the default cap.
CAP_QUANTILE = 0.99
_NS_PER_DAY = 86_400 * 10**9


@dataclass
class SequenceColumn:
    """How the sequence column maps to gaps and back: its name (None: row order), ``kind``
    (``"number"`` or ``"datetime"``), the origin of first gaps (datetimes in days since the epoch),
    whether gaps are whole numbers, the column's dtype, and the person columns it must not fall
    below (``lower``: also the origin of the person's first gap) or rise above (``upper``).
    ``start`` names a person column holding each person's first value (the origin of their first
    gap when there is no ``lower``): a DP fit learns it with the person table, so that no origin
    is read off the data."""

    name: str | None
    kind: str | None = None
    origin: float = 0.0
    integer: bool = False
    dtype: str | None = None
    lower: str | None = None
    upper: str | None = None
    start: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SequenceColumn:
        return cls(**d)

    def values(self, s: pd.Series) -> np.ndarray:
        """The column as float64 (datetimes in days since the epoch), or a :class:`DataError` saying
        what to fix when it is missing somewhere or mixes types."""
        if s.isna().any():
            raise DataError(f"sequence column {self.name!r} has {int(s.isna().sum())} missing values; fill or "
                            "drop those events, or leave order_by unset to use the row order")
        if pd.api.types.is_bool_dtype(s.dtype):
            raise DataError(f"sequence column {self.name!r} is boolean; order_by takes a number or a date")
        if pd.api.types.is_numeric_dtype(s.dtype):
            return s.to_numpy(dtype="float64")
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            return _days(s)
        numbers = pd.to_numeric(s, errors="coerce")
        if numbers.notna().all():
            return numbers.to_numpy(dtype="float64")
        dates = pd.to_datetime(s, errors="coerce", format="mixed")
        if dates.notna().all() and numbers.isna().all():
            return _days(dates)
        bad = s[numbers.isna() & dates.isna()] if not dates.notna().all() else s[numbers.notna()]
        raise DataError(f"sequence column {self.name!r} mixes types (numbers, dates or text; e.g. "
                        f"{bad.iloc[0]!r}); order_by takes one column of numbers or of dates: convert it, e.g. "
                        "with pd.to_numeric or pd.to_datetime")

    def fit(self, s: pd.Series, values: np.ndarray) -> None:
        """Read the kind, origin and dtype off the column ``s`` with float values ``values``."""
        dates = pd.api.types.is_datetime64_any_dtype(s.dtype) or (
            not pd.api.types.is_numeric_dtype(s.dtype) and pd.to_numeric(s, errors="coerce").isna().all())
        self.kind = "datetime" if dates else "number"
        self.origin = float(values.min()) if len(values) else 0.0
        self.integer = bool(np.all(values == np.round(values)))
        self.dtype = str(s.dtype)

    def fit_private(self, s: pd.Series) -> np.ndarray:
        """Under DP: the kind from the dtype alone (integers and floats one numeric kind), the origin
        0, and the values as float64 (NaN where missing: those events are left out, never named)."""
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            self.kind, self.dtype = "datetime", "datetime64[ns]"
            t = pd.to_datetime(s)
            days = _days(t.fillna(pd.Timestamp(0)) if t.dt.tz is None else t.fillna(pd.Timestamp(0, tz=t.dt.tz)))
            values = np.where(t.isna().to_numpy(), np.nan, days)
        elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            self.kind, self.dtype = "number", "float64"
            values = s.to_numpy(dtype="float64", na_value=np.nan)
        else:
            raise DataError(f"under differential privacy the kind of the sequence column {self.name!r} is taken from "
                            f"its dtype ({s.dtype}), never read off its values: convert it to numbers or dates "
                            "first, e.g. with pd.to_numeric or pd.to_datetime")
        self.origin, self.integer = 0.0, False
        return values

    def bound(self, persons: pd.DataFrame, name: str | None) -> np.ndarray:
        """``[P]`` float values of the person column ``name`` (NaN where missing or undeclared)."""
        if name is None:
            return np.full(len(persons), np.nan)
        s = persons[name]
        if self.kind == "datetime":
            t = pd.to_datetime(s, errors="coerce")
            out = _days(t.fillna(pd.Timestamp(0)))
            return np.where(t.isna().to_numpy(), np.nan, out)
        return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64")

    def origins(self, persons: pd.DataFrame) -> np.ndarray:
        """``[P]`` origin of each person's first gap: their ``lower`` value, else their ``start``
        value, else the data's smallest."""
        lower = self.bound(persons, self.lower)
        if self.start is not None:
            lower = np.where(np.isnan(lower), self.bound(persons, self.start), lower)
        return np.where(np.isnan(lower), self.origin, lower)

    def restore(self, x: np.ndarray) -> pd.Series:
        """The column from its float values ``x`` (datetimes in days since the epoch)."""
        if self.kind == "datetime":
            ns = np.round(x * _NS_PER_DAY).astype("int64")
            return pd.Series(pd.to_datetime(ns, unit="ns"))
        try:
            return pd.Series(x).astype(self.dtype)
        except (TypeError, ValueError):
            return pd.Series(x)


def _days(s: pd.Series) -> np.ndarray:
    t = pd.to_datetime(s)
    if getattr(t.dt, "tz", None) is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return t.astype("datetime64[ns]").astype("int64").to_numpy() / _NS_PER_DAY


def check_tables(events: Any, subjects: Any, key: Any, order_by: Any, private: bool = False) -> pd.DataFrame:
    """The person table (one made of the event keys when ``subjects`` is None), or a
    :class:`DataError` saying what to fix in the two tables (``private``: naming no value)."""
    for name, df in (("events", events), ("subjects", subjects)):
        if df is not None and not isinstance(df, pd.DataFrame):
            raise DataError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    if not isinstance(key, str):
        raise DataError(f"key must name the column that links the tables, got {key!r}")
    if key not in events.columns:
        raise DataError(f"key {key!r} is not a column of the event table; columns: {', '.join(map(str, events.columns))}")
    if order_by is not None and (order_by not in events.columns or order_by == key):
        raise DataError(f"order_by {order_by!r} must be a column of the event table other than the key; columns: "
                        f"{', '.join(map(str, events.columns))}")
    _check_key(events[key], "event table")
    if subjects is None:
        return pd.DataFrame({key: pd.unique(events[key])})
    if key not in subjects.columns:
        raise DataError(f"key {key!r} is not a column of the person table; name the person id column the same in "
                        "both tables")
    _check_key(subjects[key], "person table")
    if subjects[key].duplicated().any():
        dup = "" if private else f" {subjects[key][subjects[key].duplicated()].iloc[0]!r}"
        raise DataError(f"the person table has several rows for key{dup or 's'}; it needs one row per person "
                        "(move what changes between them to the event table)")
    missing = ~events[key].isin(subjects[key])
    if missing.any():
        shown = "" if private else f"{int(missing.sum())} events have keys that are not in the person table (e.g. " + \
            ", ".join(map(repr, pd.unique(events[key][missing])[:5])) + "); "
        raise DataError(f"{shown or 'some events have keys that are not in the person table; '}add those persons to "
                        "the person table or drop their events")
    return subjects


def split_long(data: pd.DataFrame, key: str, order_by: str | None, person_columns: Any
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(persons, events)`` of one long table whose ``person_columns`` repeat a person's attributes
    on each of their events (``"auto"``: the columns constant within every person)."""
    if not isinstance(data, pd.DataFrame) or key not in data.columns:
        raise DataError(f"a long table needs a DataFrame with the key column {key!r}")
    _check_key(data[key], "table")
    others = [c for c in data.columns if c not in (key, order_by)]
    varies = data.groupby(key, sort=False)[others].nunique(dropna=False).max() > 1 if len(data) else \
        pd.Series(False, index=others)
    if isinstance(person_columns, str) and person_columns == "auto":
        person_columns = [c for c in others if not varies[c]]
    elif isinstance(person_columns, str) or not all(isinstance(c, str) for c in person_columns):
        raise DataError(f"subject_columns must be a list of column names or 'auto', got {person_columns!r}")
    person_columns = list(person_columns)
    unknown = [c for c in person_columns if c not in others]
    if unknown:
        raise DataError(f"subject_columns {unknown} are not columns of the table besides the key and order_by")
    changing = [c for c in person_columns if varies[c]]
    if changing:
        raise DataError(f"subject_columns {changing} change within a person; a person column holds one value per "
                        "person: leave them out of subject_columns (they stay event columns)")
    persons = data.drop_duplicates(key)[[key, *person_columns]].reset_index(drop=True)
    return persons, data.drop(columns=person_columns)


def _check_key(s: pd.Series, where: str) -> None:
    if s.isna().any():
        raise DataError(f"key column {s.name!r} of the {where} has missing values; every row needs its person's id: "
                        "fill them or drop those rows")


@dataclass
class Prepared:
    """Events of the persons in person then sequence order, as the model learns them.

    Attributes:
        frame: the kept events without the key, the sequence column (first) as gaps.
        person: ``[N]`` person index (row of the person table) of each kept event.
        position: ``[N]`` position of each kept event within its person.
        lengths: ``[P]`` kept events per person.
        cap: most events per person; ``cut`` events over it were dropped, from ``cut_persons`` persons.
    """

    frame: pd.DataFrame
    person: np.ndarray
    position: np.ndarray
    lengths: np.ndarray
    cap: int
    cut: int
    cut_persons: int


def prepare(events: pd.DataFrame, subjects: pd.DataFrame, key: str, column: SequenceColumn,
            max_events: int | None, values: np.ndarray | None = None, rising: Sequence[str] = (),
            private: bool = False) -> Prepared:
    """Sort, cap, turn the sequence column into gaps and the ``rising`` columns (that never fall) into
    rises (``column`` is fitted here, unless its float ``values`` are given: then it was fitted
    already; ``private``: a fall is cut to a rise of zero, never named)."""
    person = pd.Index(subjects[key]).get_indexer(events[key])
    if column.name is not None:
        if values is None:
            values = column.values(events[column.name])
            column.fit(events[column.name], values)
        rows = np.lexsort((values, person))
    else:
        rows = np.argsort(person, kind="stable")
    person = person[rows]
    counts = np.bincount(person, minlength=len(subjects))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(person)) - starts[person]
    cap = _cap(counts, max_events)
    keep = position < cap
    frame = to_rises(events.iloc[rows].drop(columns=[key]).reset_index(drop=True), person, rising, private)
    if values is not None:
        v = values[rows]
        _check_bounds(v, person, subjects, column)
        previous = np.where(position > 0, np.roll(v, 1), column.origins(subjects)[person])
        gaps = np.maximum(v - previous, 0.0)
        frame = frame.drop(columns=[column.name])
        frame.insert(0, column.name, gaps.round().astype("int64") if column.integer else gaps)
    lengths = np.minimum(counts, cap)
    return Prepared(frame[keep].reset_index(drop=True), person[keep], position[keep], lengths, cap,
                    int((~keep).sum()), int((counts > cap).sum()))


def _check_bounds(v: np.ndarray, person: np.ndarray, subjects: pd.DataFrame, column: SequenceColumn) -> None:
    for name, outside in ((column.lower, lambda b: v < b), (column.upper, lambda b: v > b)):
        if name is None:
            continue
        bound = column.bound(subjects, name)[person]
        bad = outside(np.where(np.isnan(bound), v, bound))
        if bad.any():
            side = "before" if name == column.lower else "after"
            raise DataError(f"{int(bad.sum())} events have {column.name!r} {side} their person's {name!r}, against "
                            f"the declared order_bounds; correct or drop those events, or leave {name!r} out of "
                            "order_bounds")


def kept_counts(events: pd.DataFrame, subjects: pd.DataFrame, key: str, max_events: int | None) -> np.ndarray:
    """``[P]`` each person's number of events, at most the cap :func:`prepare` applies."""
    counts = np.bincount(pd.Index(subjects[key]).get_indexer(events[key]), minlength=len(subjects))
    return np.minimum(counts, _cap(counts, max_events))


def count_column(persons: pd.DataFrame) -> str:
    """A fresh person column name for each person's number of events."""
    name = "n_events"
    while name in persons.columns:
        name += "_"
    return name


def _cap(counts: np.ndarray, max_events: int | None) -> int:
    if max_events is not None:
        if not isinstance(max_events, (int, np.integer)) or isinstance(max_events, bool) or max_events < 1:
            raise DataError(f"max_events must be a positive integer, got {max_events!r}")
        return int(max_events)
    return max(1, int(math.ceil(np.quantile(counts, CAP_QUANTILE)))) if len(counts) else 1


def assemble(decoded: pd.DataFrame, lengths: np.ndarray, persons: pd.DataFrame, key: str, column: SequenceColumn,
             columns: list[str], rising: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The event table from decoded events (person-major, ``lengths[p]`` events of person ``p``): the
    key of each event's person first, the sequence column cumulated from its gaps (a person's events
    past their ``upper`` bound left out: their sequence ends there), the ``rising`` columns (name to
    bounds or None) cumulated from their rises, then ``columns``' order."""
    owner = np.repeat(np.arange(len(lengths)), lengths)
    out = from_rises(decoded, owner, rising or {})
    if column.name is not None:
        gaps = np.maximum(pd.to_numeric(out[column.name], errors="coerce").fillna(0.0).to_numpy("float64"), 0.0)
        total = np.cumsum(gaps)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        before = np.where(lengths[owner] > 0, total[starts[owner]] - gaps[starts[owner]], 0.0)
        x = column.origins(persons)[owner] + (total - before)
        if column.integer:
            x = np.round(x)
        upper = column.bound(persons, column.upper)[owner]
        keep = ~(x > upper)
        out[column.name] = column.restore(x).to_numpy()
        out, owner = out[keep], owner[keep]
    out.insert(0, key, persons[key].to_numpy()[owner])
    return out[[key] + [c for c in columns if c != key]].reset_index(drop=True)
