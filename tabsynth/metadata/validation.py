"""Checks on an input DataFrame at the library boundary, reported all at once."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabsynth.errors import DataError

_MIXED = ("mixed", "mixed-integer")
#: Largest magnitude a numeric column may hold: its square must stay finite in float64.
MAX_MAGNITUDE = 1e150


def check_frame(df: object, values: bool = True) -> pd.DataFrame:
    """Raise :class:`DataError` listing every reason ``df`` cannot be modelled; return it otherwise.

    ``values=False`` checks the structure alone (type, names, not empty) and reads no cell: under DP
    a bad cell is read as missing instead (:func:`tabsynth.metadata.public.declared_values`), since
    refusing the fit or naming the cell would tell whether its row is there."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"expected a pandas DataFrame, got {type(df).__name__}; "
            "read files with tabsynth.io.read_table or pandas.read_csv"
        )
    if df.shape[1] == 0:
        raise DataError("the table has no columns; pass a DataFrame with at least one column")
    if df.shape[0] == 0:
        raise DataError("the table has no rows; pass a DataFrame with at least one row")
    problems: list[str] = []
    names = list(df.columns)
    bad_names = [c for c in names if not isinstance(c, str)]
    if bad_names:
        problems.append(
            f"column names must be strings, got {bad_names[:5]!r}; "
            "rename them, e.g. df.columns = df.columns.astype(str)"
        )
    dups = sorted({str(c) for c in names if names.count(c) > 1})
    if dups:
        problems.append(f"duplicate column names {dups}; give every column a unique name")
    if not dups and values:
        for name in names:
            s = df[name]
            inferred = pd.api.types.infer_dtype(s, skipna=True) if s.dtype == object else None
            numeric_objects = inferred in ("floating", "mixed-integer-float", "decimal")
            if pd.api.types.is_float_dtype(s.dtype) or numeric_objects:
                vals = pd.to_numeric(s, errors="coerce") if s.dtype == object else s
                arr = np.asarray(vals, dtype="float64") if len(vals) else np.zeros(0)
                n_inf = int(np.isinf(arr).sum())
                if n_inf:
                    problems.append(
                        f"column {name!r} has {n_inf} infinite value(s); replace them with NaN "
                        "(missing) or a finite value, e.g. df[col].replace([np.inf, -np.inf], np.nan)"
                    )
                elif len(arr) and np.nanmax(np.abs(arr), initial=0.0) > MAX_MAGNITUDE:
                    problems.append(
                        f"column {name!r} holds values up to {np.nanmax(np.abs(arr)):.3g}, beyond the "
                        f"{MAX_MAGNITUDE:.0e} the encoders can square in float64; rescale it (e.g. "
                        f"df[{name!r}] / 1e{int(np.log10(np.nanmax(np.abs(arr))))}) or store its logarithm"
                    )
            if s.dtype == object:
                if inferred in _MIXED:
                    types = sorted({type(v).__name__ for v in s.dropna().head(1000)})
                    problems.append(
                        f"column {name!r} mixes value types ({', '.join(types)}); convert it to one "
                        f"type, e.g. df[{name!r}] = df[{name!r}].astype(str)"
                    )
    if problems:
        raise DataError(_join(problems))
    return df


def _join(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems in the table: " + "; ".join(problems)
