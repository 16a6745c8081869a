"""Numeric domains from noisy histograms in rounds: a coarse grid locates the bulk, zooms refine it.

Round 1 measures a fixed, data-independent grid: a signed log grid (:data:`BINS_PER_DECADE` bins per
decade and an exact-zero bin) for numbers, decades from 1900 to 2100 for dates, or equal-width bins
inside public bounds (then it is the only round). Its cells below :data:`EMPTY_SIGMAS` noise
deviations are empty, except that two half-decade cells of one decade that pass together become one
decade cell. Each later round, when the accepted mass is at least :data:`MIN_ZOOM_SIGMAS` of its
noise deviations, measures :data:`ZOOM_BINS` bins spanning the accepted histogram's cells above
the noise (log-spaced where that span covers more than a decade of positive values, equal-width
otherwise), with an exact-zero cell of its own when zero lies inside; its cells below
:data:`ZOOM_SIGMAS` deviations, and lone cells below twice that, are empty. A zoom is accepted when
it keeps at least :data:`ZOOM_KEEP` of the accepted mass outside the zero cell, and then
grows into the neighbouring cells above :data:`GROW_SIGMAS`; a rejected zoom is measured again by the
next round on the same bins and the two are averaged (inverse-variance). Every grid is a function of
earlier noisy outputs only and every round touches one cell per row (L2 sensitivity 1 at that
round's noise, fixed before any row was read), so each round is a Gaussian mechanism and the rounds
compose adaptively in RDP. With per-row weights (a person's events weighted to sum to at most 1,
:mod:`tabsynth.privacy.persons`) a person moves a round's vector by at most 1 in L1, hence in L2.

On a small table no round-1 cell may rise above the floor although the noisy present count says
the data are there: then :func:`coarse` guesses a range from round 1's noisy counts alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Bins per decade of the signed log grid of round 1.
BINS_PER_DECADE = 2
_DECADES = (-3, 13)
#: Round 1 cells with a noisy count below this many noise standard deviations are taken as empty
#: (about 65 cells per column: a phantom bin has a chance of about 0.02% per column).
EMPTY_SIGMAS = 4.5
#: The same for a zoom's :data:`ZOOM_BINS` cells (a phantom stays inside the located range); a
#: surviving zoom cell with both neighbours empty and below twice the floor is taken as a phantom.
ZOOM_SIGMAS = 3.0
#: An accepted zoom's cells grow into neighbours above this many deviations (its thinning tails).
GROW_SIGMAS = 1.0
ZOOM_BINS = 32
#: A zoom is accepted when it keeps this share of the accepted histogram's surviving mass.
ZOOM_KEEP = 0.95
#: A zoom is measured only when the accepted mass exceeds this many of its noise deviations: below,
#: its bins hold too few rows to rise above the noise and phantom cells could pass for the bulk.
MIN_ZOOM_SIGMAS = 20.0
#: Zoom rounds after round 1, and each round's share of a numeric column's units (round 1 first).
ROUND_UNITS = (1.0, 0.5, 0.5)
_DATE_GRID_DAYS = (-25_567, 47_482)  # 1900-01-01 .. 2100-01-01
#: A coarse guess spans at most this many adjacent round-1 cells (two decades, or 40 years of dates).
COARSE_CELLS = 4
#: A coarse guess needs a noisy present count above this many round-1 noise deviations.
COARSE_SIGMAS = 2.0
#: Ordinary magnitudes for a coarse guess: a window touching a cell below zero, beyond this range,
#: or within its low end of zero (the exact-zero cell aside) scores :data:`COARSE_PRIOR` less.
COARSE_ORDINARY = (1e-2, 1e6)
COARSE_PRIOR = 1.0


@dataclass
class Histogram:
    """Noisy counts on cells ``[lo, hi)`` sorted by position; ``lo == hi`` is a point mass (zero)."""

    lo: np.ndarray
    hi: np.ndarray
    counts: np.ndarray
    std: float
    coarse: bool = False  # a guess from round 1's noisy counts (:func:`coarse`), nothing above the floor

    @property
    def mass(self) -> float:
        return float(self.counts.sum())

    @property
    def spread(self) -> float:
        """The mass outside point cells (exact zeros): what a zoom must keep."""
        return float(self.counts[self.hi > self.lo].sum())

    def extent(self) -> tuple[float, float]:
        live = np.flatnonzero(self.counts > 0)
        return float(self.lo[live[0]]), float(self.hi[live[-1]])


@dataclass
class Grid:
    """Bin edges and whether exact zeros get a cell of their own (the last one)."""

    edges: np.ndarray
    zero_cell: bool
    clip: bool  # round 1 clips every value into the grid; zooms leave values outside uncounted

    def count(self, x: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Rows per cell, or the sum of their ``weights`` (a person's events weighted to sum to 1)."""
        n_bins = len(self.edges) - 1
        if self.clip:
            x = np.clip(x, self.edges[0], self.edges[-1])
        zero = (x == 0) if self.zero_cell else np.zeros(len(x), bool)
        inside = (x >= self.edges[0]) & (x <= self.edges[-1]) & ~zero
        idx = np.clip(np.searchsorted(self.edges, x[inside], side="right") - 1, 0, n_bins - 1)
        if weights is None:
            counts = np.bincount(idx, minlength=n_bins).astype(np.float64)
            return np.append(counts, float(zero.sum())) if self.zero_cell else counts
        counts = np.bincount(idx, weights=weights[inside], minlength=n_bins).astype(np.float64)
        return np.append(counts, float(weights[zero].sum())) if self.zero_cell else counts

    def histogram(self, noisy_counts: np.ndarray, std: float) -> Histogram:
        lo, hi, c = self.edges[:-1].copy(), self.edges[1:].copy(), noisy_counts[: len(self.edges) - 1]
        if self.zero_cell:
            at = int(np.searchsorted(lo, 0.0, side="left"))  # before a bin starting at zero
            lo, hi, c = np.insert(lo, at, 0.0), np.insert(hi, at, 0.0), np.insert(c, at, noisy_counts[-1])
        return Histogram(lo, hi, np.asarray(c, dtype=np.float64), std)


