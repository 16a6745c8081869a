"""Private preprocessing: encoder parameters and sampling frequencies from DP statistics only.

One Gaussian release covers every modelled column: a histogram per numeric column (on a fixed,
data-independent grid, or equal-width bins inside public bounds) and noisy counts per categorical
column, each with a missing-value bin, plus the row count. A row touches one bin per column, so the
release has L2 sensitivity sqrt(number of columns) under add/remove adjacency. Categories read off
the data pass a partition-selection threshold (charged as ``delta_sel``); the rest fold into one
``other`` slot. Bounds come from the noisy histogram's 0.1% / 99.9% points, never from raw min/max,
and the mode-specific mixtures are fitted on draws from the noisy histograms (docs/privacy.md rules 4-6).
Everything downstream of the noisy counts is post-processing.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning

from tabsynth.distributed.runtime import Runtime
from tabsynth.metadata import ColumnSpec, Metadata
from tabsynth.privacy.accountant import Accountant, Release, gaussian_rdp, rdp_to_dp
from tabsynth.privacy.changes import describe_changes
from tabsynth.transform import (CategoricalEncoder, DatetimeEncoder, IdEncoder, NumericEncoder, PiiEncoder,
                                TableTransformer)
from tabsynth.transform.categorical import plain_value
from tabsynth.transform.datetime import to_datetime
from tabsynth.transform.numerical import fit_modes

#: Bins per decade of the signed log grid used when a numeric column has no public bounds.
BINS_PER_DECADE = 8
_DECADES = (-3, 13)
#: Bins with a noisy count below this many noise standard deviations are taken as empty (with
#: hundreds of empty bins per column, 3 sigma would still let phantom mass through).
EMPTY_SIGMAS = 4.5
#: Tails cut when reading bounds off a noisy histogram.
TAIL = 0.001
_MIXTURE_DRAWS = 4_000
_NS_PER_DAY = 86_400 * 10**9
_DATE_GRID_DAYS = (-25_567, 47_482)  # 1900-01-01 .. 2100-01-01


@dataclass
class PrivateStatistics:
    """The encoders built from DP statistics, and the noisy counts behind each column's slots
    (categories, folded values, missing) that conditional sampling draws from."""

    transformer: TableTransformer
    noise_std: float
    columns: dict[str, str]
    slot_counts: dict[str, list[float]]


def log_grid() -> np.ndarray:
    """Bin edges: ... -10^k ..., an exact-zero bin, ... 10^k ... (data-independent)."""
    pos = 10.0 ** np.arange(_DECADES[0], _DECADES[1] + 1e-9, 1.0 / BINS_PER_DECADE)
    return np.concatenate([-pos[::-1], [0.0], pos])


def _histogram(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin for present values; bin ``i`` is [edges[i], edges[i+1]); 0 gets its own bin."""
    idx = np.searchsorted(edges, x, side="right") - 1
    idx = np.clip(idx, 0, len(edges) - 2)
    return np.bincount(idx, minlength=len(edges) - 1).astype(np.float64)


def _sanitised(spec: ColumnSpec) -> ColumnSpec:
    """The schema part of a column: observed domains and nullability are private and dropped."""
    keep_domain = spec.is_public
    return spec.with_changes(
        bounds=spec.bounds if keep_domain else None,
        categories=spec.categories if keep_domain else None,
        domain_source="public" if keep_domain else None,
        nullable=True, extra={},
    )


def _modelled(metadata: Metadata) -> list[ColumnSpec]:
    """The columns the release measures: ids and personal identifiers are regenerated, never read."""
    return [s for s in metadata.columns.values() if s.kind not in ("id", "pii")]


def plan(metadata: Metadata, accountant: Accountant, share: float) -> Release | None:
    """Record the preprocessing release (its noise depends on the schema only) before any data is read."""
    modelled = _modelled(metadata)
    if not modelled:
        return None
    n_stats = len(modelled) + 1  # + the row count
    sensitivity = math.sqrt(n_stats)
    std = accountant.preprocessing_noise(share, sensitivity)
    release = Release("preprocessing", std / sensitivity,
                      mechanism=f"gaussian (histograms and counts, L2 sensitivity sqrt({n_stats}))",
                      details={"noise_std": std, "l2_sensitivity": sensitivity, "share_of_epsilon": share})
    accountant.add(release)
    return release


