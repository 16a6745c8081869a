"""Per-person views of a person table and its event table, and the scores that compare them.

Every frame is built with pandas groupby over the whole table (no loop over persons): the events
in sequence order, the number of events per person, one row per person with the person's columns
and the aggregates of their events, and each event beside the previous event of the same person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from tabsynth.datasets import Sequences
from tabsynth.errors import ConfigError, DataError
from tabsynth.metadata import Metadata
from tabsynth.metadata.column import ColumnSpec
from tabsynth.report._common import NUMERIC_KINDS, Prepared, check_frame_arg, check_same_columns, clip01

#: Name of the per-person column counting the person's events.
N_EVENTS = "n_events"
_MISSING = "\x00missing"


# --------------------------------------------------------------------------- inputs
def check_sequences(pair: Any, what: str, *, allow_none: bool = False) -> Sequences | None:
    """``pair`` as a :class:`~tabsynth.datasets.Sequences` whose key links its two tables."""
    if pair is None and allow_none:
        return None
    if not isinstance(pair, Sequences):
        raise DataError(f"{what} must be a tabsynth.datasets.Sequences (a person table and its event table), got "
                        f"{type(pair).__name__}; build one with Sequences(subjects, events, key='id', order_by=...)")
    subjects = cast(pd.DataFrame, check_frame_arg(pair.subjects, f"{what}.subjects"))
    events = cast(pd.DataFrame, check_frame_arg(pair.events, f"{what}.events"))
    key, order_by = pair.key, pair.order_by
    for name, df in (("subjects", subjects), ("events", events)):
        if key not in df.columns:
            raise DataError(f"the key {key!r} is not a column of {what}.{name}; give the column that links the two "
                            f"tables as key= (columns: {', '.join(map(str, df.columns))})")
        if df[key].isna().any():
            raise DataError(f"{what}.{name} has {int(df[key].isna().sum())} rows with a missing key {key!r}; "
                            "drop them or fill the key")
    if subjects[key].duplicated().any():
        raise DataError(f"{what}.subjects has several rows with one key {key!r}; keep one row per person")
    if order_by is not None and order_by not in events.columns:
        raise DataError(f"the sequence column {order_by!r} is not a column of {what}.events; give order_by= "
                        "an event column or None")
    orphans = ~events[key].isin(subjects[key])
    if orphans.any():
        raise DataError(f"{int(orphans.sum())} events of {what} have a key {key!r} missing from {what}.subjects; "
                        "add those persons to the person table or drop their events")
    return pair


def check_like(real: Sequences, other: Sequences | None, what: str) -> Sequences | None:
    """``other`` with the real pair's key, sequence column and columns (in the real order)."""
    if other is None:
        return None
    if (other.key, other.order_by) != (real.key, real.order_by):
        raise DataError(f"{what} has key {other.key!r} and order_by {other.order_by!r} but real has key "
                        f"{real.key!r} and order_by {real.order_by!r}; build both pairs with the same names")
    subjects = check_same_columns(real.subjects, other.subjects, f"{what}.subjects")
    events = check_same_columns(real.events, other.events, f"{what}.events")
    return Sequences(subjects, events, real.key, real.order_by)


@dataclass(frozen=True)
class Rules:
    """The declared rules a report checks: the (lower, upper) person columns bounding the sequence
    column (None: none declared) and the event columns that never fall within a person."""

    bounds: tuple[str | None, str | None] | None = None
    non_decreasing: tuple[str, ...] = ()


def check_rules(real: Sequences, order_bounds: Any, non_decreasing: Any) -> Rules:
    """The declared rules, checked against the real pair's columns."""
    if isinstance(non_decreasing, str):
        non_decreasing = [non_decreasing]
    rising = tuple(non_decreasing or ())
    for c in rising:
        if c not in real.events.columns or c in (real.key, real.order_by):
            others = [str(x) for x in real.events.columns if x not in (real.key, real.order_by)]
            raise ConfigError(f"non_decreasing column {c!r} is not an event column besides the key and order_by; "
                              f"choose among {', '.join(others)}")
    return Rules(check_bounds(real, order_bounds), rising)


