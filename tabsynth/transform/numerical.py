"""Numeric columns: mode-specific normalisation (CTGAN), or a quantile / min-max scalar.

A value becomes a scalar in [-1, 1] (a tanh head), plus for ``method="mode"`` a one-hot of its
mixture component, plus a two-slot missing indicator when the column has nulls.

Decoding gives back the values and the precision the encoder was fitted on: a point-mass mode
decodes to exactly its value; a column whose values repeat (:func:`is_discrete`) is a one-hot of
its values with no scalar at all; every value is clipped into ``[lower, upper]`` and rounded to the
column's recorded ``decimals`` (:func:`recorded_decimals`; integers to 0). Fitted without DP, these
come from the data; the DP preprocessing builds its encoders from noisy statistics alone and leaves
``decimals`` unset and ``discrete`` off (integers still round).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tabsynth.transform.base import CONTINUOUS, DISCRETE, Slots, Span, one_hot, restore_dtype

METHODS = ("mode", "quantile", "minmax")
#: A mode-normalised scalar is the value's distance from its mode's mean in this many standard deviations.
SCALAR_SIGMAS = 4.0
#: A mixture component is kept when its weight is above this (as in CTGAN).
MIN_MODE_WEIGHT = 0.005
#: A value held by this share of rows gets its own point-mass mode.
SPIKE_SHARE = 0.05
#: A column with at most this many distinct values gets a point-mass mode for each (a grade or a
#: count of 1-16 decodes to exact values, its rare extremes included, instead of Gaussian spreads
#: that round to a neighbour).
POINT_VALUES = 20
#: A column with at most this many distinct values is discrete when each value is held by
#: :data:`DISCRETE_ROWS` rows on average: a set of codes or grid values to draw from, not a
#: measurement to interpolate (an age recorded in 36 tenths of a decade, a log-transformed code).
DISCRETE_VALUES = 64
DISCRETE_ROWS = 20
#: A bound (the smallest or largest value) held by this share of rows gets its own point mass (a
#: floor at 0, a top-coded maximum), whatever the :data:`SPIKE_SHARE` rule says.
BOUND_SHARE = 0.01
#: Decimals tried when measuring a column's recorded precision; negative decimals are multiples of
#: 10, 100, ... (amounts recorded in hundreds), tried only while the range spans ten such steps.
MIN_DECIMALS, MAX_DECIMALS = -6, 8
#: Share of rows whose values may need more decimals than the recorded precision (they are rounded).
PRECISION_EXCEPTIONS = 0.001
_N_QUANTILES = 1000


class NumericEncoder:
    """Encode a float column; parameters are plain numbers so they serialise to JSON."""

    def __init__(
        self,
        column: str,
        method: str,
        lower: float,
        upper: float,
        *,
        integer: bool = False,
        has_missing: bool = False,
        fill: float | None = None,
        means: list[float] | None = None,
        stds: list[float] | None = None,
        weights: list[float] | None = None,
        quantiles: list[float] | None = None,
        dtype: str | None = None,
        decimals: int | None = None,
        discrete: bool = False,
    ) -> None:
        self.column = column
        self.method = method
        self.lower = float(lower)
        self.upper = float(upper)
        self.integer = integer
        self.has_missing = has_missing
        self.dtype = dtype
        self.decimals = None if decimals is None else int(decimals)
        self.discrete = bool(discrete) and method == "mode"
        self.fill = float(fill) if fill is not None else (self.lower + self.upper) / 2
        self.means = np.asarray(means if means is not None else [], dtype=np.float64)
        self.stds = np.asarray(stds if stds is not None else [], dtype=np.float64)
        self.weights = np.asarray(weights if weights is not None else [], dtype=np.float64)
        self.quantiles = np.asarray(quantiles if quantiles is not None else [], dtype=np.float64)
        if method == "quantile":
            # Ties in the quantile grid map to the middle of their probability range.
            grid = np.linspace(0.0, 1.0, len(self.quantiles)) if len(self.quantiles) else np.zeros(0)
            self._q_vals, inv = np.unique(self.quantiles, return_inverse=True)
            sums = np.bincount(inv, weights=grid)
            self._q_probs = sums / np.bincount(inv)

    # --- fitting --------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        column: str,
        values: pd.Series,
        *,
        method: str = "mode",
        integer: bool = False,
        bounds: tuple[float, float] | None = None,
        max_modes: int = 10,
        max_rows: int = 10_000,
        seed: int | None = 0,
        dtype: str | None = None,
    ) -> NumericEncoder:
        """Fit on a float Series (nulls allowed); ``bounds`` overrides the observed range. The recorded
        precision, point masses and (``method="mode"``) discreteness are read off the values."""
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)
        present = x[~np.isnan(x)]
        has_missing = bool(len(present) < len(x))
        if len(present) == 0:
            return cls(column, "minmax", 0.0, 0.0, integer=integer, has_missing=has_missing, fill=0.0,
                       dtype=dtype)
        lo, hi = (float(present.min()), float(present.max())) if bounds is None else map(float, bounds)
        decimals = recorded_decimals(present, lo, hi, dtype)
        present = np.clip(present, lo, hi)
        fill = float(np.median(present))
        common: dict[str, Any] = dict(integer=integer, has_missing=has_missing, fill=fill, dtype=dtype,
                                      decimals=decimals)
        if method == "minmax" or lo == hi:
            return cls(column, "minmax", lo, hi, **common)
        if method == "quantile":
            qs = np.quantile(present, np.linspace(0, 1, min(_N_QUANTILES, len(present))))
            return cls(column, "quantile", lo, hi, quantiles=qs.tolist(), **common)
        discrete = is_discrete(present)
        means, stds, weights = fit_modes(present, max_modes, max_rows, seed,
                                         point_values=len(present) if discrete else 0, bound_share=BOUND_SHARE)
        return cls(column, "mode", lo, hi, means=means, stds=stds, weights=weights, discrete=discrete, **common)

    # --- layout ---------------------------------------------------------------------------------
    @property
    def n_modes(self) -> int:
        return len(self.means) if self.method == "mode" else 0

    @property
    def _scalar(self) -> int:
        """Width of the scalar: 0 for a discrete column (its value is its mode), else 1."""
        return 0 if self.discrete else 1

    @property
    def spans(self) -> list[Span]:
        out = [Span(0, 1, CONTINUOUS, self.column, "value")] if self._scalar else []
        pos = self._scalar
        if self.n_modes:
            out.append(Span(pos, pos + self.n_modes, DISCRETE, self.column, "mode"))
            pos += self.n_modes
        if self.has_missing:
            out.append(Span(pos, pos + 2, DISCRETE, self.column, "missing"))
        return out

    @property
    def width(self) -> int:
        return self._scalar + self.n_modes + (2 if self.has_missing else 0)

    # --- encoding -------------------------------------------------------------------------------
    def transform(self, s: pd.Series) -> np.ndarray:
        values = pd.to_numeric(s, errors="coerce") if s.dtype == object else s  # words read as missing
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(x)
        x = np.clip(np.where(missing, self.fill, x), self.lower, self.upper)
        blocks = []
        if self.discrete:
            blocks.append(one_hot(self.assign_modes(x), self.n_modes))
        elif self.method == "mode":
            mode = self.assign_modes(x)
            scalar = (x - self.means[mode]) / (SCALAR_SIGMAS * self.stds[mode])
            # a value off every broad mode that lands on a point mass (the modes were fitted on a
            # sample or on DP draws that missed it) would get a scalar of 1e5; it decodes to the spike
            point = self.stds[mode] <= self._point_std
            scalar = np.where(point, np.clip(scalar, -1.0, 1.0), scalar)
            blocks += [scalar[:, None].astype(np.float32), one_hot(mode, self.n_modes)]
        elif self.method == "quantile":
            u = np.interp(x, self._q_vals, self._q_probs)
            blocks.append((2.0 * u - 1.0)[:, None].astype(np.float32))
        else:
            span = self.upper - self.lower
            scalar = 2.0 * (x - self.lower) / span - 1.0 if span > 0 else np.zeros_like(x)
            blocks.append(scalar[:, None].astype(np.float32))
        if self.has_missing:
            blocks.append(one_hot(missing.astype(np.int64), 2))
        return np.concatenate(blocks, axis=1)

    def assign_modes(self, x: np.ndarray) -> np.ndarray:
        """The most probable mixture component of each value."""
        z = (x[:, None] - self.means[None, :]) / self.stds[None, :]
        logp = -0.5 * z * z - np.log(self.stds)[None, :] + np.log(self.weights)[None, :]
        return np.argmax(logp, axis=1)

    def decode_values(self, block: np.ndarray, slots: Slots | None = None) -> np.ndarray:
        """Float values (NaN for missing) from an encoded block (``slots``: see ``inverse_transform``)."""
        if self.method == "mode":
            mode = slots["mode"] if slots else np.argmax(block[:, self._scalar: self._scalar + self.n_modes], axis=1)
            x = self.means[mode]
            if not self.discrete:
                # Not clipped to [-1, 1]: encoded outliers may lie beyond 4 sigma of their mode, and the
                # models' tanh heads keep generated scalars inside anyway. A point mass is its value.
                spread = block[:, 0].astype(np.float64) * SCALAR_SIGMAS * self.stds[mode]
                x = np.where(self.stds[mode] <= self._point_std, x, self._reflected(x + spread))
        elif self.method == "quantile":
            scalar = block[:, 0].astype(np.float64)
            x = np.interp(np.clip((scalar + 1.0) / 2.0, 0.0, 1.0), self._q_probs, self._q_vals)
        else:
            x = self.lower + (block[:, 0].astype(np.float64) + 1.0) / 2.0 * (self.upper - self.lower)
        x = self._rounded(np.clip(x, self.lower, self.upper))
        if self.has_missing:
            miss = block[:, self.width - 2 : self.width]
            x = np.where(miss[:, 1] > miss[:, 0], np.nan, x)
        return x

    def _reflected(self, x: np.ndarray) -> np.ndarray:
        """A mode's tail beyond a bound folded back inside: clipping would pile it onto the bound, a
        point mass the data need not have (a bound that holds one is a mode of its own)."""
        x = np.where(x < self.lower, 2.0 * self.lower - x, x)
        return np.where(x > self.upper, 2.0 * self.upper - x, x)

    @property
    def _point_std(self) -> float:
        return _POINT_REL * max(self.upper - self.lower, 1e-300)

    def _rounded(self, x: np.ndarray) -> np.ndarray:
        """Values rounded to the recorded decimals (integers to 0 or fewer), kept inside the bounds."""
        decimals = 0 if self.integer else None
        if self.decimals is not None:
            decimals = self.decimals if decimals is None else min(decimals, self.decimals)
        if decimals is None:
            return x
        # a value rounded past a bound steps back inside it (bounds need not lie on the grid)
        r, step = np.round(x, decimals), 10.0 ** -decimals
        r = np.where(r < self.lower, np.round(r + step, decimals), r)
        return np.where(r > self.upper, np.round(r - step, decimals), r)

    def inverse_transform(self, block: np.ndarray, rng: np.random.Generator, offset: int = 0,
                          slots: Slots | None = None) -> pd.Series:
        return restore_dtype(pd.Series(self.decode_values(block, slots), name=self.column), self.dtype)

    # --- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": "numeric", "column": self.column, "method": self.method,
            "lower": self.lower, "upper": self.upper, "integer": self.integer,
            "has_missing": self.has_missing, "fill": self.fill, "dtype": self.dtype,
        }
        if self.decimals is not None:
            d["decimals"] = self.decimals
        if self.discrete:
            d["discrete"] = True
        if self.method == "mode":
            d.update(means=self.means.tolist(), stds=self.stds.tolist(), weights=self.weights.tolist())
        if self.method == "quantile":
            d["quantiles"] = self.quantiles.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericEncoder:
        d = {k: v for k, v in d.items() if k != "type"}
        return cls(d.pop("column"), d.pop("method"), d.pop("lower"), d.pop("upper"), **d)


#: A mode whose spread is below this share of the column's range is a point mass.
_POINT_REL = 1e-5


def is_discrete(x: np.ndarray) -> bool:
    """Whether values ``x`` are a few repeated values: at most :data:`POINT_VALUES` distinct ones, or
    at most :data:`DISCRETE_VALUES` held by :data:`DISCRETE_ROWS` rows each on average."""
    n = len(np.unique(x))
    return n <= POINT_VALUES or (n <= DISCRETE_VALUES and len(x) >= DISCRETE_ROWS * n)


def recorded_decimals(x: np.ndarray, lower: float, upper: float, dtype: str | None = None) -> int | None:
    """The fewest decimals that write the values of ``x`` exactly (in ``dtype`` when it is float32),
    all but :data:`PRECISION_EXCEPTIONS` of them (one computed value among recorded ones does not make
    the column full-precision); from :data:`MIN_DECIMALS` (steps of 10, 100, ...: only while
    ``[lower, upper]`` spans ten of them) to :data:`MAX_DECIMALS`; None when no such number exists."""
    values, counts = np.unique(x, return_counts=True)
    if len(values) == 0 or not np.isfinite(values).all():
        return None
    cast = np.float32 if dtype == "float32" else np.float64
    exact, allowed = values.astype(cast), PRECISION_EXCEPTIONS * len(x)
    for d in range(MIN_DECIMALS, MAX_DECIMALS + 1):
        if d < 0 and 10.0 ** -d * 10 > upper - lower:
            continue
        if counts[np.round(values, d).astype(cast) != exact].sum() <= allowed:
            return d
    return None


def fit_modes(x: np.ndarray, max_modes: int, max_rows: int, seed: int | None, *,
               point_values: int = 0, bound_share: float | None = None) -> tuple[list, list, list]:
    """Means, stds and weights of the modes: point masses plus a Bayesian Gaussian mixture (CTGAN).

    Values held by at least ``SPIKE_SHARE`` of the rows (a 0 in capital-gain, 40 hours a week)
    get a mode of their own with a negligible spread, so they decode to exactly that value
    instead of being smeared by a Gaussian; so do the smallest and largest value when they hold
    ``bound_share`` of the rows. The mixture is fitted on the other values. With at most
    ``point_values`` distinct values, every value is such a point mass (the DP path leaves these
    off: its values are noisy draws, not the column's domain).
    """
    from sklearn.mixture import BayesianGaussianMixture

    uniq, counts = np.unique(x, return_counts=True)
    scale = float(np.std(x)) or max(abs(float(uniq[0])), 1.0)
    point_std = 1e-6 * scale
    share = counts / len(x)
    if len(uniq) <= point_values:
        return uniq.tolist(), [point_std] * len(uniq), share.tolist()
    threshold = np.full(len(uniq), SPIKE_SHARE)
    if bound_share is not None:
        threshold[[0, -1]] = min(bound_share, SPIKE_SHARE)
    spikes = np.argsort(-share)
    spikes = spikes[share[spikes] >= threshold[spikes]][: max(max_modes - 1, 1)] if len(uniq) > 1 else np.arange(1)
    means = [float(uniq[i]) for i in spikes]
    stds = [point_std] * len(spikes)
    weights = [float(share[i]) for i in spikes]
    rest = x[~np.isin(x, uniq[spikes])]
    n_rest_unique = len(np.unique(rest))
    if n_rest_unique == 1:
        means.append(float(rest[0]))
        stds.append(point_std)
        weights.append(len(rest) / len(x))
    elif n_rest_unique > 1:
        rest_share = len(rest) / len(x)
        if len(rest) > max_rows:
            rest = np.random.default_rng(seed).choice(rest, max_rows, replace=False)
        n_components = int(min(max_modes - len(spikes), len(np.unique(rest)), len(rest)))
        gm = BayesianGaussianMixture(
            n_components=max(n_components, 1),
            weight_concentration_prior_type="dirichlet_process",
            weight_concentration_prior=0.001,
            max_iter=100,
            n_init=1,
            random_state=seed,
        )
        gm.fit((rest / scale).reshape(-1, 1))  # ConvergenceWarning is silenced by the caller's thread
        keep = gm.weights_ > MIN_MODE_WEIGHT
        if not keep.any():
            keep = gm.weights_ == gm.weights_.max()
        means += (gm.means_.reshape(-1)[keep] * scale).tolist()
        stds += np.maximum(np.sqrt(gm.covariances_.reshape(-1)[keep]) * scale, point_std).tolist()
        weights += (gm.weights_[keep] / gm.weights_[keep].sum() * rest_share).tolist()
    order = np.argsort(means, kind="stable")
    w = np.asarray(weights)[order]
    return (np.asarray(means)[order].tolist(), np.asarray(stds)[order].tolist(), (w / w.sum()).tolist())
