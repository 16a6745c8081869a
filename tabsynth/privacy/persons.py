"""Differential privacy per person for tables with several rows (events) per person.

The unit is the person: neighbouring data sets differ by one person with their subject row and all
their events (docs/privacy.md rules 22-25). Three primitives make the preprocessing release hold
per person:

- **the contribution bound** ``k``: at most ``k`` events of a person are used. ``k`` is declared
  (``max_events``) or read off a noisy histogram of events per person on a fixed public grid
  (:func:`count_grid`; a person is one count, so the histogram has L2 sensitivity 1) as its
  :data:`QUANTILE` point. The histogram is always measured, so the share of events and of persons
  cut is reported as post-processing of it, never from exact counts;
- **which events are kept** when a person has more than ``k`` (:func:`keep_events`): an even
  thinning (default), the first ``k``, or a random window of ``k``;
- **weights**: each kept event of a person with ``k_i`` kept events weighs ``1 / k_i``
  (:func:`person_weights`), so a person adds at most 1 in total to every count and histogram
  (L2 <= L1 <= 1, the sensitivity of one row in the per-row release) and the existing calibration
  holds unchanged. The row count becomes the person count (one per person, sensitivity 1).

The events-per-person histogram shares the preprocessing share of epsilon with the preprocessing
release (:func:`plan_persons`): both are Gaussians and their RDP curves add up to the one
calibrated to the share. A model fitting an event table calls::

    fit = PrivateFit.begin(config, events, metadata, runtime, persons=PersonUnit(
        events[key], order=events[order_by], subjects=subjects[key], max_events=None))
    kept = fit.persons.select(events)          # at most fit.persons.max_events rows per person
    transformer, counts = fit.transformer(kept, max_categories=..., seed=...)  # weighted per person

``fit.n_hat`` is then the noisy person count and ``fit.statement()`` names the person as unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from tabsynth.distributed.runtime import Runtime
from tabsynth.errors import PrivacyConfigError
from tabsynth.metadata import Metadata
from tabsynth.privacy.accountant import Accountant, Release
from tabsynth.privacy.preprocessing import UNITS_ROW_COUNT, _noisy, plan, units

#: Which events of a person with more than ``k`` are kept (:func:`keep_events`).
POLICIES = ("thin", "first", "window")
#: Units of the events-per-person histogram in the preprocessing share: as much as the row count
#: (both size the model: the number of persons and the length of their sequences).
UNITS_BOUND = 4.0
#: The share of persons whose events the DP bound keeps whole (read off the noisy histogram).
QUANTILE = 0.99
#: Cells of the events-per-person histogram below this many noise deviations are taken as empty.
FLOOR_SIGMAS = 4.0
#: The bound when the noisy histogram says nothing (a table too small for its epsilon).
FALLBACK_MAX_EVENTS = 64
#: The largest bound the DP quantile may choose (declare ``max_events`` for longer sequences).
MAX_DP_EVENTS = 256
_GRID_TOP = 2 ** 16


def count_grid() -> np.ndarray:
    """Lower ends of the public cells of events per person: 0, 1, 2, ..., 6, 8, 10, 13, 16, ...
    (three cells per doubling) up to 65536, the last cell open. From no data."""
    steps = np.round(2.0 ** (np.arange(0, 16 * 3 + 1) / 3.0)).astype(np.int64)
    return np.unique(np.concatenate([[0], steps[steps <= _GRID_TOP]]))


def _cell_tops(grid: np.ndarray) -> np.ndarray:
    """The largest count in each cell (the last, open cell is read as its lower end)."""
    return np.append(grid[1:] - 1, grid[-1])


# --- the unit ------------------------------------------------------------------------------------
def events_per_person(keys: Any, subjects: Any = None) -> np.ndarray:
    """Each person's number of events; with ``subjects`` (the person table's keys) persons without
    events count 0. Events whose key is not among ``subjects`` are refused."""
    keys = pd.Series(np.asarray(keys))
    if keys.isna().any():
        raise PrivacyConfigError("the person key has missing values: every event must name its person")
    counts = keys.value_counts(sort=False)
    if subjects is None:
        return counts.to_numpy(dtype=np.int64)
    subjects = pd.Index(pd.unique(np.asarray(subjects)))
    if not counts.index.isin(subjects).all():
        raise PrivacyConfigError("some events name a person missing from the subject table: drop them or "
                                 "add their subject rows")
    return counts.reindex(subjects, fill_value=0).to_numpy(dtype=np.int64)


def person_weights(keys: Any) -> np.ndarray:
    """Weight ``1 / k_i`` for each row of a person with ``k_i`` rows (give the kept events): every
    person's weights sum to 1, so each statistic's sensitivity per person is that of one row."""
    codes, _ = pd.factorize(np.asarray(keys))
    if (codes < 0).any():
        raise PrivacyConfigError("the person key has missing values: every event must name its person")
    return 1.0 / np.bincount(codes)[codes].astype(np.float64)


# --- which events are kept -----------------------------------------------------------------------
def _ranks(keys: Any, order: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The permutation sorting rows by person (then ``order``, stable), each sorted row's rank in
    its person, its person's row count and its person's index."""
    codes, _ = pd.factorize(np.asarray(keys))
    if (codes < 0).any():
        raise PrivacyConfigError("the person key has missing values: every event must name its person")
    if order is None:
        perm = np.argsort(codes, kind="stable")
    else:
        frame = pd.DataFrame({"p": codes, "o": np.asarray(order)})
        perm = frame.sort_values(["p", "o"], kind="mergesort", na_position="last").index.to_numpy()
    person = codes[perm]
    sizes = np.bincount(codes)
    first = np.cumsum(sizes) - sizes
    return perm, np.arange(len(perm)) - first[person], sizes[person], person


