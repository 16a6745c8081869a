"""Datetime columns (datetime64 or date strings): ticks at the column's resolution, numerically encoded.

The resolution (days, seconds, ...) is the coarsest unit every value is a whole multiple of, so
decoding rounds to it; time zones are kept (ticks are UTC); string columns are written back with
their original format.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any

import numpy as np
import pandas as pd

from tabsynth.errors import DataError
from tabsynth.metadata.detect import parse_datetimes, to_datetimes
from tabsynth.transform.base import Slots, restore_dtype
from tabsynth.transform.numerical import NumericEncoder

_UNIT_IN_NS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9}
_RES_IN_NS = {"D": 86_400 * 10**9, "h": 3_600 * 10**9, "min": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def to_datetime(s: pd.Series, fmt: str | None) -> pd.Series:
    """Parse a column to naive-UTC datetime64 (any unit); NaT for nulls."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        out = s
    elif fmt is not None:
        present = s.notna()
        parsed = parse_datetimes(s[present].astype(str), fmt)
        if parsed is None:
            raise DataError(
                f"column {s.name!r}: some values do not match the datetime format {fmt!r}; "
                "fix the values or set the column's kind to categorical"
            )
        out = pd.Series(pd.NaT, index=s.index, dtype=parsed.dtype)
        out[present] = parsed
    else:
        try:
            out = to_datetimes(s, warn=False)
        except (ValueError, TypeError) as exc:
            raise DataError(f"column {s.name!r} cannot be read as datetimes: {exc}") from exc
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out


@dataclass(eq=False)
class DatetimeEncoder:
    """Datetime as integer ticks (resolution units from ``origin``) through a :class:`NumericEncoder`."""

    column: str
    numeric: NumericEncoder
    _: KW_ONLY
    unit: str
    step: int
    origin: int
    timezone: str | None = None
    datetime_format: str | None = None
    dtype: str | None = None

    def __post_init__(self) -> None:
        self.step, self.origin = int(self.step), int(self.origin)

    @classmethod
    def fit(cls, column: str, s: pd.Series, *, datetime_format: str | None = None, method: str = "mode",
            max_modes: int = 10, max_rows: int = 10_000, seed: int | None = 0) -> DatetimeEncoder:
        dtype = str(s.dtype)
        if datetime_format is None and not pd.api.types.is_datetime64_any_dtype(s.dtype):
            s = to_datetimes(s, warn=False).rename(s.name)  # Python datetimes: keep their zone (UTC when mixed)
        dt = to_datetime(s, datetime_format)
        unit = np.datetime_data(dt.dtype)[0]
        ticks = dt.to_numpy().astype("int64")
        present = ticks[dt.notna().to_numpy()]
        step = 1
        for res_ns in _RES_IN_NS.values():
            if res_ns % _UNIT_IN_NS[unit] == 0:
                cand = res_ns // _UNIT_IN_NS[unit]
                if len(present) and np.all(present % cand == 0):
                    step = cand
                    break
        origin = int(present.min() // step) if len(present) else 0
        rel = pd.Series(np.where(dt.notna(), ticks // step - origin, np.nan), dtype="float64")
        numeric = NumericEncoder.fit(column, rel, method=method, integer=True, max_modes=max_modes,
                                     max_rows=max_rows, seed=seed)
        tz = getattr(s.dt, "tz", None) if pd.api.types.is_datetime64_any_dtype(s.dtype) else None
        return cls(column, numeric, unit=unit, step=step, origin=origin,
                   timezone=str(tz) if tz is not None else None,
                   datetime_format=datetime_format, dtype=dtype)

    @property
    def spans(self):
        return self.numeric.spans

    @property
    def width(self) -> int:
        return self.numeric.width

    def _ticks(self, s: pd.Series) -> pd.Series:
        dt = to_datetime(s, self.datetime_format)
        if np.datetime_data(dt.dtype)[0] != self.unit:
            dt = dt.astype(f"datetime64[{self.unit}]")
        ticks = dt.to_numpy().astype("int64")
        return pd.Series(np.where(dt.notna(), ticks // self.step - self.origin, np.nan), dtype="float64")

    def transform(self, s: pd.Series) -> np.ndarray:
        return self.numeric.transform(self._ticks(s))

    def inverse_transform(self, block: np.ndarray, rng: np.random.Generator, offset: int = 0,
                          slots: Slots | None = None) -> pd.Series:
        rel = self.numeric.decode_values(block, slots)
        missing = np.isnan(rel)
        ticks = (np.where(missing, 0, rel).astype(np.int64) + self.origin) * self.step
        arr = ticks.astype(f"datetime64[{self.unit}]")
        arr[missing] = np.datetime64("NaT")
        out = pd.Series(arr, name=self.column)
        if self.timezone is not None:
            out = out.dt.tz_localize("UTC").dt.tz_convert(self.timezone)
        if self.datetime_format is not None:
            text = out.dt.strftime(self.datetime_format)
            return restore_dtype(text.where(~missing, None).rename(self.column), self.dtype)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"type": "datetime", "column": self.column, "numeric": self.numeric.to_dict(),
                "unit": self.unit, "step": self.step, "origin": self.origin, "timezone": self.timezone,
                "datetime_format": self.datetime_format, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatetimeEncoder:
        d = {k: v for k, v in d.items() if k != "type"}
        return cls(d.pop("column"), NumericEncoder.from_dict(d.pop("numeric")), **d)
