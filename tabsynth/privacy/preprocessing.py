"""Private preprocessing: encoder parameters and sampling frequencies from DP statistics only.

One Gaussian release covers every modelled column: noisy counts per categorical column and noisy
histograms per numeric column (:mod:`tabsynth.privacy.histograms`: a coarse data-independent grid,
then zooms on equal-width or log-spaced bins inside the located range), each column's first
statistic with a missing-value cell, plus the row count. A row touches one cell of each statistic,
so statistic ``j`` has L2 sensitivity 1, and each gets its own noise ``sigma_j``. Scaled by
``1/sigma_j`` the statistics form one vector with unit noise and L2 sensitivity
``sqrt(sum_j sigma_j ** -2)``: the release is a Gaussian mechanism of noise multiplier
``z = (sum_j sigma_j ** -2) ** -0.5``, calibrated to the preprocessing share of epsilon, so
``sigma_j = z * sqrt(U / u_j)`` for units ``u_j`` summing to ``U`` (docs/privacy.md rule 4).

The units come from the schema alone (kind, declared domain), never from the values: the row count
:data:`UNITS_ROW_COUNT` (as much as selected categories: it sizes batches, delta and shares);
booleans and declared categories :data:`UNITS_KNOWN`; categories read off the data
:data:`UNITS_SELECTED` (their partition-selection threshold ``1 + sigma_j * Phi^-1(1 - delta_col)``,
charged ``delta_col``, scales with their noise: the budget buys most there); numeric
columns :data:`~tabsynth.privacy.histograms.ROUND_UNITS` over their rounds (:data:`UNITS_PUBLIC_BOUNDS`
for the one round inside public bounds). Later rounds read grids chosen from earlier noisy outputs:
each round's noise is fixed in advance, so adaptive RDP composition applies. Booleans and declared
categories are kept whole, with no selection. Bounds come from the accepted histogram's 0.1% / 99.9%
points, never from raw min/max, and the mode-specific mixtures are fitted on draws from it
(docs/privacy.md rules 4-6). Everything downstream of the noisy counts is post-processing.
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
from tabsynth.errors import PrivacyConfigError
from tabsynth.metadata import ColumnSpec, Metadata
from tabsynth.privacy import histograms as hg
from tabsynth.privacy.accountant import Accountant, Release, gaussian_rdp, rdp_to_dp
from tabsynth.privacy.changes import describe_changes
from tabsynth.transform import (
    CategoricalEncoder,
    DatetimeEncoder,
    IdEncoder,
    NumericEncoder,
    PiiEncoder,
    TableTransformer,
)
from tabsynth.transform.base import ColumnEncoder
from tabsynth.transform.categorical import plain_value
from tabsynth.transform.datetime import to_datetime
from tabsynth.transform.numerical import fit_modes

#: Units of the release's budget per statistic (see the module docstring), from the schema alone.
UNITS_ROW_COUNT = 4.0
UNITS_KNOWN = 1.0
UNITS_SELECTED = 4.0
UNITS_PUBLIC_BOUNDS = 1.5
#: A categorical column's folded ``other`` slot is kept above this many of its noise deviations.
EMPTY_SIGMAS = 4.0
#: A noisy missing count above this many noise standard deviations gets a missing slot (one cell).
MISSING_SIGMAS = 3.0
#: Tails cut when reading bounds off a noisy histogram.
TAIL = 0.001
_MIXTURE_DRAWS = 4_000
_NS_PER_DAY = 86_400 * 10**9


@dataclass
class PrivateStatistics:
    """The encoders built from DP statistics, and the noisy counts behind each column's slots
    (categories, folded values, missing) that conditional sampling draws from."""

    transformer: TableTransformer
    noise_std: float
    columns: dict[str, str]
    slot_counts: dict[str, list[float]]


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


def _selects(spec: ColumnSpec) -> bool:
    """Whether a column's categories are read off the data (partition selection, charged a delta)."""
    return spec.kind == "categorical" and not (spec.is_public and spec.categories is not None)


