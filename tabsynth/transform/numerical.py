"""Numeric columns: mode-specific normalisation (CTGAN), or a quantile / min-max scalar.

A value becomes a scalar in [-1, 1] (a tanh head), plus for ``method="mode"`` a one-hot of its
mixture component, plus a two-slot missing indicator when the column has nulls. Decoding clips
into ``[lower, upper]`` and rounds integers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tabsynth.transform.base import CONTINUOUS, DISCRETE, Slots, Span, one_hot, restore_dtype

METHODS = ("mode", "quantile", "minmax")
#: A mixture component is kept when its weight is above this (as in CTGAN).
MIN_MODE_WEIGHT = 0.005
#: A value held by this share of rows gets its own point-mass mode.
SPIKE_SHARE = 0.05
#: A column with at most this many distinct values gets a point-mass mode for each (a grade or a
#: count of 1-16 decodes to exact values, its rare extremes included, instead of Gaussian spreads
#: that round to a neighbour).
POINT_VALUES = 20
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
    ) -> None:
        self.column = column
        self.method = method
        self.lower = float(lower)
        self.upper = float(upper)
        self.integer = integer
        self.has_missing = has_missing
        self.dtype = dtype
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
        """Fit on a float Series (nulls allowed); ``bounds`` overrides the observed range."""
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)
        present = x[~np.isnan(x)]
        has_missing = bool(len(present) < len(x))
        if len(present) == 0:
            return cls(column, "minmax", 0.0, 0.0, integer=integer, has_missing=has_missing, fill=0.0,
                       dtype=dtype)
        lo, hi = (float(present.min()), float(present.max())) if bounds is None else map(float, bounds)
        present = np.clip(present, lo, hi)
        fill = float(np.median(present))
        common: dict[str, Any] = dict(integer=integer, has_missing=has_missing, fill=fill, dtype=dtype)
        if method == "minmax" or lo == hi:
            return cls(column, "minmax", lo, hi, **common)
        if method == "quantile":
            qs = np.quantile(present, np.linspace(0, 1, min(_N_QUANTILES, len(present))))
            return cls(column, "quantile", lo, hi, quantiles=qs.tolist(), **common)
        means, stds, weights = fit_modes(present, max_modes, max_rows, seed, point_values=POINT_VALUES)
        return cls(column, "mode", lo, hi, means=means, stds=stds, weights=weights, **common)

    # --- layout ---------------------------------------------------------------------------------
    @property
    def n_modes(self) -> int:
        return len(self.means) if self.method == "mode" else 0

    @property
    def spans(self) -> list[Span]:
        out = [Span(0, 1, CONTINUOUS, self.column, "value")]
        pos = 1
        if self.n_modes:
            out.append(Span(pos, pos + self.n_modes, DISCRETE, self.column, "mode"))
            pos += self.n_modes
        if self.has_missing:
            out.append(Span(pos, pos + 2, DISCRETE, self.column, "missing"))
        return out

    @property
    def width(self) -> int:
        return 1 + self.n_modes + (2 if self.has_missing else 0)

    # --- encoding -------------------------------------------------------------------------------
    def transform(self, s: pd.Series) -> np.ndarray:
        values = pd.to_numeric(s, errors="coerce") if s.dtype == object else s  # words read as missing
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(x)
        x = np.clip(np.where(missing, self.fill, x), self.lower, self.upper)
        blocks = []
        if self.method == "mode":
            mode = self.assign_modes(x)
            scalar = (x - self.means[mode]) / (4.0 * self.stds[mode])
            # a value off every broad mode that lands on a point mass (the modes were fitted on a
            # sample or on DP draws that missed it) would get a scalar of 1e5; it decodes to the spike
            point = self.stds[mode] <= _POINT_REL * max(self.upper - self.lower, 1e-300)
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
        # Not clipped to [-1, 1]: encoded outliers may lie beyond 4 sigma of their mode, and the
        # models' tanh heads keep generated scalars inside anyway.
        scalar = block[:, 0].astype(np.float64)
        if self.method == "mode":
            mode = slots["mode"] if slots else np.argmax(block[:, 1 : 1 + self.n_modes], axis=1)
            x = self.means[mode] + scalar * 4.0 * self.stds[mode]
        elif self.method == "quantile":
            x = np.interp(np.clip((scalar + 1.0) / 2.0, 0.0, 1.0), self._q_probs, self._q_vals)
        else:
            x = self.lower + (scalar + 1.0) / 2.0 * (self.upper - self.lower)
        x = np.clip(x, self.lower, self.upper)
        if self.integer:
            x = np.round(x)
        if self.has_missing:
            miss = block[:, self.width - 2 : self.width]
            x = np.where(miss[:, 1] > miss[:, 0], np.nan, x)
        return x

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


def fit_modes(x: np.ndarray, max_modes: int, max_rows: int, seed: int | None, *,
               point_values: int = 0) -> tuple[list, list, list]:
    """Means, stds and weights of the modes: point masses plus a Bayesian Gaussian mixture (CTGAN).

    Values held by at least ``SPIKE_SHARE`` of the rows (a 0 in capital-gain, 40 hours a week)
    get a mode of their own with a negligible spread, so they decode to exactly that value
    instead of being smeared by a Gaussian; the mixture is fitted on the other values. With at most
    ``point_values`` distinct values, every value is such a point mass (the DP path leaves this
    off: its values are noisy draws, not the column's domain).
    """
    from sklearn.mixture import BayesianGaussianMixture

    uniq, counts = np.unique(x, return_counts=True)
    scale = float(np.std(x)) or max(abs(float(uniq[0])), 1.0)
    point_std = 1e-6 * scale
    share = counts / len(x)
    if len(uniq) <= point_values:
        return uniq.tolist(), [point_std] * len(uniq), share.tolist()
    spikes = np.argsort(-share)[: max(max_modes - 1, 1)]
    spikes = spikes[share[spikes] >= SPIKE_SHARE] if len(uniq) > 1 else np.arange(1)
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