def _noisy(counts: Any, std: float, noise_rng: Any, runtime: Runtime) -> np.ndarray:
    """Counts summed over ranks, with the release's Gaussian noise added once (on rank 0)."""
    total = runtime.all_reduce_sum(counts)
    if runtime.is_main and std:
        total = total + noise_rng.normal(0.0, std, size=np.shape(total))
    return runtime.broadcast_object(total)


def noisy_row_count(df: pd.DataFrame, release: Release | None, noise_rng: Any, runtime: Runtime | None = None) -> int:
    """The row count of the preprocessing release, rounded, at least 1: the only row count a DP fit
    uses (sample rate, steps, default delta and released rows); the exact one is read here alone."""
    runtime = runtime or Runtime()
    std = release.details["noise_std"] if release is not None else 0.0
    n_hat = max(int(round(float(_noisy(np.array([float(len(df))]), std, noise_rng, runtime)[0]))), 1)
    if release is not None:
        release.details["noisy_row_count"] = n_hat
    return n_hat


def _selects(spec: ColumnSpec) -> bool:
    """Whether a column's categories are read off the data (partition selection, charged a delta)."""
    return spec.kind == "categorical" and not (spec.is_public and spec.categories is not None)


def private_transformer(df: pd.DataFrame, metadata: Metadata, accountant: Accountant, release: Release | None, *,
                        n_hat: int, max_modes: int, max_categories: int, rng: np.random.Generator,
                        noise_rng: Any, runtime: Runtime | None = None) -> PrivateStatistics:
    """Measure the planned statistics with noise and build every encoder from them alone.

    ``n_hat`` is the release's noisy row count (:func:`noisy_row_count`); the accountant's delta is
    final by now. Under torchrun ``df`` is this rank's shard: every count and histogram is summed
    over ranks (exactly: they add) and rank 0 adds the noise once, so the release is the
    one-process release.
    """
    runtime = runtime or Runtime()
    modelled = _modelled(metadata)
    std = release.details["noise_std"] if release is not None else 0.0
    selected = [s.name for s in modelled if _selects(s)]
    delta_col = accountant.delta_sel / max(len(selected), 1)
    tau_sel = 1.0 + std * float(norm.isf(delta_col)) if std else 1.0
    empty = EMPTY_SIGMAS * std

    def noisy(counts: Any) -> np.ndarray:
        return _noisy(counts, std, noise_rng, runtime)

    encoders, costs, facts, slot_counts = [], {}, {}, {}
    col_eps = rdp_to_dp(gaussian_rdp(std), accountant.delta_rdp) if std else 0.0
    for spec in metadata.columns.values():
        s = df[spec.name]
        if spec.kind == "id":
            encoders.append(_private_id(spec, s))
            continue
        if spec.kind == "pii":  # nothing read: Faker's values, never missing
            encoders.append(PiiEncoder.fit(spec.name, None, spec.pii_type, spec.extra.get("locale", "en_US")))
            continue
        if spec.kind in ("categorical", "boolean"):
            enc, slot_counts[spec.name] = _private_categorical(spec, s, noisy, tau_sel, empty, n_hat, max_categories,
                                                               runtime, facts.setdefault(spec.name, {}))
            encoders.append(enc)
            costs[spec.name] = "noisy counts" + (" with partition selection" if spec.name in selected else "")
        else:
            enc, slot_counts[spec.name] = _private_numeric(spec, s, noisy, empty, max_modes, rng,
                                                           facts.setdefault(spec.name, {}))
            encoders.append(enc)
            costs[spec.name] = "noisy histogram (bounds, mixture modes, missing rate)"
        if spec.name in selected:
            accountant.add_selection(spec.name, delta_col)
    if release is not None:
        release.details.update({
            "partition_selection_threshold": tau_sel,
            "columns": {name: {"statistic": what, "epsilon_alone": col_eps} for name, what in costs.items()},
            "changes": describe_changes(facts, tau_sel=tau_sel, noise_std=std, noise_floor=empty,
                                        n_hat=n_hat),
            "public_domains": [s.name for s in modelled
                               if s.is_public and (s.categories is not None or s.bounds is not None)]})
    sanitised = Metadata([_sanitised(s) for s in metadata.columns.values()])
    transformer = TableTransformer.from_encoders(sanitised, encoders, max_modes=max_modes,
                                                 max_categories=max_categories)
    return PrivateStatistics(transformer, std, costs, slot_counts)