def log_grid() -> Grid:
    """Edges ... -10^k ..., an exact-zero bin [0, 10^-3), ... 10^k ... (data-independent)."""
    pos = 10.0 ** np.arange(_DECADES[0], _DECADES[1] + 1e-9, 1.0 / BINS_PER_DECADE)
    return Grid(np.concatenate([-pos[::-1], [0.0], pos]), zero_cell=False, clip=True)


def first_grid(kind: str, public: tuple[float, float] | None, bins: int = 64) -> Grid:
    """Round 1's grid: from the schema alone."""
    if public is not None:
        return Grid(np.linspace(public[0], public[1], bins + 1), zero_cell=kind != "datetime" and
                    public[0] <= 0 <= public[1], clip=True)
    if kind == "datetime":
        return Grid(np.linspace(*_DATE_GRID_DAYS, 21), zero_cell=False, clip=True)
    return log_grid()


def _as_points(h: Histogram) -> Histogram:
    """The log grid's bin [0, 10^-3) next to negative bins is the exact-zero bin: a point mass."""
    zero = (h.lo == 0.0) & (h.hi > 0) & np.r_[False, h.lo[:-1] < 0]
    return Histogram(h.lo, np.where(zero, 0.0, h.hi), h.counts, h.std)


def zoom_grid(h: Histogram, kind: str) -> Grid:
    """:data:`ZOOM_BINS` bins over the cells of ``h`` above the noise (post-processing of ``h``)."""
    a, b = h.extent()
    if b <= a:
        b = a + 1.0
    if a > 0 and b / a > 10:
        edges = np.geomspace(a, b, ZOOM_BINS + 1)
    else:
        edges = np.linspace(a, b, ZOOM_BINS + 1)
    return Grid(edges, zero_cell=kind != "datetime" and a <= 0 <= b, clip=False)


def _decades(raw: Histogram) -> Histogram:
    """Round 1 on the log grid, floored; the two half-decade cells of one decade that stay below the
    floor alone but rise above it together (their sum has noise sqrt(2) sigma) become one decade
    cell, so a small table's bulk split by a half-decade edge survives (post-processing)."""
    h = floored(raw, EMPTY_SIGMAS)
    lo, hi, counts = h.lo.copy(), h.hi.copy(), h.counts.copy()
    z = int(np.flatnonzero((raw.lo == 0.0) & (raw.hi > 0))[0])
    pairs = [(i, i + 1) for i in range(z + 1, len(counts) - 1, 2)] + [(i - 1, i) for i in range(z - 2, 0, -2)]
    drop = []
    for i, j in pairs:
        both = raw.counts[i] + raw.counts[j]
        if counts[i] == 0 and counts[j] == 0 and both >= EMPTY_SIGMAS * np.sqrt(2) * raw.std:
            counts[i], hi[i] = both, hi[j]
            drop.append(j)
    return Histogram(np.delete(lo, drop), np.delete(hi, drop), np.delete(counts, drop), raw.std)


