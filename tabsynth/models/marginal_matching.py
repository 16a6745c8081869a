"""For families with a ``marginal_weight``: under DP they pull the model towards noisy 1- and 2-way
marginals (post-processing), which a DP fit measures only when the weight is positive."""

from __future__ import annotations

from typing import Any


def _is_weight(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class MarginalMatching:
    """Mixin for a family whose constructor takes ``marginal_weight`` (put it before the base class)."""

    marginal_weight: Any

    def _uses_marginals(self) -> bool:
        """Whether a DP fit with these settings reads the noisy marginals: when the weight (resolved
        for DP if it has a DP default) is positive; an invalid one is reported by validation."""
        name = "marginal_weight"
        weight = self._resolved(name) if name in self._DEFAULTS else self.marginal_weight  # type: ignore[attr-defined]
        return _is_weight(weight) and weight > 0

    def _check_params(self) -> list[str]:
        weight = self.marginal_weight
        problems = [] if weight is None or (_is_weight(weight) and weight >= 0) else [
            f"marginal_weight must be a non-negative number, got {weight!r}"]
        return problems + super()._check_params()  # type: ignore[misc]