def _public_bounds_of(spec: ColumnSpec) -> bool:
    return spec.kind not in ("categorical", "boolean") and spec.is_public and spec.bounds is not None


def units(spec: ColumnSpec) -> list[float]:
    """A column's statistics (rounds) and each one's units, from its schema alone."""
    if spec.kind in ("categorical", "boolean"):
        return [UNITS_SELECTED if _selects(spec) else UNITS_KNOWN]
    return [UNITS_PUBLIC_BOUNDS] if _public_bounds_of(spec) else list(hg.ROUND_UNITS)


def noise_scales(metadata: Metadata, noise_multiplier: float, *, row_count: bool = True
                 ) -> tuple[float, dict[str, list[float]]]:
    """The noise std of the row count and of every statistic of every modelled column, such that
    ``sum_j sigma_j ** -2 == noise_multiplier ** -2``: a function of the schema alone. Without
    ``row_count`` (another release counts the unit) the row count's std is 0 and takes no share."""
    per_column = {s.name: units(s) for s in _modelled(metadata)}
    total = (UNITS_ROW_COUNT if row_count else 0.0) + sum(sum(u) for u in per_column.values())
    scale = lambda u: noise_multiplier * math.sqrt(total / u)  # noqa: E731
    row_std = scale(UNITS_ROW_COUNT) if row_count else 0.0
    return row_std, {name: [scale(u) for u in us] for name, us in per_column.items()}


def plan(metadata: Metadata, accountant: Accountant, share: float, *,
         noise_multiplier: float | None = None, row_count: bool = True, name: str = "preprocessing",
         always: bool = False) -> Release | None:
    """Record the preprocessing release (its noise depends on the schema only) before any data is read.

    ``noise_multiplier`` overrides the one calibrated to ``share`` (when another release shares it);
    ``row_count=False`` leaves the count to another release; ``always`` records a release that
    measures the row count alone when no column is modelled (None otherwise); ``name`` names it in
    the statement (a fit of two tables has one per table)."""
    if not _modelled(metadata) and not (always and row_count):
        return None
    z = accountant.preprocessing_noise(share, 1.0) if noise_multiplier is None else noise_multiplier
    row_std, stds = noise_scales(metadata, z, row_count=row_count)
    ref = max([row_std, *(s for v in stds.values() for s in v)])
    sensitivity = ref / z  # the statistics scaled to a common noise std ``ref``
    release = Release(name, z,
                      mechanism="gaussian (histograms and counts, each statistic with its own noise; L2 sensitivity "
                                f"{sensitivity:.4g} at noise std {ref:.4g})",
                      details={"noise_std": ref, "l2_sensitivity": sensitivity, "share_of_epsilon": share,
                               "row_count_noise_std": row_std, "noise_stds": stds})
    accountant.add(release)
    return release


def _noisy(counts: Any, std: float, noise_rng: Any, runtime: Runtime) -> np.ndarray:
    """Counts summed over ranks, with the release's Gaussian noise added once (on rank 0)."""
    total = runtime.all_reduce_sum(np.asarray(counts, dtype=np.float64))
    if runtime.is_main and std:
        total = total + noise_rng.normal(0.0, std, size=np.shape(total))
    return runtime.broadcast_object(total)


def noisy_row_count(df: pd.DataFrame, release: Release | None, noise_rng: Any, runtime: Runtime | None = None, *,
                    count: int | None = None) -> int:
    """The row count of the preprocessing release, rounded, at least 1: the only row count a DP fit
    uses (sample rate, steps, default delta and released rows); the exact one is read here alone.
    ``count`` replaces ``len(df)`` when the unit is not a row (the number of persons)."""
    runtime = runtime or Runtime()
    std = release.details["row_count_noise_std"] if release is not None else 0.0
    exact = float(len(df) if count is None else count)
    n_hat = max(int(round(float(_noisy(np.array([exact]), std, noise_rng, runtime)[0]))), 1)
    if release is not None:
        release.details["noisy_row_count"] = n_hat
    return n_hat