def _without_phantoms(h: Histogram) -> Histogram:
    """A zoom's cells above the floor, less lone ones (both neighbours empty) below twice the floor."""
    live = h.counts > 0
    alone = live & ~np.r_[False, live[:-1]] & ~np.r_[live[1:], False] & (h.counts < 2 * ZOOM_SIGMAS * h.std)
    return Histogram(h.lo, h.hi, np.where(alone, 0.0, h.counts), h.std)


def _grown(kept: Histogram, h: Histogram) -> Histogram:
    """``kept`` grown into the neighbouring cells of ``h`` above :data:`GROW_SIGMAS` (hysteresis: a
    bulk keeps its thinning tails, lone noise does not get in)."""
    keep, c = kept.counts > 0, h.counts
    for i in range(1, len(c)):
        keep[i] |= keep[i - 1] and c[i] >= GROW_SIGMAS * h.std
    for i in range(len(c) - 2, -1, -1):
        keep[i] |= keep[i + 1] and c[i] >= GROW_SIGMAS * h.std
    return Histogram(h.lo, h.hi, np.where(keep, np.clip(c, 0, None), 0.0), h.std)


def floored(h: Histogram, sigmas: float) -> Histogram:
    counts = np.clip(h.counts, 0, None)
    counts[counts < sigmas * h.std] = 0.0
    return Histogram(h.lo, h.hi, counts, h.std)


def _averaged(prior: Histogram, h: Histogram) -> Histogram:
    """The same bins measured twice: their inverse-variance average (post-processing)."""
    w, v = 1 / prior.std ** 2, 1 / h.std ** 2
    return Histogram(h.lo, h.hi, (prior.counts * w + h.counts * v) / (w + v), float((w + v) ** -0.5))


def _first_accepted(first: Histogram, kind: str, public: tuple[float, float] | None) -> Histogram:
    """Round 1's cells above the floor (on the log grid: half-decades joined into decades, zeros a point)."""
    return _as_points(_decades(first)) if kind != "datetime" and public is None else floored(first, EMPTY_SIGMAS)


def measure_rounds(x: np.ndarray, kind: str, public: tuple[float, float] | None, stds: list[float],
                   noisy: Callable[[np.ndarray, float], np.ndarray], missing: float,
                   weights: np.ndarray | None = None, n_hat: float | None = None) -> tuple[Histogram, float, int]:
    """The accepted histogram, the noisy missing count and the number of accepted zooms.

    ``noisy(counts, std)`` is the release's Gaussian; round 1's vector carries the missing count
    as its last cell (a row is missing or present, never both). With ``weights`` (one per value of
    ``x``) every cell sums weights instead of counting rows; ``missing`` is then the missing weight.
    A later round whose noise is too large for a zoom to resolve the bulk (a small table) measures
    round 1's vector again instead, averaged with the earlier measurements: its budget is spent
    either way, and the average has less noise. With the noisy row count ``n_hat``, a round 1
    where still nothing survives gives :func:`coarse`'s guess."""
    first_grid_ = first_grid(kind, public)
    raw = noisy(np.append(first_grid_.count(x, weights), missing), stds[0])
    first = first_grid_.histogram(raw[:-1], stds[0])
    accepted = _first_accepted(first, kind, public)
    missing_hat, missing_std, zooms, pending = float(raw[-1]), stds[0], 0, None
    for std in stds[1:]:
        if zooms == 0 and pending is None and accepted.spread < MIN_ZOOM_SIGMAS * std:
            again = noisy(np.append(first_grid_.count(x, weights), missing), std)
            first = _averaged(first, first_grid_.histogram(again[:-1], std))
            w, v = missing_std ** -2, std ** -2
            missing_hat, missing_std = (missing_hat * w + float(again[-1]) * v) / (w + v), (w + v) ** -0.5
            accepted = _first_accepted(first, kind, public)
            continue
        if accepted.spread < MIN_ZOOM_SIGMAS * std:
            break
        if pending is None:
            grid, prior = zoom_grid(accepted, kind), None
        else:
            grid, prior = pending
        h = grid.histogram(noisy(grid.count(x, weights), std), std)
        if prior is not None:
            h = _averaged(prior, h)
        kept = _without_phantoms(floored(h, ZOOM_SIGMAS))
        if kept.spread >= ZOOM_KEEP * accepted.spread:
            accepted, zooms, pending = _grown(kept, h), zooms + 1, None
        else:
            pending = (grid, h)
    if accepted.mass <= 0 and n_hat is not None:
        first = _as_points(first) if kind != "datetime" and public is None else first
        accepted = coarse(first, public, n_hat - missing_hat, kind) or accepted
    return accepted, missing_hat, zooms


