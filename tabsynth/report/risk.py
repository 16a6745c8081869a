"""Risk arithmetic shared by every privacy attack: the residual risk, its interval and its verdict.

A verdict is read off the 95% interval, not off the point: low when the whole interval lies at
or below the low threshold, high when the whole interval lies above the medium threshold, medium
otherwise (including when the attacks are too few to tell). So the same number shown with its
interval always gets the same word, and a rounded point near a threshold cannot mislead.
"""

from __future__ import annotations

import math
from typing import Any

from tabsynth.report._common import clip01

#: The two thresholds every risk is judged against (see risk_verdict).
RISK_THRESHOLDS = {"green": 0.05, "amber": 0.15}
RISK_RULE = (f"judged on its 95% interval: low if the whole interval is <= {RISK_THRESHOLDS['green']}, high if "
             f"the whole interval is above {RISK_THRESHOLDS['amber']}, medium otherwise")


def risk_verdict(low: float | None, high: float | None) -> str:
    """'green' / 'amber' / 'red' from a risk's interval ('grey' when not computed)."""
    if low is None or high is None:
        return "grey"
    if high <= RISK_THRESHOLDS["green"]:
        return "green"
    return "red" if low > RISK_THRESHOLDS["amber"] else "amber"


def bounded(raw: float, err: float) -> dict[str, Any]:
    """A risk with its symmetric error, clipped to [0, 1], and the verdict of its upper end."""
    value, low, high = clip01(raw), clip01(raw - err), clip01(raw + err)
    return {"value": value, "raw": raw, "low": low, "high": high, "verdict": risk_verdict(low, high)}


def residual_risk(attack: dict, control: dict, baseline: dict | None = None) -> dict[str, Any]:
    """anonymeter's risk = (attack - control) / (1 - control), with the error propagated."""
    a, c = attack["value"], control["value"]
    if a is None or c is None:
        return {"value": None, "low": None, "high": None, "verdict": "grey"}
    ea = (attack["high"] - attack["low"]) / 2
    ec = (control["high"] - control["low"]) / 2
    if c >= 1.0:
        raw, err = 0.0, 0.0
    else:
        raw = (a - c) / (1 - c)
        err = math.sqrt((ea / (1 - c)) ** 2 + (ec * (1 - a) / (1 - c) ** 2) ** 2)
    out = {**bounded(raw, err), "attack": attack, "control": control}
    if baseline is not None:
        out["baseline"] = baseline
        out["beats_baseline"] = bool(a > baseline["value"]) if baseline["value"] is not None else None
    return out


def worst_of(risks: dict[str, dict | None]) -> dict[str, Any]:
    """The highest risk, and where the true highest lies if every interval holds its risk; the
    verdict of that interval is the verdict of the table.

    The maximum of several noisy estimates is biased upward; the true maximum lies between the
    largest lower end and the largest upper end, which is the interval reported with it.
    """
    known = {k: r for k, r in risks.items() if r is not None and r.get("value") is not None}
    if not known:
        return {"name": None, "value": None, "low": None, "high": None, "verdict": "grey", "n_risks": 0,
                "highest_upper_end": None}
    name, r = max(known.items(), key=lambda kv: kv[1]["value"])
    low = max(x["low"] if x.get("low") is not None else x["value"] for x in known.values())
    high = max(x["high"] if x.get("high") is not None else x["value"] for x in known.values())
    widest = max(known, key=lambda k: known[k]["high"] if known[k].get("high") is not None else known[k]["value"])
    return {"name": name, "value": r["value"], "low": low, "high": high, "verdict": risk_verdict(low, high),
            "n_risks": len(known), "highest_upper_end": widest}
