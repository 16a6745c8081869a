"""The summary card: one verdict per section, each with the number and threshold it was read from,
and next steps that follow from those numbers.

Every verdict carries a ``check``: the number it was judged on, the direction and the two
thresholds, so that anyone (and a test) can recompute the light from what the card shows. The card
knows no section by name: it reads the :class:`~tabsynth.report.section.Section` each one gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tabsynth.report.section import Section

#: At most this many caveats and next steps on the card.
MAX_CAVEATS = 5
MAX_NEXT_STEPS = 4


def section_scores(sections: Sequence[Section]) -> dict[str, float | None]:
    """Each scored section's 0-1 score (None when not computed), by name."""
    return {s.name: s.score for s in sections if s.scored}


def build_summary(sections: Sequence[Section], caveats: list[str]) -> dict[str, Any]:
    """Verdicts, caveats and next steps of the summary card.

    The sections' own caveats come first, the last raised at the top, then the report's.
    """
    raised = [c for s in sections for c in s.caveats]
    return {"verdicts": {s.name: s.card() for s in sections},
            "caveats": (raised[::-1] + list(caveats))[:MAX_CAVEATS],
            "next_steps": [s.next_step for s in sections if s.next_step][:MAX_NEXT_STEPS]}