def coarse(first: Histogram, public: tuple[float, float] | None, present: float, kind: str = "numerical"
           ) -> Histogram | None:
    """A range guessed from round 1's raw noisy counts when none rose above the floor (post-processing:
    no new measurement), scaled to the noisy ``present`` count; None when ``present`` shows no data.

    ``present`` (the noisy row count less the noisy missing count: noise about 1.1 round-1
    deviations) must exceed :data:`COARSE_SIGMAS` deviations. An empty column passes with a chance
    of about 4%, and then its guess carries only the few rows its small present count asks for;
    312 persons at a deviation of 74 (pbcseq per person) fail one fit in forty (at 3 deviations, one in
    seven would come out constant). Inside public bounds the guess is uniform over them, whatever
    ``present`` says (they are declared: a value outside is impossible, not merely unseen). Otherwise
    it is the window of 1 to :data:`COARSE_CELLS` adjacent cells with the largest z-score
    ``sum / sqrt(width)`` (a sum of ``w`` cells has noise ``sqrt(w)`` deviations), shaped by its
    clipped noisy counts: a bulk spread evenly over ``k`` cells scores best at ``w = k``, keeping
    ``sqrt(w / k)`` of that narrower and ``sqrt(k / w)`` wider. Lab values, amounts and durations
    in days mostly fill 2 to 6 half-decade cells, dates one to four decades; wider windows would
    raise the score pure noise reaches among the log grid's 66 cells more than they add.

    Pure noise's best window over those 66 cells scores 2.5 deviations in a typical draw, and a bulk
    of 4 deviations spread over two cells scores about 2.8: many guesses land on noise, most of them
    at magnitudes no column of the table has (1e9, -1e-3). A prior read off no data, that most
    columns are non-negative and of ordinary magnitude (:data:`COARSE_ORDINARY`), takes
    :data:`COARSE_PRIOR` deviation off windows elsewhere: a column there is still found when it
    stands one deviation clearer of the noise. Dates (days since 1970 on decades) go without it."""
    if public is not None:  # the declared range holds whatever present values there are
        mass = max(present, 1.0)
        return Histogram(np.array([public[0]]), np.array([public[1]]), np.array([mass]), first.std, True)
    if not present > COARSE_SIGMAS * first.std:
        return None
    size = np.maximum(np.abs(first.lo), np.abs(first.hi))
    odd = (first.lo < 0) | (size > COARSE_ORDINARY[1]) | ((size <= COARSE_ORDINARY[0]) & (first.hi > first.lo))
    odd &= kind != "datetime"
    c, best, window = first.counts / first.std, 0.0, None
    sums, odds = np.r_[0.0, np.cumsum(c)], np.r_[0, np.cumsum(odd)]
    for w in range(1, min(COARSE_CELLS, len(c)) + 1):
        z = (sums[w:] - sums[:-w]) / np.sqrt(w) - COARSE_PRIOR * (odds[w:] > odds[:-w])
        if z.max() > best:
            best, window = float(z.max()), slice(int(np.argmax(z)), int(np.argmax(z)) + w)
    counts = np.clip(first.counts[window], 0, None) if window is not None else np.zeros(0)
    if counts.sum() <= 0:  # no window above zero: nowhere to put the data
        return None
    return Histogram(first.lo[window], first.hi[window], counts * (present / counts.sum()), first.std, True)


def quantile(h: Histogram, q: float) -> float:
    cdf = np.cumsum(h.counts) / h.counts.sum()
    i = min(int(np.searchsorted(cdf, q)), len(h.counts) - 1)
    prev = cdf[i - 1] if i else 0.0
    frac = (q - prev) / max(cdf[i] - prev, 1e-12)
    return float(h.lo[i] + np.clip(frac, 0, 1) * (h.hi[i] - h.lo[i]))


def draw(h: Histogram, n: int, rng: np.random.Generator) -> np.ndarray:
    cells = rng.choice(len(h.counts), size=n, p=h.counts / h.counts.sum())
    return h.lo[cells] + rng.random(n) * (h.hi[cells] - h.lo[cells])


def bin_width(h: Histogram) -> float:
    """The median width of the cells holding mass (the resolution the shape was measured at)."""
    live = (h.counts > 0) & (h.hi > h.lo)
    return float(np.median((h.hi - h.lo)[live])) if live.any() else 0.0
