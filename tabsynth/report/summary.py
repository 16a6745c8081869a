"""The summary card: one verdict per question, each with the number and threshold it was read from,
and next steps that follow from those numbers.

Every verdict carries a ``check``: the number it was judged on, the direction and the two
thresholds, so that anyone (and a test) can recompute the light from what the card shows.
"""

from __future__ import annotations

from typing import Any

from tabsynth.report._common import fmt, traffic

WORDS = {"green": "good", "amber": "fair", "red": "poor", "grey": "not measured"}


def _check(number: float | None, green: float, amber: float, higher_is_better: bool, measure: str,
           interval: tuple[float | None, float | None] | None = None) -> dict[str, Any]:
    out = {"number": number, "green": green, "amber": amber, "higher_is_better": higher_is_better,
           "measure": measure, "basis": "interval" if interval else "number"}
    if interval:
        out["low"], out["high"] = interval
    return out


def _fidelity(fid: dict, next_steps: list[str]) -> dict[str, Any]:
    from tabsynth.report.fidelity import THRESHOLDS

    score = fid.get("score")
    light = traffic(score, THRESHOLDS["green"], THRESHOLDS["amber"])
    worst = [r["column"] for r in fid.get("per_column", [])[:3]]
    disc = fid["discriminator"]["synthetic"].get("value")
    if light in ("amber", "red"):
        next_steps.append("Fidelity: train longer or with more capacity, and check the worst columns' plots.")
    return {"light": light, "score": score, "reference": fid.get("reference_score"),
            "text": (f"Fidelity {fmt(score, 3)} (a fresh real sample scores {fmt(fid.get('reference_score'), 3)}); "
                     f"a classifier tells synthetic from real rows with AUC {fmt(disc, 2)} (0.5 = cannot tell). "
                     f"Least faithful columns: {', '.join(map(str, worst))}."),
            "threshold": f"good >= {THRESHOLDS['green']}, fair >= {THRESHOLDS['amber']} (on the fidelity score)",
            "check": _check(score, THRESHOLDS["green"], THRESHOLDS["amber"], True, "fidelity score")}


def _utility(uti: dict, next_steps: list[str]) -> dict[str, Any]:
    from tabsynth.report.utility import THRESHOLDS

    if "skipped" in uti:
        return {"light": "grey", "score": None, "text": f"Utility not measured: {uti['skipped']}.", "threshold": "",
                "check": _check(None, THRESHOLDS["green"], THRESHOLDS["amber"], True, "utility score")}
    score = uti.get("score")
    light = traffic(score, THRESHOLDS["green"], THRESHOLDS["amber"])
    pm = uti["primary_metric"]
    name = pm.upper().replace("_", " ")
    tstr, trtr = uti["tstr"].get(pm), uti["trtr"].get(pm)
    if tstr is None:
        how = (f"Utility score {fmt(score, 3)}: no model could be trained on the synthetic rows "
               f"({'; '.join(uti.get('caveats', [])) or 'no prediction'})")
    elif pm == "roc_auc":
        how = (f"Utility score {fmt(score, 3)} = ({fmt(tstr, 3)} - 0.5) / ({fmt(trtr, 3)} - 0.5): the share of the "
               "real-trained model's gain over chance (AUC 0.5) that the synthetic-trained model keeps")
    else:
        how = f"Utility score {fmt(score, 3)} = {fmt(tstr, 3)} / {fmt(trtr, 3)}, the share of R2 kept"
    if light in ("amber", "red"):
        next_steps.append(f"Utility: the synthetic table loses predictive signal for {uti['target']!r}; "
                          "check column pair trends involving it.")
    return {"light": light, "score": score,
            "text": (f"A model trained on synthetic rows scores {name} {fmt(tstr, 3)} on real holdout rows, against "
                     f"{fmt(trtr, 3)} when trained on real rows (ratio TSTR / TRTR = {fmt(uti.get('ratio'), 3)}, "
                     f"1 = as good as real). {how}; the light is read from this score."),
            "threshold": f"good >= {THRESHOLDS['green']}, fair >= {THRESHOLDS['amber']} (on the utility score)",
            "check": _check(score, THRESHOLDS["green"], THRESHOLDS["amber"], True, "utility score")}