def _private_categorical(spec: ColumnSpec, s: pd.Series, noisy, tau_sel: float, empty: float, n_hat: float,
                         max_categories: int, runtime: Runtime, facts: dict[str, Any]
                         ) -> tuple[CategoricalEncoder, list[float]]:
    is_bool = spec.kind == "boolean"
    if spec.is_public and spec.categories is not None:
        domain, public = list(spec.categories), True
    elif is_bool:
        domain = [False, True] if spec.dtype in ("bool", "boolean", "object") else [0, 1]
        public = True
    else:
        seen = runtime.all_gather_object(list(pd.unique(s.dropna())))  # every shard's values, once each
        domain, public = list(dict.fromkeys(v for part in seen for v in part)), False
    counts = s.value_counts(dropna=True).reindex(domain, fill_value=0).to_numpy(dtype=np.float64)
    noisy_counts = noisy(counts)
    missing = float(noisy(np.array([float(s.isna().sum())]))[0])
    keep = np.ones(len(domain), bool) if public else noisy_counts > tau_sel
    order = np.argsort(-noisy_counts)
    kept = [i for i in order if keep[i]][: max_categories - (0 if public else 1)]
    categories = [plain_value(domain[i]) for i in kept]
    label = _other_label(categories) if spec.dtype in (None, "object", "string", "category") else None
    kept_counts = np.clip(noisy_counts[kept], 0, None)
    other = max(n_hat - max(missing, 0.0) - float(kept_counts.sum()), 0.0) if not public else None
    if other is not None and other <= empty:  # the folded values are too few to model as their own slot
        other = None
    enc = CategoricalEncoder(spec.name, categories, has_missing=missing > empty, dtype=spec.dtype,
                             dtype_categories=categories if spec.dtype == "category" else None,
                             force_other=other is not None, other_label=label, warn_unknown=False)
    slots = [*kept_counts.tolist(), *([other] if other is not None else []),
             *([max(missing, 0.0)] if enc.has_missing else [])]
    folded = n_hat - max(missing, 0.0) - float(kept_counts.sum())
    facts.update(kind=spec.kind, public=public, kept=len(categories), folded=None if public else folded,
                 other_kept=other is not None, missing=missing)
    return enc, slots


def _other_label(kept: list[Any]) -> str:
    """The label of the folded values: "other", unless a kept category is called that already."""
    label = "other"
    while label in kept:
        label = f"({label})"
    return label