def _thin(rank: np.ndarray, n: np.ndarray, k: int) -> np.ndarray:
    """Rank ``r`` of ``n`` is kept when it is one of ``round(j (n - 1) / (k - 1))``, j < k: evenly
    spaced, the first and the last included (integer arithmetic, rounding half up)."""
    if k == 1:
        return rank == 0
    keep = np.zeros(len(rank), bool)
    span = np.maximum(n - 1, 1)
    j0 = (2 * rank * (k - 1) + span) // (2 * span)
    for j in (j0 - 1, j0, j0 + 1):
        keep |= (j >= 0) & (j < k) & ((2 * j * span + (k - 1)) // (2 * (k - 1)) == rank)
    return keep


def keep_events(keys: Any, max_events: int, policy: str = "thin", order: Any = None,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Which rows to keep (a boolean mask in the rows' order) so that no person has more than
    ``max_events``; persons with fewer keep all.

    ``order`` (the sequence column) orders each person's events; without it, the rows' order.
    ``policy``:

    - ``"thin"`` (default): ``k`` events evenly spaced over the person's whole sequence, the first
      and the last included. The sequence keeps its span (start, end, duration) and a systematic
      sample of its middle, so per-event columns that drift along a sequence (age, year, a lab
      value with disease progression) keep their distribution; the price is wider gaps between
      the kept events of long sequences;
    - ``"first"``: the first ``k``. Gaps stay exact but long sequences lose their ends, which
      shifts every time-dependent column toward the start of follow-up;
    - ``"window"``: ``k`` consecutive events at a uniformly random start (``rng``): exact gaps,
      no bias to the start, but neither the start nor the end of a long sequence survive.
    """
    if policy not in POLICIES:
        raise PrivacyConfigError(f"policy {policy!r} is not one of {', '.join(POLICIES)}")
    if isinstance(max_events, bool) or not isinstance(max_events, (int, np.integer)) or max_events < 1:
        raise PrivacyConfigError(f"max_events_per_person must be a positive integer, got {max_events!r}")
    k = int(max_events)
    perm, rank, n, person = _ranks(keys, order)
    if policy == "first":
        keep = rank < k
    elif policy == "thin":
        keep = (n <= k) | _thin(rank, n, k)
    else:
        rng = rng if rng is not None else np.random.default_rng()
        start = np.floor(rng.random(int(person.max(initial=-1)) + 1) * np.maximum(
            np.bincount(person) - k + 1, 1)).astype(np.int64)[person]
        keep = (rank >= start) & (rank < start + k)
    mask = np.zeros(len(perm), bool)
    mask[perm] = keep
    return mask


# --- the DP bound --------------------------------------------------------------------------------
def events_histogram(counts: np.ndarray) -> np.ndarray:
    """Persons per cell of :func:`count_grid` before noise (a person is in one cell)."""
    grid = count_grid()
    return np.bincount(np.searchsorted(grid, counts, side="right") - 1, minlength=len(grid)).astype(np.float64)


def _below(k: int) -> np.ndarray:
    """Each cell's share of values at most ``k`` (values spread evenly inside a cell)."""
    grid, tops = count_grid(), _cell_tops(count_grid())
    return np.clip((k - grid + 1) / (tops - grid + 1), 0.0, 1.0)


def dp_max_events(noisy_counts: np.ndarray, std: float, n_hat: float, quantile: float = QUANTILE) -> int:
    """The bound read off the noisy histogram and the noisy person count ``n_hat`` (post-processing).

    Two readings, the smaller wins: the top of the first cell where the cumulative noisy count,
    scanned from one event up, reaches ``quantile`` of the persons with events (unbiased: the
    noise of the cells is summed as drawn), and the top of the last cell above
    :data:`FLOOR_SIGMAS` noise deviations (on a large table the scan can overshoot by the noise of
    ``n_hat``). Neither: :data:`FALLBACK_MAX_EVENTS`. Never above :data:`MAX_DP_EVENTS`. On a small
    table the reading is noisy; too high a bound only costs compute (weights keep every statistic
    per person), too low a one cuts events, so the errors lean high."""
    tops = _cell_tops(count_grid())
    raw = np.asarray(noisy_counts, dtype=np.float64)
    readings = []
    reached = np.flatnonzero(np.cumsum(raw[1:]) >= quantile * max(n_hat - max(raw[0], 0.0), 1.0)) + 1
    if len(reached):
        readings.append(int(tops[reached[0]]))
    live = np.flatnonzero(raw[1:] >= FLOOR_SIGMAS * std) + 1
    if len(live):
        readings.append(int(tops[live[-1]]))
    return min(max(min(readings), 1) if readings else FALLBACK_MAX_EVENTS, MAX_DP_EVENTS)


def noisy_cut_shares(noisy_counts: np.ndarray, std: float, n_hat: float, max_events: int) -> tuple[float, float]:
    """The shares of events and of persons beyond ``max_events``, from the noisy histogram and the
    noisy person count alone (post-processing, never the exact shares).

    Persons beyond: ``n_hat`` less the noisy persons at most ``max_events``. Their mean excess:
    from the cells above the bound over :data:`FLOOR_SIGMAS` noise deviations, else the first cell
    above it (a lower estimate)."""
    grid, tops = count_grid(), _cell_tops(count_grid())
    c = np.clip(np.asarray(noisy_counts, dtype=np.float64), 0, None)
    below = _below(max_events)
    persons = max(float(n_hat) - float(c[0]), 1.0)
    cut = float(np.clip(persons - float((c * below)[1:].sum()), 0.0, persons))
    mid = (grid + tops) / 2.0
    above = (below < 1.0) & (c >= FLOOR_SIGMAS * std)
    first = int(np.flatnonzero(below < 1.0)[0]) if (below < 1.0).any() else len(grid) - 1
    lowest = max(float(np.maximum(grid[first], max_events + 1) + tops[first]) / 2.0 - max_events, 1.0)
    excess = float((c[above] * (mid[above] - max_events)).sum() / c[above].sum()) if above.any() else lowest
    kept_events = float((c * below * mid)[1:].sum()) + cut * max_events
    events_cut = cut * excess
    total = kept_events + events_cut
    return (events_cut / total if total > 0 else 0.0, cut / persons)


#: A histogram whose cells above the floor hold this share of the noisy person count is read as it
#: is; below it, a smooth law is fitted to all its cells (:func:`_fitted_counts`).
RESOLVED_SHARE = 0.8


def count_law(noisy_counts: np.ndarray, std: float, max_events: int, n_hat: float | None = None
              ) -> np.ndarray | None:
    """The law of each person's number of kept events ``0..max_events``, from the noisy histogram
    and the noisy person count alone (post-processing). Where the cells above :data:`FLOOR_SIGMAS`
    noise deviations hold :data:`RESOLVED_SHARE` of the persons, the histogram itself: cells at most
    ``max_events`` with their noise cut at zero, spread evenly over their counts, and the persons
    past the bound at ``max_events``; persons without events only where their cell stands above the
    floor (its noise alone would leave a sixth of a small table's persons without events). On a
    small table (each cell within a few deviations of its noise) a clipped histogram spreads
    persons evenly up to the bound, so a discretised log-normal of the number of events is fitted
    to every cell instead (:func:`_fitted_counts`). None when nothing is left."""
    grid, tops = count_grid(), _cell_tops(count_grid())
    raw = np.asarray(noisy_counts, dtype=np.float64)
    floor = FLOOR_SIGMAS * std
    raw = np.where(np.arange(len(raw)) == 0, np.where(raw >= floor, raw, 0.0), raw)  # persons without events
    c = np.clip(raw, 0, None)
    persons = float(n_hat) if n_hat is not None else float(c.sum())
    if n_hat is not None and c[c >= floor].sum() < RESOLVED_SHARE * persons:
        c = _fitted_counts(raw, persons, max_events)
        floor = 0.0
    below = _below(max_events)
    beyond = np.where(below > 0, c * (1.0 - below), np.where(c >= floor, c, 0.0))
    law = np.zeros(max_events + 1)
    live = np.flatnonzero((below > 0) & (c > 0))
    lo, hi = grid[live], np.minimum(tops[live], max_events)
    per = c[live] * below[live] / (hi - lo + 1)
    marks = np.zeros(max_events + 2)
    np.add.at(marks, lo, per)
    np.add.at(marks, hi + 1, -per)
    law += np.clip(np.cumsum(marks)[:-1], 0.0, None)  # the running sum leaves -1e-17 where it should be 0
    law[max_events] += beyond.sum()
    total = law.sum()
    return law / total if total > 0 else None


def _fitted_counts(raw: np.ndarray, persons: float, max_events: int) -> np.ndarray:
    """Expected cell counts of the discretised log-normal (a point mass at zero events beside it)
    closest in squared error to the noisy cells ``raw`` up to the bound ``max_events`` (each with
    the same noise; past the bound the cells are noise but for a few persons), truncated there and
    scaled to the noisy person count: a grid search over the median and the spread."""
    grid = count_grid()
    used = int(np.searchsorted(grid, max_events, side="right"))  # cells 1..used-1 start at most at the bound
    zero = float(np.clip(raw[0], 0.0, persons))
    rest = max(persons - zero, 0.0)
    mu = np.log(np.geomspace(1.0, float(max(max_events, 2)), 80))[:, None, None]
    sigma = np.geomspace(0.05, 2.0, 40)[None, :, None]
    edges = np.log(np.append(grid[1:], np.inf).astype(np.float64) - 0.5)[None, None, :]
    cdf = norm.cdf((edges - mu) / sigma)
    cells = np.diff(np.concatenate([np.zeros(cdf.shape[:2] + (1,)), cdf], -1), axis=-1)[..., 1:used]
    expected = rest * cells / np.maximum(cells.sum(-1, keepdims=True), 1e-300)  # truncated at the bound
    error = ((expected - raw[None, None, 1:used]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmin(error)), error.shape)
    out = np.zeros(len(grid))
    out[0], out[1:used] = zero, expected[i, j]
    return out


# --- the releases ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PersonUnit:
    """How the rows of an event table map to persons (the privacy unit).

    ``keys``: each event row's person key; ``order``: the sequence column ordering a person's events
    (None: the rows' order); ``subjects``: the person table's keys (persons without events count);
    ``max_events``: a declared contribution bound (None: the DP :data:`QUANTILE` of events per
    person); ``policy``: which events a person with more keeps (:func:`keep_events`).
    """

    keys: Any
    order: Any = None
    subjects: Any = None
    max_events: int | None = None
    policy: str = "thin"


@dataclass
class ContributionBound:
    """The bound applied: ``kept`` masks the event rows used, ``weights`` weighs each kept row."""

    max_events: int
    declared: bool
    policy: str
    kept: np.ndarray
    weights: np.ndarray
    cut_share_events: float
    cut_share_persons: float

    def select(self, events: pd.DataFrame) -> pd.DataFrame:
        """The kept events, in their order (``weights`` are aligned with them)."""
        if len(events) != len(self.kept):
            raise PrivacyConfigError(f"the bound was measured on {len(self.kept)} event rows, got {len(events)}: "
                                     "pass the same event table")
        return events[self.kept]

    def report(self) -> dict[str, Any]:
        """What is published: DP outputs and post-processing of them only."""
        return {"max_events_per_person": self.max_events, "declared": self.declared, "policy": self.policy,
                "noisy_cut_share_events": self.cut_share_events,
                "noisy_cut_share_persons": self.cut_share_persons}


def total_units(metadata: Metadata) -> float:
    """The preprocessing release's units (:mod:`tabsynth.privacy.preprocessing`), the row count included."""
    return UNITS_ROW_COUNT + sum(sum(units(s)) for s in metadata.columns.values() if s.kind not in ("id", "pii"))


def plan_persons(metadata: Metadata, accountant: Accountant, share: float) -> tuple[Release | None, Release]:
    """Record the preprocessing release and the events-per-person histogram, which share ``share``:
    with ``z`` calibrated to it and ``U`` the release's units, the release gets multiplier
    ``z sqrt((U + b) / U)`` and the histogram ``z sqrt((U + b) / b)`` for ``b =``
    :data:`UNITS_BOUND`, so their RDP curves sum to that of ``z``. From the schema alone."""
    u = total_units(metadata)
    if u <= UNITS_ROW_COUNT:
        raise PrivacyConfigError("the event table has no modelled column (all are ids or personal identifiers): "
                                 "there is nothing to learn from it; model at least one column")
    z = accountant.preprocessing_noise(share, 1.0)
    preprocessing = plan(metadata, accountant, share, noise_multiplier=z * math.sqrt((u + UNITS_BOUND) / u))
    std = z * math.sqrt((u + UNITS_BOUND) / UNITS_BOUND)
    bound = Release("events_per_person", std,
                    mechanism="gaussian (noisy histogram of events per person on a public grid; a person is one "
                              "count, L2 sensitivity 1)",
                    details={"noise_std": std, "l2_sensitivity": 1.0, "share_of_epsilon": share,
                             "grid": count_grid().tolist(), "quantile": QUANTILE})
    accountant.add(bound)
    return preprocessing, bound


def bound_contributions(unit: PersonUnit, release: Release, n_hat: float, noise_rng: Any,
                        runtime: Runtime | None = None, *, rng: np.random.Generator | None = None
                        ) -> ContributionBound:
    """Measure the noisy events-per-person histogram (``release``), choose the bound (declared or
    its DP quantile, with ``n_hat`` the noisy person count), keep each person's events under it and
    weigh them; record what is published.

    Under torchrun each rank holds whole persons: the histogram is summed over ranks, noised once."""
    runtime = runtime or Runtime()
    std = release.noise_multiplier  # sensitivity 1
    noisy = _noisy(events_histogram(events_per_person(unit.keys, unit.subjects)), std, noise_rng, runtime)
    declared = unit.max_events is not None
    k = int(unit.max_events) if unit.max_events is not None else dp_max_events(noisy, std, n_hat)
    kept = keep_events(unit.keys, k, unit.policy, unit.order, rng)
    events_share, persons_share = noisy_cut_shares(noisy, std, n_hat, k)
    bound = ContributionBound(k, declared, unit.policy, kept, person_weights(np.asarray(unit.keys)[kept]),
                              events_share, persons_share)
    release.details.update({"noisy_counts": np.asarray(noisy).tolist(), **bound.report()})
    return bound


def count_persons(unit: PersonUnit) -> int:
    """The exact number of persons, read only to be noised as the release's person count."""
    return len(events_per_person(unit.keys, unit.subjects))