def _privacy(pri: dict, formal: dict, next_steps: list[str]) -> dict[str, Any]:
    from tabsynth.report.risk import RISK_THRESHOLDS as RT

    if pri.get("score") is None:
        return {"light": "grey", "score": None, "threshold": "",
                "text": "Empirical privacy not measured: " + pri.get("note", ""),
                "check": _check(None, RT["green"], RT["amber"], False, "the highest risk")}
    w = pri["worst_risk"]
    light = w["verdict"]
    ec = pri["exact_copies"]
    copies = ("no training row reproduced" if ec["copies"] == 0 else
              f"{ec['copies']:,} synthetic rows ({fmt(100 * ec['share_of_synthetic_in_training']['value'], 3)}%) "
              f"are exact copies of training rows (holdout rows: "
              f"{fmt(100 * ec['share_of_synthetic_in_holdout']['value'], 3)}%)")
    interval = pri["score_interval"]
    text = (f"{copies[0].upper() + copies[1:]}. Highest risk: {w['label']} = {fmt(w['value'], 3)} "
            f"[{fmt(_low(pri, w), 3)}, {fmt(_high(pri, w), 3)}]{_attacks_of(pri, w['name'])}.{_widest(pri)} Privacy score "
            f"{fmt(pri['score'], 3)} [{fmt(interval['low'], 3)}, {fmt(interval['high'], 3)}]. The highest risk "
            f"lies in [{fmt(w['low'], 3)}, {fmt(w['high'], 3)}] (the largest lower and upper ends of the risks' 95% "
            f"intervals): {_rank(w['low'], w['high'])}.")
    if light in ("amber", "red"):
        next_steps.append(_privacy_advice(pri, formal))
    return {"light": light, "score": pri["score"], "interval": interval, "text": text,
            "threshold": (f"low risk if that interval is <= {RT['green']}, high if it is all above "
                          f"{RT['amber']}, medium otherwise"),
            "check": _check(w["value"], RT["green"], RT["amber"], False, "the highest risk",
                            interval=(w["low"], w["high"]))}


def _widest(pri: dict) -> str:
    """The risk whose interval reaches highest, when it is not the highest point."""
    from tabsynth.report.privacy_risk import risk_label

    name = pri["worst_risk"].get("highest_upper_end")
    if name is None or name == pri["worst_risk"]["name"]:
        return ""
    r = pri["risk_intervals"][name]
    return (f" Least certain: {risk_label(name)} = {fmt(r['value'], 3)} [{fmt(r['low'], 3)}, {fmt(r['high'], 3)}]"
            f"{_attacks_of(pri, name)}.")


def _low(pri: dict, w: dict) -> float | None:
    return pri["risk_intervals"][w["name"]]["low"]


def _high(pri: dict, w: dict) -> float | None:
    return pri["risk_intervals"][w["name"]]["high"]


def _rank(low: float, high: float) -> str:
    from tabsynth.report.risk import RISK_THRESHOLDS as RT

    if high <= RT["green"]:
        return f"all of it <= {RT['green']}, low"
    if low > RT["amber"]:
        return f"all of it above {RT['amber']}, high"
    return f"not all <= {RT['green']} nor all above {RT['amber']}, medium"


def _attacks_of(pri: dict, name: str | None) -> str:
    if name and name.startswith("singling_out_"):
        n = pri["singling_out"][name.split("_")[-1]].get("attacks")
    elif name == "linkability" or (name and name.startswith("inference:")):
        n = pri.get("attack_count")
    else:
        return ""
    return f" from {n:,} attacks" if n else ""


def _privacy_advice(pri: dict, formal: dict) -> str:
    """What to do about the highest risk, from its interval, the copies and the formal guarantee."""
    from tabsynth.report.risk import RISK_THRESHOLDS as RT

    w = pri["worst_risk"]
    ec = pri["exact_copies"]
    steps = []
    if ec["copies"] > 0:
        steps.append(f"drop the {ec['copies']:,} synthetic rows that copy a training row")
    if w["low"] is not None and w["low"] <= RT["green"]:
        from tabsynth.report.privacy_risk import risk_label

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


def _formal(formal: dict, next_steps: list[str]) -> dict[str, Any]:
    from tabsynth.report.formal import EPSILON_THRESHOLDS as ET

    if formal["is_dp"]:
        text = f"Differential privacy: epsilon = {fmt(formal['epsilon'])}, delta = {fmt(formal['delta'])}" + (
            f" ({formal['accountant']} accountant)" if formal.get("accountant") else "") + "."
    else:
        text = formal["banner"]
        next_steps.append("Formal privacy: train with epsilon set to get a differential-privacy guarantee.")
    number = formal.get("epsilon") if formal["is_dp"] else (float("inf") if formal["status"] == "none" else None)
    return {"light": formal["verdict"], "score": None, "text": text,
            "threshold": f"strong: epsilon <= {ET['green']:g}, moderate: epsilon <= {ET['amber']:g} (conventions)",
            "check": _check(number, ET["green"], ET["amber"], False, "epsilon")}


def build_summary(fid: dict, uti: dict, pri: dict, formal: dict, caveats: list[str]) -> dict[str, Any]:
    """Verdicts, caveats and next steps of the summary card."""
    next_steps: list[str] = []
    verdicts = {"fidelity": _fidelity(fid, next_steps), "utility": _utility(uti, next_steps),
                "privacy": _privacy(pri, formal, next_steps), "formal_privacy": _formal(formal, next_steps)}
    for f in pri.get("flags", []):
        caveats.insert(0, f["message"])
    for v in verdicts.values():
        v["word"] = WORDS[v["light"]]
    return {"verdicts": verdicts, "caveats": caveats[:5], "next_steps": next_steps[:4]}
