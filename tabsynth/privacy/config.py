"""The DP settings of a fit (:class:`DPConfig`) and the one delta policy models and releases share.

Every DP value is validated here once: a model's ``epsilon=`` / ``delta=`` / ``max_grad_norm=``
keywords and a release's budget all pass through these checks (docs/privacy.md rule 3).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from tabsynth.errors import PrivacyConfigError

#: Delta the noise of the first releases is calibrated at when the user gives none: the largest
#: value the default ``min(1e-5, n_hat ** -1.5)`` can take, since ``n_hat`` is measured by them.
PLANNING_DELTA = 1e-5

#: How DP-SGD clips: Opacus' fast gradient clipping (norms without per-sample gradients) or hooks.
GRAD_SAMPLE_MODES = ("ghost", "hooks")

#: The largest delta a release may reserve. A constant, checked before anything is read: a cap
#: of ``1/n`` there would need the exact row count, and whether a delta is refused would tell it.
MAX_RELEASE_DELTA = PLANNING_DELTA


def check_epsilon(epsilon: Any, name: str = "epsilon") -> float:
    """``epsilon`` as a float, or :class:`PrivacyConfigError` unless it is a finite number > 0."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) and not hasattr(epsilon, "__float__"):
        raise PrivacyConfigError(f"{name} must be a positive number, got {epsilon!r}")
    value = float(epsilon)
    if not math.isfinite(value) or value <= 0:
        raise PrivacyConfigError(f"{name} must be a finite number greater than 0, got {epsilon!r}")
    return value


def check_delta(delta: Any, name: str = "delta") -> float:
    """``delta`` as a float, or :class:`PrivacyConfigError` unless 0 <= delta < 1."""
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) and not hasattr(delta, "__float__"):
        raise PrivacyConfigError(f"{name} must be a number in [0, 1), got {delta!r}")
    value = float(delta)
    if not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise PrivacyConfigError(f"{name} must be in [0, 1), got {delta!r}")
    return value


def default_delta(n: int) -> float:
    """``min(1e-5, n ** -1.5)`` for the *noisy* row count ``n`` (docs/privacy.md rule 3)."""
    return min(PLANNING_DELTA, float(n) ** -1.5)


def resolve_delta(delta: float | None, n: int | None, cap: float | None = None) -> float:
    """The default ``min(1e-5, n ** -1.5, cap)``; refuse ``delta >= 1/n`` (docs/privacy.md rule 3).

    ``n`` is the noisy row count under DP; with ``n=None`` only the value itself is checked. ``cap``
    is what a release reserved for a fit that was given no delta."""
    if delta is None:
        value = default_delta(n) if n is not None else PLANNING_DELTA
        return min(value, cap) if cap is not None else value
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < 1:
        raise PrivacyConfigError(f"delta must be in (0, 1), got {delta!r}")
    if n is not None and delta >= 1.0 / n:
        raise PrivacyConfigError(
            f"delta={delta:g} is not below 1/n_hat for the noisy row count n_hat={n} (a DP estimate, not the exact "
            f"count): such a delta allows publishing a whole row. Use delta <= {default_delta(n):.2g} (the default) "
            "or leave it unset")
    return float(delta)


def release_delta(total_epsilon: float, total_delta: float, epsilon: float) -> float:
    """A release's default delta: the ledger's delta in proportion to ``epsilon``, at most 1e-5, so
    that a budget serves as many releases by delta as by epsilon. It depends on the ledger alone,
    never on the row count."""
    if total_delta <= 0:
        raise PrivacyConfigError(f"the dataset's delta budget is {total_delta:g}, but DP-SGD training needs a delta "
                                 "above 0; raise the budget's delta (tabsynth ledger ... --set-budget E D)")
    share = total_delta * min(1.0, epsilon / total_epsilon)
    return float(min(share, PLANNING_DELTA))


@dataclass(frozen=True)
class DPConfig:
    """How one fit spends its privacy budget; validated when made.

    Args:
        epsilon, delta: the target (delta defaults to ``min(1e-5, n_hat ** -1.5)`` for the noisy row
            count ``n_hat``, and at most ``max_delta``).
        max_grad_norm: per-sample clipping norm of DP-SGD.
        preprocessing_epsilon_share: share of epsilon for the encoders' statistics and the row count.
        marginal_epsilon_share: share of epsilon for noisy 1- and 2-way marginals (0: none).
        secure_mode: draw every noise value and Poisson batch from the OS cryptographic RNG.
        grad_sample_mode: ``"ghost"`` (fast gradient clipping) or ``"hooks"`` (per-sample gradients).
        max_physical_batch_size: split each Poisson batch into physical batches of at most this many
            rows, so large logical batches fit in memory.
        max_delta: the delta a release reserved for this fit when none was given.
    """

    epsilon: float
    delta: float | None = None
    max_grad_norm: float = 1.0
    preprocessing_epsilon_share: float = 0.35
    marginal_epsilon_share: float = 0.15
    secure_mode: bool = False
    grad_sample_mode: str = "ghost"
    max_physical_batch_size: int | None = None
    max_delta: float | None = None

    def __post_init__(self) -> None:
        problems = []
        try:
            check_epsilon(self.epsilon)
        except PrivacyConfigError as exc:
            problems.append(str(exc))
        if self.delta is not None:
            try:
                resolve_delta(self.delta, None)
            except PrivacyConfigError as exc:
                problems.append(str(exc))
        c = self.max_grad_norm
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 0:
            problems.append(f"max_grad_norm must be positive, got {c!r}")
        share, m_share = self.preprocessing_epsilon_share, self.marginal_epsilon_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
            problems.append(f"preprocessing_epsilon_share must be in (0, 1), got {share!r}")
        if isinstance(m_share, bool) or not isinstance(m_share, (int, float)) or not 0 <= m_share < 1:
            problems.append(f"marginal_epsilon_share must be in [0, 1), got {m_share!r}")
        elif isinstance(share, (int, float)) and share + m_share >= 1:
            problems.append(f"preprocessing_epsilon_share + marginal_epsilon_share must be below 1 (training needs "
                            f"a share), got {share!r} + {m_share!r}")
        if not isinstance(self.secure_mode, bool):
            problems.append(f"secure_mode must be True or False, got {self.secure_mode!r}")
        if self.grad_sample_mode not in GRAD_SAMPLE_MODES:
            problems.append(f"grad_sample_mode={self.grad_sample_mode!r}: use 'hooks' or 'ghost'")
        m = self.max_physical_batch_size
        if m is not None and (not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < 1):
            problems.append(f"max_physical_batch_size must be a positive integer or None, got {m!r}")
        if self.max_delta is not None and (isinstance(self.max_delta, bool)
                                           or not isinstance(self.max_delta, (int, float))
                                           or not 0 < self.max_delta < 1):
            problems.append(f"max_delta must be in (0, 1) or None, got {self.max_delta!r}")
        if problems:
            raise PrivacyConfigError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DPConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise PrivacyConfigError(f"unknown DP settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)
