"""One accountant owns the budget of a DP fit: preprocessing releases and DP-SGD, composed in RDP.

Every private statistic is a Gaussian mechanism and DP-SGD is a subsampled Gaussian, so the whole
fit composes in Rényi DP into one (epsilon, delta) (docs/privacy.md rule 16). Partition selection (a
category list read off the data) adds its own ``delta_sel`` on top, stated as a part.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opacus.accountants.analysis import rdp as rdp_analysis

from tabsynth.errors import PrivacyBudgetExceeded, PrivacyConfigError
from tabsynth.privacy.config import check_epsilon
from tabsynth.privacy.spent import PrivacyPart, PrivacySpent

#: Rényi orders; the large ones keep the conversion tight when a release is very noisy.
ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [80, 128, 256, 512, 1024, 4096, 16384, 65536]
#: Opacus' notice that the best order is the first or last one tried: the epsilon is then an upper
#: bound that is a little loose, still valid; a user can do nothing about it.
OPTIMAL_ORDER_NOTICE = r".*Optimal order is the (smallest|largest) alpha.*"
#: The adjacency each privacy unit means, as the statement words it.
ADJACENCY = {"row": "add/remove-one-row adjacency",
             "person": "add/remove-one-person adjacency (a person with their subject row and all their events)"}
#: Largest DP-SGD noise multiplier we accept before calling the budget too small to train.
MAX_NOISE_MULTIPLIER = 50.0




#: Above this order the subsampled-Gaussian RDP is bounded by the full-batch one (cheap, valid).
_SUBSAMPLED_MAX_ORDER = 256


@functools.lru_cache(maxsize=4096)
def _rdp(noise_multiplier: float, sample_rate: float, steps: int) -> tuple[float, ...]:
    if sample_rate >= 1.0:
        return tuple(steps * a / (2 * noise_multiplier ** 2) for a in ORDERS)
    small = [a for a in ORDERS if a <= _SUBSAMPLED_MAX_ORDER]
    exact = rdp_analysis.compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=steps, orders=small)
    bound = [steps * a / (2 * noise_multiplier ** 2) for a in ORDERS if a > _SUBSAMPLED_MAX_ORDER]
    return tuple(list(exact) + bound)


def gaussian_rdp(noise_multiplier: float, sample_rate: float = 1.0, steps: int = 1) -> list[float]:
    """RDP curve over :data:`ORDERS` of a (subsampled) Gaussian mechanism."""
    return list(_rdp(float(noise_multiplier), float(sample_rate), int(steps)))


def rdp_to_dp(rdp: list[float], delta: float) -> float:
    """Smallest epsilon of an RDP curve at ``delta``."""
    if delta <= 0:
        return math.inf
    with warnings.catch_warnings():  # an end order only loosens the bound (e.g. sigma's search probes)
        warnings.filterwarnings("ignore", message=OPTIMAL_ORDER_NOTICE)
        eps, _ = rdp_analysis.get_privacy_spent(orders=ORDERS, rdp=rdp, delta=delta)
    return float(eps)


@dataclass
class Release:
    """One Gaussian release: what was measured, its L2 sensitivity and noise multiplier."""

    name: str
    noise_multiplier: float
    sample_rate: float = 1.0
    steps: int = 1
    mechanism: str = "gaussian"
    details: dict[str, Any] = field(default_factory=dict)

    def rdp(self) -> list[float]:
        return gaussian_rdp(self.noise_multiplier, self.sample_rate, self.steps)


class Accountant:
    """Tracks every release of one fit against the target (epsilon, delta).

    ``delta`` is split: ``delta_sel`` for partition selection (category lists read off the data),
    the rest for the RDP conversion of all Gaussian releases together.
    """

    def __init__(self, epsilon: float, delta: float, *, selection_delta_share: float = 0.25) -> None:
        self.epsilon = check_epsilon(epsilon)
        self._selection_share = selection_delta_share
        self.releases: list[Release] = []
        self.selection: dict[str, float] = {}
        #: The privacy unit neighbouring data sets differ by: "row", or "person" (their subject row
        #: and all their events, :mod:`tabsynth.privacy.persons`).
        self.unit = "row"
        #: The person key column's name when the unit is "person" (named in the statement), or None.
        self.unit_key: str | None = None
        self.set_delta(delta)

    def set_delta(self, delta: float) -> None:
        """Fix the final delta (once the noisy row count is known), before any selection is charged.

        Noise calibrated earlier at a larger planning delta is still accounted exactly: every part is
        converted at the final ``delta_rdp`` and training's noise is calibrated last, for the total."""
        if self.selection:
            raise PrivacyConfigError("delta cannot change after partition selection was charged")
        if not (0 < delta < 1):
            raise PrivacyConfigError(f"delta must be in (0, 1), got {delta!r}")
        self.delta = float(delta)
        self.delta_sel = self.delta * self._selection_share
        self.delta_rdp = self.delta - self.delta_sel

    # --- recording ------------------------------------------------------------------------------
    def add(self, release: Release) -> None:
        self.releases.append(release)

    def selection_delta(self, k: int) -> float:
        """Each of ``k`` partition selections' equal share of ``delta_sel``, rounded down where the float
        sum of the shares would otherwise put the stated total an ulp above ``delta``."""
        share = self.delta_sel / max(k, 1)
        while k and share > 0 and self.delta_rdp + float(sum([share] * k)) > self.delta:
            share = math.nextafter(share, 0.0)
        return share

    def add_selection(self, name: str, delta: float) -> None:
        """Partition selection that may reveal a value held by one row with probability ``delta``."""
        self.selection[name] = delta

    def rdp(self, extra: Sequence[Release] = ()) -> list[float]:
        total = [0.0] * len(ORDERS)
        for r in [*self.releases, *extra]:
            total = [a + b for a, b in zip(total, r.rdp())]
        return total

    def spent_epsilon(self, extra: Sequence[Release] = ()) -> float:
        return rdp_to_dp(self.rdp(extra), self.delta_rdp)

    # --- calibration ----------------------------------------------------------------------------
    def preprocessing_noise(self, share: float, sensitivity: float) -> float:
        """Noise multiplier (std / L2 sensitivity) making the preprocessing release alone
        ``(share * epsilon, delta_rdp)``-DP."""
        target = share * self.epsilon
        lo, hi = 0.05, 1e4
        if rdp_to_dp(gaussian_rdp(hi), self.delta_rdp) > target:
            raise PrivacyBudgetExceeded(
                f"epsilon={self.epsilon:g} is too small to train: its preprocessing share ({share:g}) cannot "
                f"measure anything; use epsilon >= {0.01 / share:.2g} or a larger preprocessing_epsilon_share")
        while hi / lo > 1 + 1e-6:
            mid = math.sqrt(lo * hi)
            if rdp_to_dp(gaussian_rdp(mid), self.delta_rdp) > target:
                lo = mid
            else:
                hi = mid
        return hi * sensitivity

    def training_noise(self, sample_rate: float, steps: int) -> float:
        """Smallest DP-SGD noise multiplier keeping the whole fit within (epsilon, delta)."""
        def total(sigma: float) -> float:
            return self.spent_epsilon([Release("training", sigma, sample_rate, steps)])

        if total(MAX_NOISE_MULTIPLIER) > self.epsilon:
            raise PrivacyBudgetExceeded(self._too_small(sample_rate, steps))
        lo, hi = 0.3, MAX_NOISE_MULTIPLIER
        if total(lo) <= self.epsilon:
            return lo
        while hi - lo > 1e-4 * hi:
            mid = (lo + hi) / 2
            if total(mid) > self.epsilon:
                lo = mid
            else:
                hi = mid
        return hi

    def _too_small(self, sample_rate: float, steps: int) -> str:
        need = self.spent_epsilon([Release("training", MAX_NOISE_MULTIPLIER / 5, sample_rate, steps)])
        return (f"epsilon={self.epsilon:g} is too small to train: {steps} DP steps at sample rate "
                f"{sample_rate:.4g} would need a noise multiplier above {MAX_NOISE_MULTIPLIER:g}, which "
                f"learns nothing. With these settings epsilon >= {need:.2g} trains with noise multiplier "
                f"{MAX_NOISE_MULTIPLIER / 5:g}; or use more rows, fewer epochs, or a smaller batch_size")

    # --- statement ------------------------------------------------------------------------------
    def statement(self, randomness: str = "fresh", assumptions: dict[str, Any] | None = None) -> PrivacySpent:
        """The (epsilon, delta) actually spent, with each part alone; ``randomness`` names the noise
        source (:mod:`tabsynth.privacy.randomness`), ``assumptions`` what the fit took as public."""
        parts = {}
        for r in self.releases:
            eps = rdp_to_dp(r.rdp(), self.delta_rdp)
            details = {"noise_multiplier": r.noise_multiplier, "sample_rate": r.sample_rate, "steps": r.steps,
                       **r.details}
            parts[r.name] = PrivacyPart(r.name, eps, self.delta_rdp, r.mechanism, details)
        if self.selection:
            parts["partition_selection"] = PrivacyPart(
                "partition_selection", 0.0, float(sum(self.selection.values())),
                "thresholded Gaussian counts (category lists read off the data)",
                {"columns": dict(self.selection)})
        total_delta = self.delta_rdp + float(sum(self.selection.values()))
        eps = self.spent_epsilon()
        return PrivacySpent(
            epsilon=eps, delta=total_delta, parts=parts, accountant="rdp",
            composition="Renyi DP composition of all Gaussian parts at delta_rdp, plus the partition-selection "
                        f"delta; {ADJACENCY[self.unit]}",
            randomness=randomness, assumptions=assumptions, unit=self.unit,
            unit_key=self.unit_key if self.unit == "person" else None,
        )