def _column_epsilon(stds: list[float], delta: float) -> float:
    """A column's statistics alone: one Gaussian of multiplier ``(sum sigma ** -2) ** -0.5``."""
    return rdp_to_dp(gaussian_rdp(sum(s ** -2 for s in stds) ** -0.5), delta) if all(stds) else 0.0


def selection_threshold(std: float, delta: float, cells: int = 1) -> float:
    """The partition-selection threshold of a column with noise ``std`` charged ``delta``, when one
    unit holds weight at most 1 in total over at most ``cells`` categories.

    A category only the removed unit holds has a count ``w <= 1``; it passes ``tau = 1 + std * t``
    with probability ``Q(t + (1 - w) / std)``. The sum over the unit's ``cells`` categories, convex
    in the weights, is largest with all weight on one: ``Q(t) + (cells - 1) Q(t + 1 / std)``, set
    to ``delta``. One cell (a row) gives the usual ``1 + std * Phi^-1(1 - delta)``."""
    if not std:
        return 1.0
    if cells <= 1:
        return 1.0 + std * float(norm.isf(delta))
    lo, hi = float(norm.isf(delta)), float(norm.isf(delta / cells))
    for _ in range(60):
        mid = (lo + hi) / 2
        if norm.sf(mid) + (cells - 1) * norm.sf(mid + 1.0 / std) > delta:
            lo = mid
        else:
            hi = mid
    return 1.0 + std * hi


def _checked_weights(weights: Any, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n,) or not np.all((weights >= 0) & (weights <= 1)):
        raise PrivacyConfigError(f"weights must hold one value in [0, 1] per row ({n} rows), got shape "
                                 f"{weights.shape}: use tabsynth.privacy.persons.person_weights(keys)")
    return weights


def private_transformer(df: pd.DataFrame, metadata: Metadata, accountant: Accountant, release: Release | None, *,
                        n_hat: int, max_modes: int, max_categories: int, rng: np.random.Generator,
                        noise_rng: Any, runtime: Runtime | None = None, weights: np.ndarray | None = None,
                        max_cells: int = 1, selections: int | None = None, table: str = "") -> PrivateStatistics:
    """Measure the planned statistics with noise and build every encoder from them alone.

    ``n_hat`` is the release's noisy row count (:func:`noisy_row_count`); the accountant's delta is
    final by now. Under torchrun ``df`` is this rank's shard: every count and histogram is summed
    over ranks (exactly: they add) and rank 0 adds the noise once, so the release is the
    one-process release. ``weights`` (one per row, a person's summing to at most 1, from
    :func:`tabsynth.privacy.persons.person_weights`) make every statistic sum weights instead of
    counting rows, so its sensitivity holds per person; ``max_cells`` is then the most rows (the
    contribution bound) one person has, which sets the selection threshold. ``selections``: the
    fit's partition selections when tables share ``delta_sel``; ``table`` names this one's."""
    runtime = runtime or Runtime()
    modelled = _modelled(metadata)
    stds = release.details["noise_stds"] if release is not None else {s.name: [0.0] * len(units(s)) for s in modelled}
    selected = [s.name for s in modelled if _selects(s)]
    delta_col = accountant.selection_delta(len(selected) if selections is None else selections)
    tau = {name: selection_threshold(stds[name][0], delta_col, max_cells) for name in selected}
    weights = _checked_weights(weights, len(df))

    def noisy(counts: Any, std: float) -> np.ndarray:
        return _noisy(counts, std, noise_rng, runtime)

    encoders: list[ColumnEncoder] = []
    costs, facts, slot_counts = {}, {}, {}  # type: dict[str, str], dict[str, dict[str, Any]], dict[str, Any]
    enc: ColumnEncoder
    for spec in metadata.columns.values():
        if spec.kind == "id":
            encoders.append(_private_id(spec, df[spec.name]))
            continue
        if spec.kind == "pii":  # nothing read: Faker's values, never missing
            encoders.append(PiiEncoder.fit(spec.name, None, spec.pii_type, spec.extra.get("locale", "en_US")))
            continue
        fact = facts.setdefault(spec.name, {"noise_std": stds[spec.name][0]})
        if spec.kind in ("categorical", "boolean"):
            enc, slot_counts[spec.name] = _private_categorical(spec, df[spec.name], noisy, stds[spec.name][0],
                                                               tau.get(spec.name), n_hat, max_categories, runtime, fact,
                                                               weights)
            costs[spec.name] = "noisy counts" + (" with partition selection" if spec.name in selected else "")
        else:
            enc, slot_counts[spec.name] = _private_numeric(spec, df[spec.name], noisy, stds[spec.name], max_modes,
                                                           rng, fact, weights, n_hat)
            costs[spec.name] = f"noisy histograms in {len(stds[spec.name])} round(s) (bounds, mixture modes, missing rate)"
        encoders.append(enc)
        if spec.name in selected:
            accountant.add_selection(f"{table}.{spec.name}" if table else spec.name, delta_col)
    if release is not None:
        release.details.update({
            "partition_selection_threshold": max(tau.values(), default=1.0),
            "columns": {name: {"statistic": what, "epsilon_alone": _column_epsilon(stds[name], accountant.delta_rdp)}
                        for name, what in costs.items()},
            "changes": describe_changes(facts, n_hat=n_hat),
            "public_domains": [s.name for s in modelled
                               if s.is_public and (s.categories is not None or s.bounds is not None)]})
    sanitised = Metadata([_sanitised(s) for s in metadata.columns.values()])
    transformer = TableTransformer.from_encoders(sanitised, encoders, max_modes=max_modes,
                                                 max_categories=max_categories)
    return PrivateStatistics(transformer, release.details["noise_std"] if release else 0.0, costs, slot_counts)