def check_bounds(real: Sequences, order_bounds: Any) -> tuple[str | None, str | None] | None:
    """The declared (lower, upper) person columns bounding the sequence column, checked."""
    if order_bounds is None:
        return None
    if real.order_by is None:
        raise ConfigError("order_bounds= needs a sequence column: give the pairs an order_by")
    if not isinstance(order_bounds, (tuple, list)) or len(order_bounds) != 2:
        raise ConfigError(f"order_bounds must be a pair (lower, upper) of person columns or None, got {order_bounds!r}")
    for c in order_bounds:
        if c is not None and c not in real.subjects.columns:
            raise ConfigError(f"order_bounds column {c!r} is not a column of the person table; choose one of "
                              f"{', '.join(map(str, real.subjects.columns))}")
    return (order_bounds[0], order_bounds[1])


# --------------------------------------------------------------------------- frames
def as_number(s: pd.Series) -> pd.Series:
    """A sequence or bound column as floats: numbers as they are, dates as days since 1970."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("float64")
    numbers = pd.to_numeric(s, errors="coerce") if not pd.api.types.is_datetime64_any_dtype(s.dtype) else None
    if numbers is not None and numbers.notna().sum() == s.notna().sum():
        return numbers.astype("float64")
    dt = s if pd.api.types.is_datetime64_any_dtype(s.dtype) else pd.to_datetime(s, errors="coerce", format="mixed")
    if getattr(dt.dt, "tz", None) is not None:
        dt = dt.dt.tz_convert("UTC").dt.tz_localize(None)
    days = dt.astype("datetime64[ns]").astype("int64").astype("float64") / 86_400e9
    return days.where(dt.notna().to_numpy())


def gap_name(order_by: str) -> str:
    return f"{order_by}_gap"


def ordered(pair: Sequences, converted: pd.DataFrame) -> pd.DataFrame:
    """The converted event columns with the key, sorted by person and sequence (stable, so ties and
    tables without a sequence column keep their row order), with the gap from the previous event."""
    key, order_by = pair.key, pair.order_by
    df = converted.copy()
    df.insert(0, key, pair.events[key].to_numpy())
    if order_by is not None:
        df["_order"] = as_number(pair.events[order_by]).to_numpy()
        df = df.sort_values([key, "_order"], kind="stable")
        df[gap_name(order_by)] = df["_order"] - df.groupby(key, sort=False)["_order"].shift(1)
        df = df.drop(columns="_order")
    else:
        df = df.sort_values(key, kind="stable")
    return df.reset_index(drop=True)


def events_per_person(pair: Sequences) -> pd.Series:
    """Events of each person of the person table (0 for a person without events)."""
    counts = pair.events.groupby(pair.key, sort=False).size()
    return counts.reindex(pair.subjects[pair.key].to_numpy(), fill_value=0).astype("float64")


def aggregate_names(prep: Prepared) -> dict[str, str]:
    """Each per-person aggregate column and its kind: first, last and mean of numbers; first, last and
    number of distinct values of categories."""
    out: dict[str, str] = {}
    for c in prep.columns:
        if prep.kinds[c] in NUMERIC_KINDS:
            out.update({f"{c}_first": "numerical", f"{c}_last": "numerical", f"{c}_mean": "numerical"})
        else:
            out.update({f"{c}_first": "categorical", f"{c}_last": "categorical", f"{c}_distinct": "integer"})
    return out


def aggregates(prep: Prepared, events: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per person with events (indexed by key): first, last, mean / distinct of each column."""
    g = events.groupby(key, sort=False)
    first = events[g.cumcount().to_numpy() == 0].set_index(key)[prep.columns]
    last = events[g.cumcount(ascending=False).to_numpy() == 0].set_index(key)[prep.columns]
    num = [c for c in prep.columns if prep.kinds[c] in NUMERIC_KINDS]
    cat = [c for c in prep.columns if c not in num]
    parts = [first.add_suffix("_first"), last.add_suffix("_last")]
    if num:
        parts.append(g[num].mean().add_suffix("_mean"))
    if cat:
        parts.append(g[cat].nunique(dropna=False).astype("float64").add_suffix("_distinct"))
    return pd.concat(parts, axis=1)[list(aggregate_names(prep))]


