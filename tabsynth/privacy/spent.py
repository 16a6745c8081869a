"""What a fit spent: the DP statement every model, report and release reads."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from tabsynth.privacy.unit import check_unit, neighbours, unit_label


@dataclass(frozen=True)
class PrivacyPart:
    """One private release inside a fit (a preprocessing statistic, the training run, ...)."""

    name: str
    epsilon: float
    delta: float
    mechanism: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PrivacySpent:
    """Total (epsilon, delta) of a fit and its parts; ``epsilon=inf`` means no formal guarantee."""

    epsilon: float
    delta: float
    parts: dict[str, PrivacyPart] = field(default_factory=dict)
    accountant: str | None = None
    composition: str | None = None
    #: Where the noise came from: "fresh" or "secure" (private), "reproducible" (tests: not private).
    randomness: str | None = None
    #: What the fit took as public without spending budget (the schema, declared domains).
    assumptions: dict[str, Any] | None = None
    #: The privacy unit neighbouring data sets differ by: "row", or "person" (their subject row and
    #: all their events, :mod:`tabsynth.privacy.unit`), with the person key column when known.
    unit: str = "row"
    unit_key: str | None = None

    def __post_init__(self) -> None:
        check_unit(self.unit, self.unit_key)

    @property
    def neighbours(self) -> str:
        """What neighbouring data sets differ by, as a sentence ("... differ by one row")."""
        return neighbours(self.unit, self.unit_key)

    @property
    def reproducible(self) -> bool:
        """True when the noise was derived from a seed: not private against anyone holding the seed."""
        return self.randomness == "reproducible"

    @property
    def is_dp(self) -> bool:
        return math.isfinite(self.epsilon)

    @classmethod
    def none(cls) -> PrivacySpent:
        """The statement of a model trained without differential privacy."""
        return cls(epsilon=math.inf, delta=0.0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["epsilon"] = self.epsilon if self.is_dp else "inf"
        d["parts"] = {k: asdict(v) for k, v in self.parts.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PrivacySpent:
        eps = math.inf if d.get("epsilon") in ("inf", None) else float(d["epsilon"])
        parts = {k: PrivacyPart(**v) for k, v in (d.get("parts") or {}).items()}
        return cls(epsilon=eps, delta=float(d.get("delta", 0.0)), parts=parts,
                   accountant=d.get("accountant"), composition=d.get("composition"),
                   randomness=d.get("randomness"), assumptions=d.get("assumptions"),
                   unit=d.get("unit") or "row", unit_key=d.get("unit_key"))

    def __str__(self) -> str:
        if not self.is_dp:
            return "no formal privacy guarantee (trained without differential privacy)"
        parts = ", ".join(f"{name} epsilon {part.epsilon:.3g}" if part.epsilon else f"{name} delta {part.delta:.2g}"
                          for name, part in self.parts.items())
        head = f"({self.epsilon:.3g}, {self.delta:.3g})-differential privacy"
        if self.reproducible:
            head = f"NOT PRIVATE: noise reproducible from a seed (test mode; would otherwise be {head})"
        unit = unit_label(self.unit, self.unit_key)
        return f"{head} ({unit}; {'RDP-composed: ' if self.composition else ''}{parts})" if parts else f"{head} ({unit})"
