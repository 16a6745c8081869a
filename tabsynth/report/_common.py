"""Shared helpers of the report: input checks, column views, encodings, intervals, JSON cleaning."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tabsynth.errors import ConfigError, DataError, MetadataError
from tabsynth.metadata import Metadata

#: Rows per table above which the distance, discriminator and sdmetrics parts use a random subsample.
DEFAULT_MAX_ROWS = 10_000
#: Most categories one-hot encoded per column for distances; rarer values share one "other" slot.
MAX_ONEHOT = 50
Z95 = 1.959963984540054

NUMERIC_KINDS = ("numerical", "integer", "datetime")
CATEGORY_KINDS = ("categorical", "boolean")
#: Kinds of free-text and personal-identifier columns: never compared as categories; the report
#: counts the synthetic cells that repeat a real one verbatim.
TEXT_KINDS = ("pii", "text")


# --------------------------------------------------------------------------- inputs
def check_frame_arg(df: Any, what: str, *, allow_none: bool = False) -> pd.DataFrame | None:
    if df is None and allow_none:
        return None
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(df).__name__}; "
                        "read files with tabsynth.io.read_table")
    if len(df) == 0:
        raise DataError(f"{what} has no rows; give a table with at least one row")
    if df.columns.duplicated().any():
        dup = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise DataError(f"{what} has duplicate column names {dup}; rename them")
    return df


def check_same_columns(real: pd.DataFrame, other: pd.DataFrame, what: str) -> pd.DataFrame:
    missing = [c for c in real.columns if c not in other.columns]
    extra = [c for c in other.columns if c not in real.columns]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if extra:
            parts.append(f"extra {extra}")
        raise DataError(f"{what} must have the same columns as real: {what} has " + " and ".join(parts)
                        + f"; select the real table's columns, e.g. {what}[real.columns]")
    return other[list(real.columns)]


def resolve_metadata(metadata: Any, real: pd.DataFrame) -> Metadata:
    if metadata is None:
        return Metadata.detect(real)
    if isinstance(metadata, Metadata):
        meta = metadata
    elif isinstance(metadata, dict):
        meta = Metadata.from_dict(metadata)
    elif isinstance(metadata, (str, os.PathLike)):
        meta = Metadata.from_json(metadata)
    else:
        raise MetadataError(f"metadata must be a tabsynth.Metadata, a dict or a JSON path, "
                            f"got {type(metadata).__name__}")
    meta.check_frame(real)
    return meta


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- column views
@dataclass
class Prepared:
    """The tables reduced to comparable plain columns.

    Numeric and datetime columns become float64 (datetimes as days since 1970), categorical
    and boolean columns become object strings with missing values kept as NaN. Id columns and
    free-text or personal-identifier columns are dropped from every comparison (``ids`` and
    ``texts`` list them).
    """

    meta: Metadata
    columns: list[str]                       # analysed columns (ids excluded)
    kinds: dict[str, str]
    ids: list[str]
    texts: list[str] = field(default_factory=list)  # free-text / personal-identifier columns (left out)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)   # name -> converted full table

    @property
    def numeric(self) -> list[str]:
        return [c for c in self.columns if self.kinds[c] in NUMERIC_KINDS]

    @property
    def categorical(self) -> list[str]:
        return [c for c in self.columns if self.kinds[c] in CATEGORY_KINDS]


def _to_days(s: pd.Series, fmt: str | None) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        dt = s
    else:
        dt = pd.to_datetime(s, format=fmt, errors="coerce", utc=True) if fmt else \
            pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
    if getattr(dt.dt, "tz", None) is not None:
        dt = dt.dt.tz_convert("UTC").dt.tz_localize(None)
    ns = dt.astype("datetime64[ns]").astype("int64").astype("float64")
    ns[dt.isna().to_numpy()] = np.nan
    return pd.Series(ns / 86_400e9, index=s.index)


def convert(df: pd.DataFrame, prep: Prepared) -> pd.DataFrame:
    out = {}
    for c in prep.columns:
        kind = prep.kinds[c]
        s = df[c]
        if kind == "datetime":
            out[c] = _to_days(s, prep.meta.columns[c].datetime_format)
        elif kind in ("numerical", "integer"):
            out[c] = pd.to_numeric(s, errors="coerce").astype("float64")
        else:
            vals = s.astype(object)
            mask = s.isna().to_numpy()
            vals = vals.map(str)
            vals[mask] = np.nan
            out[c] = vals
    return pd.DataFrame(out, index=df.index)


def prepare(meta: Metadata, frames: dict[str, pd.DataFrame | None]) -> Prepared:
    kinds = {n: s.kind for n, s in meta.columns.items()}
    ids = [n for n, k in kinds.items() if k == "id"]
    texts = [n for n, k in kinds.items() if k in TEXT_KINDS]
    cols = [n for n in meta.column_names if kinds[n] != "id" and kinds[n] not in TEXT_KINDS]
    if not cols:
        raise MetadataError("every column is an id, free-text or personal-identifier column; the report needs at "
                            "least one other column (fix the kinds in the metadata)")
    prep = Prepared(meta=meta, columns=cols, kinds=kinds, ids=ids, texts=texts)
    for name, df in frames.items():
        if df is not None:
            prep.frames[name] = convert(df, prep)
    return prep


def subsample(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    if len(df) <= n:
        return df
    return df.sample(n, random_state=seed)


# --------------------------------------------------------------------------- encodings
class Encoder:
    """One-hot (scaled so a mismatch adds 1 to the squared distance) + range-scaled numerics.

    Fitted on the real table; missing numerics get their own indicator column and sit at 0.
    """

    def __init__(self, prep: Prepared, columns: list[str] | None = None) -> None:
        self.prep = prep
        self.columns = list(columns if columns is not None else prep.columns)

    def fit(self, real: pd.DataFrame) -> Encoder:
        self.scale: dict[str, tuple[float, float]] = {}
        self.cats: dict[str, list[str]] = {}
        for c in self.columns:
            if self.prep.kinds[c] in NUMERIC_KINDS:
                v = real[c].to_numpy(dtype=float)
                v = v[np.isfinite(v)]
                lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
                self.scale[c] = (lo, hi - lo if hi > lo else 1.0)
            else:
                vc = real[c].value_counts(dropna=True)
                self.cats[c] = list(vc.index[:MAX_ONEHOT])
        return self

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        blocks = []
        w = 1.0 / math.sqrt(2.0)
        for c in self.columns:
            if c in self.scale:
                lo, rng = self.scale[c]
                v = (df[c].to_numpy(dtype=float) - lo) / rng
                miss = ~np.isfinite(v)
                blocks.append(np.where(miss, 0.0, np.clip(v, -1.0, 2.0))[:, None])
                blocks.append(miss[:, None].astype(float) * 1.0)
            else:
                cats = self.cats[c]
                codes = pd.Categorical(df[c], categories=cats).codes  # -1 = other or missing
                k = len(cats) + 2
                codes = np.where(codes >= 0, codes, np.where(df[c].isna().to_numpy(), k - 1, k - 2))
                onehot = np.zeros((len(df), k))
                onehot[np.arange(len(df)), codes] = w
                blocks.append(onehot)
        return np.hstack(blocks).astype(np.float64) if blocks else np.zeros((len(df), 0))


def codes_for(frames: list[pd.DataFrame], col: str, numeric: bool, bins: int = 10) -> list[np.ndarray]:
    """Integer codes of one column across several tables (numerics in quantile bins of the first)."""
    if numeric:
        first = frames[0][col].to_numpy(dtype=float)
        fin = first[np.isfinite(first)]
        edges = np.unique(np.quantile(fin, np.linspace(0, 1, bins + 1))[1:-1]) if fin.size else np.array([])
        out = []
        for f in frames:
            v = f[col].to_numpy(dtype=float)
            code = np.searchsorted(edges, v, side="left")  # (e_i-1, e_i]: zero-inflated columns keep 2 bins
            out.append(np.where(np.isfinite(v), code, len(edges) + 1).astype(np.int64))
        return out
    allv = pd.concat([f[col] for f in frames], ignore_index=True).fillna("\x00missing")
    codes, _ = pd.factorize(allv)
    out, start = [], 0
    for f in frames:
        out.append(codes[start:start + len(f)].astype(np.int64))
        start += len(f)
    return out


# --------------------------------------------------------------------------- statistics
def wilson(successes: float, n: int, z: float = Z95) -> dict[str, float | None]:
    """Rate with its Wilson score interval."""
    if n <= 0:
        return {"value": None, "low": None, "high": None, "n": 0}
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return {"value": p, "low": max(0.0, centre - half), "high": min(1.0, centre + half), "n": int(n)}


def auc_with_ci(y: np.ndarray, score: np.ndarray) -> dict[str, float | None]:
    """ROC AUC (ties count half) with the Hanley-McNeil 95% interval."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return {"value": None, "low": None, "high": None}
    r = rankdata(score)
    auc = (r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n1 - 1) * (q1 - auc * auc) + (n0 - 1) * (q2 - auc * auc)) / (n1 * n0)
    se = math.sqrt(max(var, 0.0))
    return {"value": float(auc), "low": max(0.0, auc - Z95 * se), "high": min(1.0, auc + Z95 * se)}


