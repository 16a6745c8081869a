"""The one shape every report section takes for the summary card.

Each section (fidelity, utility, empirical privacy, formal privacy) turns its numbers into a
:class:`Section`; the summary card and the HTML iterate over sections and know no section by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The word shown on the card for each light.
WORDS = {"green": "good", "amber": "fair", "red": "poor", "grey": "not measured"}


@dataclass(frozen=True)
class Section:
    """One question the report answers, with the verdict and the sentence the card shows for it.

    name: the key in ``summary.verdicts`` (and in ``Report.scores`` when ``scored``). title: the
    card's heading. score: in [0, 1], higher is better, None when not computed. verdict: the light,
    green / amber / red / grey. explanation: the sentence the card shows. threshold: the thresholds
    in words. check: the number the verdict was read from and its thresholds (see
    :func:`threshold_check`). extra: further numbers the card shows beside the score. next_step:
    advice when the verdict is amber or red. caveats: warnings the section raises for the card.
    scored: whether the section has a 0-1 score at all (formal privacy has epsilon instead).
    details: the section's own numbers, as written under its key in the report.
    """

    name: str
    title: str
    score: float | None
    verdict: str
    explanation: str
    threshold: str = ""
    check: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    next_step: str | None = None
    caveats: tuple[str, ...] = ()
    scored: bool = True
    details: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def card(self) -> dict[str, Any]:
        """The card entry as the JSON report holds it under ``summary.verdicts[name]``."""
        return {"light": self.verdict, "score": self.score, **self.extra, "text": self.explanation,
                "threshold": self.threshold, "check": dict(self.check), "word": WORDS[self.verdict]}


def threshold_check(number: float | None, green: float, amber: float, higher_is_better: bool, measure: str,
                    interval: tuple[float | None, float | None] | None = None) -> dict[str, Any]:
    """The number a verdict is judged on, its direction and its two thresholds, so that anyone can
    recompute the light from what the card shows."""
    out = {"number": number, "green": green, "amber": amber, "higher_is_better": higher_is_better,
           "measure": measure, "basis": "interval" if interval else "number"}
    if interval:
        out["low"], out["high"] = interval
    return out
