"""Formal guarantee: the differential-privacy statement of the model that made the synthetic table."""

from __future__ import annotations

from typing import Any

from tabsynth.errors import ConfigError
from tabsynth.metadata import Metadata
from tabsynth.privacy import PrivacySpent
from tabsynth.privacy.unit import unit_label
from tabsynth.report._common import fmt
from tabsynth.report.budget import dp_changes, part_view
from tabsynth.report.section import Section, threshold_check

#: epsilon <= green: strong; <= amber: moderate; above: weak (conventions, not law).
EPSILON_THRESHOLDS = {"green": 1.0, "amber": 10.0}

NOT_COVERED = [
    "the column names, kinds and order (the schema) are taken as public",
    "the number of synthetic rows asked for",
    "choices made by looking at the real data outside the model (hyperparameter search, column selection)",
]
#: What each privacy unit leaves out of the guarantee.
NOT_COVERED_BY_UNIT = {
    "row": "people with several rows: the guarantee is per row, so a person with k rows is protected at "
           "roughly k times epsilon",
    "person": "the same human under two keys: each key is a person, protected separately",
}


def get_spent(model: Any) -> PrivacySpent | None:
    if model is None:
        return None
    if isinstance(model, PrivacySpent):
        return model
    fn = getattr(model, "privacy_spent", None)
    if not callable(fn):
        raise ConfigError(f"model must have a privacy_spent() method (a tabsynth model) or be a PrivacySpent; "
                          f"got {type(model).__name__}")
    spent = fn()
    if not isinstance(spent, PrivacySpent):
        raise ConfigError(f"model.privacy_spent() must return tabsynth.privacy.PrivacySpent, got "
                          f"{type(spent).__name__}")
    return spent


def formal_section(model: Any, meta: Metadata) -> dict[str, Any]:
    spent = get_spent(model)
    public = [{"column": n, "bounds": list(s.bounds) if s.bounds is not None else None,
               "categories": list(s.categories) if s.categories is not None else None}
              for n, s in meta.columns.items() if s.is_public]
    if spent is None:
        return {"is_dp": False, "status": "unknown", "verdict": "grey",
                "banner": "No formal privacy guarantee is known: no model was given to the report, so nothing "
                          "says how the synthetic table was made. Treat it as having no formal guarantee.",
                "thresholds": dict(EPSILON_THRESHOLDS)}
    if not spent.is_dp:
        return {"is_dp": False, "status": "none", "verdict": "red", "statement": spent.to_dict(),
                "banner": "No formal privacy guarantee: the model was trained without differential privacy. "
                          "Only the empirical tests below speak to privacy, and they cannot rule out attacks "
                          "they do not try.",
                "thresholds": dict(EPSILON_THRESHOLDS)}
    eps, unit = spent.epsilon, spent.unit
    what = "training row" if unit == "row" else "person (with their row in the person table and all their events)"
    verdict = "green" if eps <= EPSILON_THRESHOLDS["green"] else "amber" if eps <= EPSILON_THRESHOLDS["amber"] else "red"
    parts = []
    for key, part in spent.parts.items():
        parts.append({"key": key, "name": part.name, "epsilon": part.epsilon, "delta": part.delta,
                      "mechanism": part.mechanism, "details": dict(part.details), "view": part_view(part.details)})
    return {
        "is_dp": True, "status": "dp", "verdict": verdict,
        "epsilon": eps, "delta": spent.delta, "accountant": spent.accountant, "composition": spent.composition,
        "parts": parts, "dp_changes": dp_changes(spent.parts), "public_domains": public,
        "not_covered": NOT_COVERED + [NOT_COVERED_BY_UNIT[unit]],
        "unit": unit, "unit_key": spent.unit_key, "unit_label": unit_label(unit, spent.unit_key),
        "neighbours": spent.neighbours,
        "statement": spent.to_dict(),
        "meaning": (f"({eps:.3g}, {spent.delta:.3g})-differential privacy {unit_label(unit, spent.unit_key)}. "
                    f"{spent.neighbours}: whatever an attacker does with the "
                    f"synthetic table, adding or removing any one {what} changes the probability of any "
                    f"outcome by at most a factor of e^{eps:.3g} = {2.718281828 ** eps:.3g}, except with "
                    f"probability {spent.delta:.3g}. Smaller epsilon is stronger."),
        "thresholds": dict(EPSILON_THRESHOLDS),
    }


def formal_privacy_section(formal: dict[str, Any]) -> Section:
    """The formal-privacy card: epsilon and delta when the model is DP, the banner otherwise."""
    if formal["is_dp"]:
        text = (f"Differential privacy {formal.get('unit_label', 'per row')}: epsilon = {fmt(formal['epsilon'])}, "
                f"delta = {fmt(formal['delta'])}") + (
            f" ({formal['accountant']} accountant)" if formal.get("accountant") else "") + "."
    else:
        text = formal["banner"]
    number = formal.get("epsilon") if formal["is_dp"] else (float("inf") if formal["status"] == "none" else None)
    ET = EPSILON_THRESHOLDS
    return Section(
        name="formal_privacy", title="Formal privacy: is there a mathematical guarantee?", score=None,
        verdict=formal["verdict"], explanation=text, scored=False,
        threshold=f"strong: epsilon <= {ET['green']:g}, moderate: epsilon <= {ET['amber']:g} (conventions)",
        check=threshold_check(number, ET["green"], ET["amber"], False, "epsilon"),
        next_step=(None if formal["is_dp"] else
                   "Formal privacy: train with epsilon set to get a differential-privacy guarantee."),
        details=formal)