def clip01(x: float | None) -> float | None:
    if x is None or not np.isfinite(x):
        return None
    return float(min(1.0, max(0.0, x)))


def traffic(value: float | None, green: float, amber: float, higher_is_better: bool = True) -> str:
    """'green' / 'amber' / 'red' (or 'grey' when not computed) against two stated thresholds."""
    if value is None:
        return "grey"
    if higher_is_better:
        return "green" if value >= green else "amber" if value >= amber else "red"
    return "green" if value <= green else "amber" if value <= amber else "red"


def jsonable(obj: Any) -> Any:
    """Plain-JSON copy: numpy scalars unwrapped, NaN/inf -> None, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (pd.Timestamp,)):
        return obj.isoformat()
    return str(obj)


def fmt(x: Any, digits: int = 3) -> str:
    """Short human form of a number (used by the plain-language sentences)."""
    if x is None:
        return "n/a"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "n/a"
        return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:,.0f}"
    return str(x)


def num_text(x: Any, digits: int = 3) -> str:
    """A number as the HTML report prints it: thousands separators, trailing zeros dropped."""
    if x is None:
        return "n/a"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if not math.isfinite(x):
            return "n/a"
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.{digits}g}"
        text = f"{x:.{digits}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(x)


# --------------------------------------------------------------------------- model matrices
MAX_ORDINAL = 250  # HistGradientBoosting handles at most 255 categories per feature


class ModelMatrix:
    """Features for scikit-learn's HistGradientBoosting: numerics as floats, categories as codes.

    Categories are coded from the fitting table (most frequent ``MAX_ORDINAL`` first); a value
    never seen there, or a rarer one, gets one shared 'other' code; missing stays NaN.
    """

    def __init__(self, prep: Prepared, columns: list[str]) -> None:
        self.prep = prep
        self.columns = list(columns)

    def fit(self, *dfs: pd.DataFrame) -> ModelMatrix:
        self.cats = {}
        for c in self.columns:
            if self.prep.kinds[c] in CATEGORY_KINDS:
                vc = pd.concat([d[c] for d in dfs]).value_counts(dropna=True)
                self.cats[c] = list(vc.index[:MAX_ORDINAL])
        return self

    @property
    def categorical_mask(self) -> np.ndarray:
        return np.array([c in self.cats for c in self.columns], dtype=bool)

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(df), len(self.columns)))
        for j, c in enumerate(self.columns):
            if c in self.cats:
                codes = pd.Categorical(df[c], categories=self.cats[c]).codes.astype(float)
                other = (codes < 0) & df[c].notna().to_numpy()
                codes[other] = len(self.cats[c])
                codes[df[c].isna().to_numpy()] = np.nan
                out[:, j] = codes
            else:
                out[:, j] = df[c].to_numpy(dtype=float)
        return out
