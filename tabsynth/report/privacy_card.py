"""The empirical-privacy card: the highest risk with its interval, the copies, and what to do.

The card's verdict is that of the interval in which the true highest risk lies (see
:func:`tabsynth.report.risk.worst_of`), so the words follow from the numbers shown beside them.
"""

from __future__ import annotations

from typing import Any

from tabsynth.report._common import fmt
from tabsynth.report.privacy_risk import risk_label
from tabsynth.report.risk import RISK_THRESHOLDS as RT
from tabsynth.report.section import Section, threshold_check

TITLE = "Empirical privacy: do attacks succeed?"


def _copies(ec: dict[str, Any]) -> str:
    """How many synthetic rows copy a training row, beside the holdout rate."""
    if ec["copies"] == 0:
        return "no training row reproduced"
    return (f"{ec['copies']:,} synthetic rows ({fmt(100 * ec['share_of_synthetic_in_training']['value'], 3)}%) "
            f"are exact copies of training rows (holdout rows: "
            f"{fmt(100 * ec['share_of_synthetic_in_holdout']['value'], 3)}%)")


def _widest(pri: dict) -> str:
    """The risk whose interval reaches highest, when it is not the highest point."""
    name = pri["worst_risk"].get("highest_upper_end")
    if name is None or name == pri["worst_risk"]["name"]:
        return ""
    r = pri["risk_intervals"][name]
    return (f" Least certain: {risk_label(name)} = {fmt(r['value'], 3)} [{fmt(r['low'], 3)}, {fmt(r['high'], 3)}]"
            f"{_attacks_of(pri, name)}.")


def _rank(low: float, high: float) -> str:
    """The verdict of the highest risk's interval, in words."""
    if high <= RT["green"]:
        return f"all of it <= {RT['green']}, low"
    if low > RT["amber"]:
        return f"all of it above {RT['amber']}, high"
    return f"not all <= {RT['green']} nor all above {RT['amber']}, medium"


def _attacks_of(pri: dict, name: str | None) -> str:
    """How many attacks a risk was measured from, for the risks that come from attacks."""
    if name and name.startswith("singling_out_"):
        n = pri["singling_out"][name.split("_")[-1]].get("attacks")
    elif name == "linkability" or (name and name.startswith("inference:")):
        n = pri.get("attack_count")
    else:
        return ""
    return f" from {n:,} attacks" if n else ""


def _advice(pri: dict, formal: dict) -> str:
    """What to do about the highest risk, from its interval, the copies and the formal guarantee."""
    w = pri["worst_risk"]
    ec = pri["exact_copies"]
    steps = []
    if ec["copies"] > 0:
        steps.append(f"drop the {ec['copies']:,} synthetic rows that copy a training row")
    if w["low"] is not None and w["low"] <= RT["green"]:
        name = w.get("highest_upper_end") or w["name"]
        r = pri["risk_intervals"][name]
        steps.append(f"the interval of {risk_label(name)} reaches from {fmt(r['low'], 2)} to {fmt(r['high'], 2)}, "
                     "so the data do not tell a low risk from a high one: rerun the report with more attacks "
                     "(n_attacks=) or a larger holdout")
    if not formal.get("is_dp"):
        steps.append("train with differential privacy (epsilon set) or for fewer epochs")
    elif w["low"] is not None and w["low"] > RT["green"]:
        steps.append(f"the model is differentially private at epsilon {fmt(formal['epsilon'], 3)}; a smaller "
                     "epsilon bounds this risk more tightly")
    return f"Privacy: the highest risk is {w['label']}; " + "; ".join(steps) + "."


def _explanation(pri: dict) -> str:
    """The card's sentence: copies, the highest and the least certain risk, the score, the verdict's interval."""
    w = pri["worst_risk"]
    point = pri["risk_intervals"][w["name"]]
    interval = pri["score_interval"]
    copies = _copies(pri["exact_copies"])
    return (f"{copies[0].upper() + copies[1:]}. Highest risk: {w['label']} = {fmt(w['value'], 3)} "
            f"[{fmt(point['low'], 3)}, {fmt(point['high'], 3)}]{_attacks_of(pri, w['name'])}.{_widest(pri)} "
            f"Privacy score {fmt(pri['score'], 3)} [{fmt(interval['low'], 3)}, {fmt(interval['high'], 3)}]. "
            f"The highest risk lies in [{fmt(w['low'], 3)}, {fmt(w['high'], 3)}] (the largest lower and upper "
            f"ends of the risks' 95% intervals): {_rank(w['low'], w['high'])}.")


def privacy_section(pri: dict[str, Any], formal: dict[str, Any]) -> Section:
    """The empirical-privacy card (grey when the attacks were not run); ``formal`` shapes the advice.
    The flags (copies of the training table, copied ids and texts) become the card's caveats."""
    flags = tuple(f["message"] for f in pri.get("flags", []))
    if pri.get("score") is None:
        return Section(name="privacy", title=TITLE, score=None, verdict="grey",
                       explanation="Empirical privacy not measured: " + pri.get("note", ""),
                       check=threshold_check(None, RT["green"], RT["amber"], False, "the highest risk"),
                       caveats=flags, details=pri)
    w = pri["worst_risk"]
    light = w["verdict"]
    return Section(
        name="privacy", title=TITLE, score=pri["score"], verdict=light, explanation=_explanation(pri),
        extra={"interval": pri["score_interval"]},
        threshold=(f"low risk if that interval is <= {RT['green']}, high if it is all above "
                   f"{RT['amber']}, medium otherwise"),
        check=threshold_check(w["value"], RT["green"], RT["amber"], False, "the highest risk",
                              interval=(w["low"], w["high"])),
        next_step=_advice(pri, formal) if light in ("amber", "red") else None,
        caveats=flags, details=pri)
