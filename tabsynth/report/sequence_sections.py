"""The sections only a person table with its event table has: events per person, per-person
aggregates, transitions between consecutive events, and the order and declared rules met.

Each similarity is computed twice, as in the fidelity section: real against synthetic, and real
against a reference sample of real persons (the holdout, else the other half of the real persons),
so that a score can be read against what fresh real data scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tabsynth.datasets import Sequences
from tabsynth.report._common import NUMERIC_KINDS, Prepared, fmt, traffic
from tabsynth.report.section import Section, threshold_check
from tabsynth.report.sequences import (
    Rules,
    as_number,
    filled,
    ks_complement,
    mean_of,
    previous,
    summary,
    tv_complement,
)

THRESHOLDS = {"green": 0.85, "amber": 0.70}
#: Share of persons whose events meet the order and the declared bounds.
ORDER_THRESHOLDS = {"green": 1.0, "amber": 0.95}


# --------------------------------------------------------------------------- events per person
def _count_summary(counts: pd.Series) -> dict[str, Any]:
    v = counts.to_numpy(dtype=float)
    return {"persons": int(v.size), "events": int(v.sum()), "mean": float(v.mean()), "median": float(np.median(v)),
            "p90": float(np.percentile(v, 90)), "max": int(v.max()), "share_without_events": float((v == 0).mean())}


def events_per_person_scores(real: pd.Series, syn: pd.Series, ref_base: pd.Series, ref: pd.Series) -> dict[str, Any]:
    """Distribution of events per person: TV complement (the score) and KS complement, with shares."""
    top = int(max(real.max(), syn.max()))
    shares = {side: (s.value_counts(normalize=True).reindex(range(top + 1), fill_value=0.0)).to_numpy()
              for side, s in (("real", real), ("synthetic", syn))}
    score = tv_complement(real, syn)
    return {
        "score": score, "reference_score": tv_complement(ref_base, ref),
        "score_definition": "1 - total-variation distance between the real and synthetic distributions of the "
                            "number of events per person",
        "ks_complement": ks_complement(real, syn), "reference_ks_complement": ks_complement(ref_base, ref),
        "real": _count_summary(real), "synthetic": _count_summary(syn),
        "distribution": {"events": list(range(top + 1)), **shares},
        "thresholds": dict(THRESHOLDS),
    }


# --------------------------------------------------------------------------- aggregates
def aggregate_scores(prep: Prepared, names: dict[str, str], frames: dict[str, pd.DataFrame],
                     source: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Each per-person aggregate compared as a table: summaries of both sides, KS complement for
    numbers and TV complement for categories, against the reference."""
    R, S, RB, RF = (frames[k] for k in ("real", "synthetic", "ref_base", "ref"))
    rows: list[dict[str, Any]] = []
    for name, kind in names.items():
        numeric = kind in NUMERIC_KINDS
        score_of = ks_complement if numeric else tv_complement
        column, stat = source[name]
        rows.append({"aggregate": name, "column": column, "statistic": stat,
                     "metric": "KSComplement" if numeric else "TVComplement",
                     "real": summary(R[name], numeric), "synthetic": summary(S[name], numeric),
                     "score": score_of(R[name], S[name]), "reference": score_of(RB[name], RF[name])})
    rows.sort(key=lambda r: r["score"] if r["score"] is not None else 1.0)
    return {"score": mean_of([r["score"] for r in rows]), "reference_score": mean_of([r["reference"] for r in rows]),
            "score_definition": "mean over the aggregates (first, last and mean of each numeric event column; first, "
                                "last and number of distinct values of each categorical one) of the KS complement "
                                "(numbers) or TV complement (categories) of their per-person distributions",
            "per_aggregate": rows, "thresholds": dict(THRESHOLDS)}


# --------------------------------------------------------------------------- transitions
def _lag_correlation(prev: np.ndarray, cur: np.ndarray) -> float | None:
    ok = np.isfinite(prev) & np.isfinite(cur)
    if ok.sum() < 3 or np.std(prev[ok]) == 0 or np.std(cur[ok]) == 0:
        return None
    return float(np.corrcoef(prev[ok], cur[ok])[0, 1])