def category_counts(s: pd.Series, domain: list[Any], weights: np.ndarray | None = None) -> np.ndarray:
    """A categorical statistic before noise: rows (or their weights) per value of ``domain``, then
    the missing ones (a row is one category or missing)."""
    if weights is None:
        counts = s.value_counts(dropna=True).reindex(domain, fill_value=0).to_numpy(dtype=np.float64)
        return np.append(counts, float(s.isna().sum()))
    counts = pd.Series(weights, index=s.index).groupby(s, dropna=True).sum().reindex(domain, fill_value=0.0)
    return np.append(counts.to_numpy(dtype=np.float64), float(weights[s.isna().to_numpy()].sum()))


def _private_categorical(spec: ColumnSpec, s: pd.Series, noisy, std: float, tau: float | None, n_hat: float,
                         max_categories: int, runtime: Runtime, facts: dict[str, Any],
                         weights: np.ndarray | None = None) -> tuple[CategoricalEncoder, list[float]]:
    if spec.is_public and spec.categories is not None:
        domain, public = list(spec.categories), True
    elif spec.kind == "boolean":
        domain = [False, True] if spec.dtype in ("bool", "boolean", "object") else [0, 1]
        public = True
    else:
        seen = runtime.all_gather_object(list(pd.unique(s.dropna())))  # every shard's values, once each
        domain, public = list(dict.fromkeys(v for part in seen for v in part)), False
    raw = noisy(category_counts(s, domain, weights), std)
    noisy_counts, missing = raw[:-1], float(raw[-1])
    keep = np.ones(len(domain), bool) if public else noisy_counts > tau
    order = np.argsort(-noisy_counts)
    kept = [i for i in order if keep[i]][: max_categories - (0 if public else 1)]
    categories = [plain_value(domain[i]) for i in kept]
    label = _other_label(categories) if spec.dtype in (None, "object", "string", "category") else None
    kept_counts = np.clip(noisy_counts[kept], 0, None)
    folded = n_hat - max(missing, 0.0) - float(kept_counts.sum())
    # the folded values need enough rows, after the noise, to be modelled as their own slot
    other = max(folded, 0.0) if not public and folded > EMPTY_SIGMAS * std else None
    enc = CategoricalEncoder(spec.name, categories, has_missing=missing > MISSING_SIGMAS * std, dtype=spec.dtype,
                             dtype_categories=categories if spec.dtype == "category" else None,
                             force_other=other is not None, other_label=label, warn_unknown=False)
    slots = [*kept_counts.tolist(), *([other] if other is not None else []),
             *([max(missing, 0.0)] if enc.has_missing else [])]
    facts.update(kind=spec.kind, public=public, kept=len(categories), folded=None if public else folded,
                 other_kept=other is not None, missing=missing, tau=tau, floor=MISSING_SIGMAS * std)
    return enc, slots