def _private_numeric(spec: ColumnSpec, s: pd.Series, noisy, empty: float, max_modes: int,
                     rng: np.random.Generator, facts: dict[str, Any]
                     ) -> tuple[NumericEncoder | DatetimeEncoder, list[float]]:
    if spec.kind == "datetime":
        dt = to_datetime(s, spec.datetime_format)
        ticks = dt.to_numpy().astype("datetime64[ns]").astype("int64")
        present = dt.notna().to_numpy()
        x = ticks[present].astype(np.float64) / _NS_PER_DAY
    else:
        values = pd.to_numeric(s, errors="coerce") if s.dtype == object else s
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        present = ~np.isnan(arr)
        x = arr[present]
    if spec.is_public and spec.bounds is not None:
        lo_pub, hi_pub = _public_bounds(spec)
        edges = np.linspace(lo_pub, hi_pub, 65)
        x = np.clip(x, lo_pub, hi_pub)
    elif spec.kind == "datetime":
        edges = np.arange(_DATE_GRID_DAYS[0], _DATE_GRID_DAYS[1] + 30.44, 30.44)
        x = np.clip(x, edges[0], edges[-1])
    else:
        edges = log_grid()
        x = np.clip(x, edges[0], edges[-1])
    hist = np.clip(noisy(_histogram(x, edges)), 0, None)
    hist[hist < empty] = 0.0
    missing = float(noisy(np.array([float((~present).sum())]))[0])
    if hist.sum() <= 0:  # nothing survives the noise: a degenerate but valid column
        lo = hi = float(edges[len(edges) // 2]) if spec.kind != "datetime" else 0.0
        draws = np.full(100, lo)
    else:
        lo, hi = _quantile(hist, edges, TAIL), _quantile(hist, edges, 1 - TAIL)
        if spec.is_public and spec.bounds is not None:
            lo, hi = _public_bounds(spec)
        draws = np.clip(_draw(hist, edges, _MIXTURE_DRAWS, rng), lo, hi)
    facts.update(kind=spec.kind, public=spec.is_public and spec.bounds is not None, degenerate=hist.sum() <= 0,
                 lower=lo, upper=hi, missing=missing)
    integer = spec.kind in ("integer", "datetime")
    if integer:
        lo, hi = math.floor(lo), math.ceil(hi)
        draws = np.round(draws)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        means, stds, weights = fit_modes(draws, max_modes, _MIXTURE_DRAWS, seed=int(rng.integers(2**31)))
    common = dict(integer=integer, has_missing=missing > empty, fill=float(np.median(draws)),
                  means=means, stds=stds, weights=weights)
    present_count = max(float(hist.sum()), 0.0)
    counts = [present_count, max(missing, 0.0)]
    if spec.kind != "datetime":
        return NumericEncoder(spec.name, "mode", lo, hi, dtype=spec.dtype, **common), counts
    # datetime: day ticks (the DP grid is in days) from the DP lower bound
    numeric = NumericEncoder(spec.name, "mode", 0.0, hi - lo, **{**common, "fill": common["fill"] - lo,
                                                                 "means": [m - lo for m in means]})
    return DatetimeEncoder(spec.name, numeric, unit="ns", step=_NS_PER_DAY, origin=int(lo), timezone=spec.timezone,
                           datetime_format=spec.datetime_format, dtype=spec.dtype), counts


def condition_counts(stats: PrivateStatistics) -> list[list[float]]:
    """Noisy counts of every conditional group's slots, in ``conditional_spans_`` order."""
    return [list(stats.slot_counts[span.column]) for span in stats.transformer.conditional_spans_]


def _public_bounds(spec: ColumnSpec) -> tuple[float, float]:
    lo, hi = spec.bounds
    if spec.kind == "datetime":
        return (pd.Timestamp(lo).value / _NS_PER_DAY, pd.Timestamp(hi).value / _NS_PER_DAY)
    return float(lo), float(hi)


def _quantile(hist: np.ndarray, edges: np.ndarray, q: float) -> float:
    cdf = np.cumsum(hist) / hist.sum()
    i = int(np.searchsorted(cdf, q))
    i = min(i, len(hist) - 1)
    prev = cdf[i - 1] if i else 0.0
    frac = (q - prev) / max(cdf[i] - prev, 1e-12)
    lo, hi = edges[i], edges[i + 1]
    if lo == 0.0 and hi > 0 and i > 0 and edges[i - 1] < 0:  # the exact-zero bin
        return 0.0
    return float(lo + np.clip(frac, 0, 1) * (hi - lo))


def _draw(hist: np.ndarray, edges: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    p = hist / hist.sum()
    bins = rng.choice(len(hist), size=n, p=p)
    lo, hi = edges[bins], edges[bins + 1]
    out = lo + rng.random(n) * (hi - lo)
    zero_bin = (lo == 0.0) & (edges[np.maximum(bins - 1, 0)] < 0)
    out[zero_bin] = 0.0
    return out


def _private_id(spec: ColumnSpec, s: pd.Series) -> IdEncoder:
    """Ids in a generic format: the real ones' pattern is not read under DP."""
    if pd.api.types.is_numeric_dtype(s.dtype):
        return IdEncoder(spec.name, "integer", start=0, dtype=spec.dtype)
    return IdEncoder(spec.name, "prefixed", prefix=f"{spec.name}-", digits=6, dtype=spec.dtype)