def _numeric_transition(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    ra, rb = _lag_correlation(*a), _lag_correlation(*b)
    corr = None if ra is None or rb is None else 1.0 - abs(ra - rb) / 2.0
    changes = ks_complement(a[1] - a[0], b[1] - b[0])
    return {"lag_correlation": {"real": ra, "other": rb, "similarity": corr},
            "changes_ks_complement": changes, "score": mean_of([corr, changes])}


def _categorical_transition(a: tuple[pd.Series, pd.Series], b: tuple[pd.Series, pd.Series]) -> dict[str, Any]:
    def pairs(prev: pd.Series, cur: pd.Series) -> pd.Series:
        return filled(prev).astype(str) + "\x01" + filled(cur).astype(str)

    def stay(prev: pd.Series, cur: pd.Series) -> float | None:
        return float((filled(prev).to_numpy() == filled(cur).to_numpy()).mean()) if len(cur) else None

    score = tv_complement(pairs(*a), pairs(*b))
    return {"stay_share": {"real": stay(*a), "other": stay(*b)}, "transition_tv_complement": score, "score": score}


def _steps(events: pd.DataFrame, key: str, columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(previous event, this event) of every event that has a previous one."""
    prev = previous(events, key, columns)
    has_prev = events.groupby(key, sort=False).cumcount().to_numpy() > 0
    return prev[has_prev], events.loc[has_prev, columns]


def _transition_pair(prep: Prepared, a: pd.DataFrame, b: pd.DataFrame, key: str) -> dict[str, dict[str, Any]]:
    """Per column, the transition similarity of two ordered event tables."""
    (pa, ca), (pb, cb) = _steps(a, key, prep.columns), _steps(b, key, prep.columns)
    out = {}
    for c in prep.columns:
        if not len(ca) or not len(cb):
            out[c] = {"score": None}
        elif prep.kinds[c] in NUMERIC_KINDS:
            out[c] = _numeric_transition((pa[c].to_numpy(float), ca[c].to_numpy(float)),
                                         (pb[c].to_numpy(float), cb[c].to_numpy(float)))
        else:
            out[c] = _categorical_transition((pa[c], ca[c]), (pb[c], cb[c]))
    return out


def transition_scores(prep: Prepared, ordered: dict[str, pd.DataFrame], key: str) -> dict[str, Any]:
    """Each event column given the previous event's value: for categories the TV complement of the
    (previous, next) pairs, for numbers the lag-1 correlation and the distribution of changes."""
    syn = _transition_pair(prep, ordered["real"], ordered["synthetic"], key)
    ref = _transition_pair(prep, ordered["ref_base"], ordered["ref"], key)
    rows = [{"column": c, "kind": prep.kinds[c], **syn[c], "reference": ref[c]["score"]} for c in prep.columns]
    rows.sort(key=lambda r: r["score"] if r["score"] is not None else 1.0)
    pairs = {k: int((v.groupby(key, sort=False).cumcount() > 0).sum()) for k, v in ordered.items()
             if k in ("real", "synthetic")}
    return {"score": mean_of([r["score"] for r in rows]), "reference_score": mean_of([r["reference"] for r in rows]),
            "score_definition": "mean over event columns: for categories 1 - total-variation distance of the "
                                "(previous value, next value) pairs; for numbers the mean of 1 - |lag-1 correlation "
                                "difference| / 2 and the KS complement of the changes between consecutive events",
            "consecutive_pairs": pairs, "per_column": rows, "thresholds": dict(THRESHOLDS)}


# --------------------------------------------------------------------------- order and rules
def _share(bad: pd.Series) -> dict[str, Any]:
    n = int(bad.size)
    met = int((~bad).sum())
    return {"persons": n, "met": met, "share": met / n if n else None}


def rules_met(pair: Sequences, rules: Rules) -> dict[str, Any]:
    """Per rule, the persons (with events) whose every event meets it, in the table's row order."""
    key, ev = pair.key, pair.events
    keys = ev[key].to_numpy()
    v = as_number(ev[pair.order_by]) if pair.order_by is not None else None
    checks = {}
    if v is not None:
        checks["non_decreasing"] = (v - v.groupby(keys, sort=False).shift(1) < 0) | v.isna()
    for side, col in zip(("lower", "upper"), rules.bounds or (None, None)):
        if col is None or v is None:
            continue
        bound = ev[key].map(as_number(pair.subjects[col]).set_axis(pair.subjects[key].to_numpy()))
        checks[f"{side}_bound:{col}"] = (v < bound) if side == "lower" else (v > bound)
    for col in rules.non_decreasing:
        x = as_number(ev[col])
        previous = x.groupby(keys, sort=False).shift(1).groupby(keys, sort=False).ffill()
        checks[f"non_decreasing:{col}"] = x < previous
    per = {name: bad.groupby(keys, sort=False).any() for name, bad in checks.items()}
    all_bad = pd.concat(per.values(), axis=1).any(axis=1)
    return {"rules": {name: _share(bad) for name, bad in per.items()}, "all": _share(all_bad)}


def order_scores(real: Sequences, syn: Sequences, rules: Rules) -> dict[str, Any]:
    """The order and the declared rules met by the real and the synthetic persons."""
    if real.order_by is None and not rules.non_decreasing:
        return {"skipped": "no sequence column (order_by) was given: the row order is the sequence"}
    r, s = rules_met(real, rules), rules_met(syn, rules)
    return {"order_by": real.order_by, "order_bounds": list(rules.bounds) if rules.bounds else None,
            "non_decreasing": list(rules.non_decreasing),
            "real": r, "synthetic": s, "score": s["all"]["share"],
            "score_definition": "share of synthetic persons whose events, in the table's row order, never go back "
                                "in the sequence column, stay within the declared bounds and never lower a "
                                "column declared non_decreasing",
            "thresholds": dict(ORDER_THRESHOLDS)}


# --------------------------------------------------------------------------- cards
def similarity_section(name: str, title: str, what: str, part: dict[str, Any]) -> Section:
    """The card of a real-vs-synthetic similarity with its reference."""
    score = part.get("score")
    light = traffic(score, THRESHOLDS["green"], THRESHOLDS["amber"])
    text = f"{what}: similarity {fmt(score, 3)} (a fresh real sample scores {fmt(part.get('reference_score'), 3)})."
    return Section(name=name, title=title, score=score, verdict=light, explanation=text,
                   extra={"reference": part.get("reference_score")},
                   threshold=f"good >= {THRESHOLDS['green']}, fair >= {THRESHOLDS['amber']}",
                   check=threshold_check(score, THRESHOLDS["green"], THRESHOLDS["amber"], True, f"{name} score"),
                   next_step=(f"{what}: train longer, or check the columns listed first in its table."
                              if light in ("amber", "red") else None),
                   details=part)


def order_section(part: dict[str, Any]) -> Section:
    """The card of the order and declared rules: the share of synthetic persons meeting them all."""
    title = "Order and declared rules met"
    green, amber = ORDER_THRESHOLDS["green"], ORDER_THRESHOLDS["amber"]
    check = threshold_check(part.get("score"), green, amber, True, "share of persons meeting every rule")
    if "skipped" in part:
        return Section(name="order", title=title, score=None, verdict="grey", explanation=f"Not measured: "
                       f"{part['skipped']}.", check=check, details=part)
    score, syn = part["score"], part["synthetic"]["all"]
    light = traffic(score, green, amber)
    text = (f"{syn['met']:,} of {syn['persons']:,} synthetic persons ({fmt(score, 3)}) have their events in "
            f"non-decreasing {part['order_by']!r}" + (" within the declared bounds" if part["order_bounds"] else "")
            + f"; real persons: {fmt(part['real']['all']['share'], 3)}.")
    return Section(name="order", title=title, score=score, verdict=light, explanation=text,
                   threshold=f"good = {green} (every person), fair >= {amber}", check=check,
                   next_step=("Order: sort each person's events by the sequence column, or generate them with a "
                              "model that declares the order." if light in ("amber", "red") else None),
                   details=part)
