"""Event columns that never fall within a person (a disease stage, cumulative experience).

Such a column is learned as each person's first value and then the rise from their previous value
(a missing value stays missing and is skipped over), and generated rises are cut at zero and
cumulated back, so the rule holds on every generated person. Everything is vectorised over events:
the rows come person-major, in sequence order within a person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tabsynth.errors import DataError

#: Decimals kept after cumulating float rises (sums of floats pick up last-bit noise).
_DECIMALS = 10


def _numbers(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def to_rises(frame: pd.DataFrame, person: np.ndarray, names: Sequence[str], private: bool) -> pd.DataFrame:
    """``frame`` with each column of ``names`` as the person's first value, then rises. A value below
    the person's previous one is a :class:`DataError` (under DP, ``private``: a rise of zero, and
    nothing is named)."""
    if not names:
        return frame
    out = frame.copy()
    for name in names:
        v = pd.Series(_numbers(frame[name]))
        previous = v.groupby(person, sort=False).shift(1).groupby(person, sort=False).ffill().to_numpy()
        rise = v.to_numpy() - previous
        falls = rise < 0
        if falls.any() and not private:
            raise DataError(f"{int(falls.sum())} events have {name!r} below their person's previous value, against "
                            f"the declared non_decreasing; correct those events, or leave {name!r} out of "
                            "non_decreasing")
        values = np.where(np.isnan(previous), v.to_numpy(), np.maximum(rise, 0.0))
        integer = pd.api.types.is_integer_dtype(frame[name].dtype)
        out[name] = values.astype(frame[name].dtype) if integer else values
    return out


def from_rises(frame: pd.DataFrame, owner: np.ndarray, bounds: Mapping[str, Any]) -> pd.DataFrame:
    """Generated rises back to values: per person, the first present value, then running sums of
    the rises cut at zero, clipped into the column's ``bounds`` (``(low, high)`` or None) for
    every name of ``bounds``."""
    if not bounds:
        return frame
    out = frame.copy()
    for name, limits in bounds.items():
        x = _numbers(frame[name])
        present = ~np.isnan(x)
        seen = pd.Series(present).groupby(owner, sort=False).cumsum().to_numpy()
        step = np.where(present, np.where(seen == 1, x, np.maximum(x, 0.0)), 0.0)
        total = pd.Series(step).groupby(owner, sort=False).cumsum().to_numpy()
        if limits is not None:
            total = np.clip(total, float(limits[0]), float(limits[1]))
        dtype = frame[name].dtype
        integer = pd.api.types.is_integer_dtype(dtype)
        total = np.round(total) if integer else np.round(total, _DECIMALS)
        values = np.where(present, total, np.nan)
        out[name] = values.astype(dtype) if integer and present.all() else values
    return out


def observed_bounds(events: pd.DataFrame, names: Sequence[str]) -> dict[str, tuple[float, float] | None]:
    """Outside DP: each column's smallest and largest value (None when it has none)."""
    out: dict[str, tuple[float, float] | None] = {}
    for name in names:
        x = _numbers(events[name])
        x = x[~np.isnan(x)]
        out[name] = (float(x.min()), float(x.max())) if len(x) else None
    return out


def rise_bounds(bounds: tuple[Any, Any] | None) -> tuple[float, float] | None:
    """Bounds that hold both a first value and a rise of a column within ``bounds`` (low, high)."""
    if bounds is None:
        return None
    low, high = float(bounds[0]), float(bounds[1])
    return min(low, 0.0), max(high, high - low)


def detect_rising(events: pd.DataFrame, person: np.ndarray, order: np.ndarray | None,
                  exclude: Sequence[str]) -> list[str]:
    """Outside DP: the numeric event columns (besides ``exclude``) that never fall within a person
    and rise for at least one, with the events of ``person`` (codes) in ``order`` (None: row order)."""
    rows = np.lexsort((order, person)) if order is not None else np.argsort(person, kind="stable")
    owner = person[rows]
    out = []
    for name in events.columns:
        dtype = events[name].dtype
        if name in exclude or pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            continue
        x = pd.Series(_numbers(events[name])[rows])
        previous = x.groupby(owner, sort=False).shift(1).groupby(owner, sort=False).ffill().to_numpy()
        step = x.to_numpy() - previous
        if (step > 0).any() and not (step < 0).any():
            out.append(name)
    return out