def person_frame(subjects: pd.DataFrame, key_values: pd.Series, counts: pd.Series, aggs: pd.DataFrame) -> pd.DataFrame:
    """One row per person: the converted person columns, the number of events and the aggregates."""
    out = subjects.reset_index(drop=True).copy()
    out[N_EVENTS] = counts.to_numpy()
    joined = aggs.reindex(key_values.to_numpy())
    joined.index = out.index
    return pd.concat([out, joined], axis=1)


def person_prep(person: Prepared | None, event: Prepared, frames: dict[str, pd.DataFrame | None]) -> Prepared:
    """The report's view of the per-person frames: person columns keep their kinds (dates already in
    days, so numerical), the event count and distinct counts are integers. ``event`` holds the event
    table's own columns (not the gap)."""
    own = person.columns if person is not None else []
    kinds = {c: ("numerical" if person.kinds[c] == "datetime" else person.kinds[c]) for c in own}  # type: ignore
    clash = sorted(set(kinds) & ({N_EVENTS} | set(aggregate_names(event))))
    if clash:
        raise DataError(f"person columns {clash} have the names of per-person aggregates of the events; rename "
                        "them in the person table")
    kinds[N_EVENTS] = "integer"
    kinds.update(aggregate_names(event))
    meta = Metadata([ColumnSpec(name=c, kind=k, dtype="float64" if k in NUMERIC_KINDS else "object", nullable=True)
                     for c, k in kinds.items()])
    prep = Prepared(meta=meta, columns=list(kinds), kinds=kinds, ids=[], texts=[])
    prep.frames = {k: v[prep.columns] for k, v in frames.items() if v is not None}
    return prep


def previous(events: pd.DataFrame, key: str, columns: list[str]) -> pd.DataFrame:
    """Each event's columns of the previous event of the same person (missing for a first event)."""
    return events.groupby(key, sort=False)[columns].shift(1)


# --------------------------------------------------------------------------- scores
def filled(s: pd.Series) -> pd.Series:
    """Values as objects with missing ones as a value of their own."""
    s = s.astype(object)
    return s.where(s.notna(), _MISSING)


def ks_complement(a: pd.Series | np.ndarray, b: pd.Series | np.ndarray) -> float | None:
    """1 - the Kolmogorov-Smirnov distance of two samples of numbers (missing left out)."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = np.sort(x[np.isfinite(x)]), np.sort(y[np.isfinite(y)])
    if not x.size or not y.size:
        return None
    grid = np.concatenate([x, y])
    cx = np.searchsorted(x, grid, side="right") / x.size
    cy = np.searchsorted(y, grid, side="right") / y.size
    return clip01(1.0 - float(np.abs(cx - cy).max()))


def tv_complement(a: pd.Series, b: pd.Series) -> float | None:
    """1 - the total-variation distance of two samples of categories (missing as its own value)."""
    if not len(a) or not len(b):
        return None
    p = filled(pd.Series(a)).value_counts(normalize=True)
    q = filled(pd.Series(b)).value_counts(normalize=True)
    p, q = p.align(q, fill_value=0.0)
    return clip01(round(1.0 - 0.5 * float(np.abs(p - q).sum()), 12))


def mean_of(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(known)) if known else None


def summary(s: pd.Series, numeric: bool) -> dict[str, Any]:
    """What the aggregate table shows of one side: mean and quartiles, or the commonest value."""
    if numeric:
        v = pd.to_numeric(s, errors="coerce").dropna()
        if not len(v):
            return {"mean": None, "p25": None, "median": None, "p75": None}
        q = v.quantile([0.25, 0.5, 0.75]).to_numpy()
        return {"mean": float(v.mean()), "p25": float(q[0]), "median": float(q[1]), "p75": float(q[2])}
    vc = s.dropna().value_counts(normalize=True)
    return {"top": None if vc.empty else str(vc.index[0]), "top_share": None if vc.empty else float(vc.iloc[0])}