def _other_label(kept: list[Any]) -> str:
    """The label of the folded values: "other", unless a kept category is called that already."""
    label = "other"
    while label in kept:
        label = f"({label})"
    return label


def _values(spec: ColumnSpec, s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The present values (days since 1970 for dates) and which rows are present."""
    if spec.kind == "datetime":
        dt = to_datetime(s, spec.datetime_format)
        ticks = dt.to_numpy().astype("datetime64[ns]").astype("int64")
        present = dt.notna().to_numpy()
        return ticks[present].astype(np.float64) / _NS_PER_DAY, present
    values = pd.to_numeric(s, errors="coerce") if s.dtype == object else s
    arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    present = ~np.isnan(arr)
    return arr[present], present


def _private_numeric(spec: ColumnSpec, s: pd.Series, noisy, stds: list[float], max_modes: int,
                     rng: np.random.Generator, facts: dict[str, Any], weights: np.ndarray | None = None,
                     n_hat: float | None = None) -> tuple[NumericEncoder | DatetimeEncoder, list[float]]:
    x, present = _values(spec, s)
    n_missing = float((~present).sum()) if weights is None else float(weights[~present].sum())
    public = _public_bounds(spec) if _public_bounds_of(spec) else None
    hist, missing, zooms = hg.measure_rounds(x, spec.kind, public, stds, noisy, n_missing,
                                             None if weights is None else weights[present], n_hat)
    degenerate = hist.mass <= 0
    if degenerate:  # no sign of data above the noise: a degenerate but valid column
        lo = hi = float(np.clip(0.0, *public)) if public is not None else 0.0
        draws = np.full(100, lo)
    else:
        lo, hi = public if public is not None else (hg.quantile(hist, TAIL), hg.quantile(hist, 1 - TAIL))
        draws = np.clip(hg.draw(hist, _MIXTURE_DRAWS, rng), lo, hi)
    facts.update(kind=spec.kind, public=public is not None, degenerate=degenerate, coarse=hist.coarse, lower=lo, upper=hi,
                 missing=missing, zooms=zooms, rounds=len(stds), bin_width=hg.bin_width(hist),
                 floor=MISSING_SIGMAS * stds[0])
    integer = spec.kind in ("integer", "datetime")
    if integer:
        lo, hi = math.floor(lo), math.ceil(hi)
        draws = np.round(draws)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        means, stds_, mode_weights = fit_modes(draws, max_modes, _MIXTURE_DRAWS, seed=int(rng.integers(2**31)))
    has_missing = missing > MISSING_SIGMAS * stds[0]
    common: dict[str, Any] = dict(integer=integer, has_missing=has_missing, fill=float(np.median(draws)),
                                  means=means, stds=stds_, weights=mode_weights)
    counts = [max(hist.mass, 0.0), max(missing, 0.0)]
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
    assert spec.bounds is not None, "called for a column with public bounds"
    lo, hi = spec.bounds
    if spec.kind == "datetime":
        return (pd.Timestamp(lo).value / _NS_PER_DAY, pd.Timestamp(hi).value / _NS_PER_DAY)
    return float(lo), float(hi)


def _private_id(spec: ColumnSpec, s: pd.Series) -> IdEncoder:
    """Ids in a generic format: the real ones' pattern is not read under DP."""
    if pd.api.types.is_numeric_dtype(s.dtype):
        return IdEncoder(spec.name, "integer", start=0, dtype=spec.dtype)
    return IdEncoder(spec.name, "prefixed", prefix=f"{spec.name}-", digits=6, dtype=spec.dtype)
