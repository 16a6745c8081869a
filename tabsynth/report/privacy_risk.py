"""Empirical privacy risk: what an attacker holding the synthetic table can learn about training rows.

Every attack runs twice: against training rows (the *attack*) and against holdout rows that the
generator never saw (the *control*). Only the excess of attack over control is leakage; the rest
is what anyone learns from the population (risk = (attack - control) / (1 - control), the
anonymeter method, Giomi et al. 2023). The attacks use the whole tables; the distances compare
equal-sized samples of training and holdout rows. Distances use a Gower-like encoding: numbers scaled by
the real range, categories one-hot so that a mismatch adds 1 to the squared distance; id columns
are left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from tabsynth.report import plots
from tabsynth.report._common import Encoder, Prepared, auc_with_ci, wilson
from tabsynth.report.risk import RISK_RULE, RISK_THRESHOLDS, bounded, residual_risk, risk_verdict, worst_of

__all__ = ["RISK_THRESHOLDS", "evaluate_privacy", "risk_label"]

_EPS = 1e-9


# --------------------------------------------------------------------------- exact copies
def _row_hashes(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    return pd.util.hash_pandas_object(df[cols], index=False).to_numpy()


def exact_copies(prep: Prepared, train: pd.DataFrame, syn: pd.DataFrame, holdout: pd.DataFrame | None,
                 raw: dict[str, pd.DataFrame | None]) -> dict[str, Any]:
    """Synthetic rows equal to a training row, against the rate at which they equal holdout rows."""
    cols = prep.columns
    ht, hs = _row_hashes(train, cols), _row_hashes(syn, cols)
    copies = int(np.isin(hs, ht).sum())
    out: dict[str, Any] = {"synthetic_rows": int(len(syn)), "copies": copies,
                           "share_of_synthetic_in_training": wilson(copies, len(hs))}
    uniq_t, counts = np.unique(ht, return_counts=True)
    unique_train = uniq_t[counts == 1]
    out["unique_training_rows_reproduced"] = wilson(int(np.isin(unique_train, hs).sum()), len(unique_train))
    if holdout is not None:
        hh = _row_hashes(holdout, cols)
        in_holdout = int(np.isin(hs, hh).sum())
        out["share_of_synthetic_in_holdout"] = wilson(in_holdout, len(hs))
        out["share_of_holdout_in_training"] = float(np.isin(hh, ht).mean())
        # a synthetic row meets a rare real row about in proportion to the real table's size
        scale = len(train) / max(len(holdout), 1)
        control = wilson(min(float(len(hs)), in_holdout * scale), len(hs))
        out["risk"] = {**residual_risk(out["share_of_synthetic_in_training"], control),
                       "control_scaled_to_training_rows": scale}
    rt, rs = raw.get("real"), raw.get("synthetic")
    out["id_values_copied"] = _copied_values(prep.ids, rt, rs, raw.get("holdout"))["share"]
    out["text_cells_copied"] = _copied_values(prep.texts, rt, rs, raw.get("holdout"))["by_column"]
    out["text_cells_copied_total"] = _total_copied(out["text_cells_copied"])
    return out


def _total_copied(by_column: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every free-text and personal-identifier column together: synthetic cells equal to a real cell."""
    cells = sum(t["synthetic_cells"] for t in by_column.values())
    copied = sum(t["copied"] for t in by_column.values())
    return {"columns": list(by_column), "synthetic_cells": int(cells), "copied": int(copied),
            "share": copied / cells if cells else 0.0}


def _copied_values(columns: list[str], real: pd.DataFrame | None, syn: pd.DataFrame | None,
                   holdout: pd.DataFrame | None) -> dict[str, Any]:
    """Per column, the synthetic non-missing cells that repeat a real cell verbatim (ids, free text)."""
    share: dict[str, Any] = {}
    by_column: dict[str, Any] = {}
    if real is None or syn is None:
        return {"share": share, "by_column": by_column}
    for c in columns:
        cells = syn[c].dropna().astype(str)
        hit = cells.isin(set(real[c].dropna().astype(str)))
        share[c] = float(hit.mean()) if len(cells) else 0.0
        entry = {"synthetic_cells": int(len(cells)), "copied": int(hit.sum()), "share": share[c],
                 "distinct_copied": int(cells[hit].nunique())}
        if holdout is not None:
            entry["share_equal_to_holdout"] = float(cells.isin(set(holdout[c].dropna().astype(str))).mean()) \
                if len(cells) else 0.0
        by_column[c] = entry
    return {"share": share, "by_column": by_column}


# --------------------------------------------------------------------------- distances
def _knn(fit: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, len(fit))
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=-1).fit(fit)
    d, i = nn.kneighbors(query)
    if k == 1:
        d = np.c_[d, d]
        i = np.c_[i, i]
    return d, i


def _above_half(x: dict) -> dict[str, Any]:
    """Risk 2 * (x - 0.5) of a rate or AUC whose ideal is one half, with its interval."""
    if x.get("value") is None:
        return {"value": None, "low": None, "high": None, "verdict": "grey"}
    raw = 2 * (x["value"] - 0.5)
    lo, hi = (2 * (x[k] - 0.5) if x.get(k) is not None else raw for k in ("low", "high"))
    out = bounded(raw, 0.0)
    out.update(low=min(1.0, max(0.0, lo)), high=min(1.0, max(0.0, hi)))
    out["verdict"] = risk_verdict(out["low"], out["high"])
    return out


def distances(enc: Encoder, T: pd.DataFrame, H: pd.DataFrame, S: pd.DataFrame) -> tuple[dict[str, Any], str]:
    et, eh, es = enc.transform(T), enc.transform(H), enc.transform(S)
    dt, _ = _knn(et, es, 2)
    dh, _ = _knn(eh, es, 2)
    closer = (dt[:, 0] < dh[:, 0] - _EPS).astype(float) + 0.5 * (np.abs(dt[:, 0] - dh[:, 0]) <= _EPS)

    def nndr(d: np.ndarray) -> np.ndarray:
        return np.where(d[:, 0] <= _EPS, 0.0, d[:, 0] / np.maximum(d[:, 1], _EPS))

    # repeated synthetic rows share one nearest neighbour: count each distinct row once, or a
    # generator that repeats a few rows would get a narrow interval from one coin flip
    _, distinct = np.unique(es, axis=0, return_index=True)
    share = wilson(float(closer[distinct].sum()), len(distinct))
    share["distinct_synthetic_rows"] = int(len(distinct))
    share_risk = _above_half(share)
    ds_t, _ = _knn(es, et, 1)
    ds_h, _ = _knn(es, eh, 1)
    mia = auc_with_ci(np.r_[np.ones(len(T)), np.zeros(len(H))], -np.r_[ds_t[:, 0], ds_h[:, 0]])
    mia_risk = _above_half(mia)
    q = [5, 50]
    out = {
        "dcr_training": {f"p{p}": float(np.percentile(dt[:, 0], p)) for p in q},
        "dcr_holdout": {f"p{p}": float(np.percentile(dh[:, 0], p)) for p in q},
        "share_closer_to_training": {**share, "ideal": 0.5, "risk": share_risk["value"], "risk_interval": share_risk,
                                     "verdict": share_risk["verdict"],
                                     "risk_definition": "2 * (share - 0.5), clipped to [0, 1]"},
        "nndr_training_p10": float(np.percentile(nndr(dt), 10)),
        "nndr_holdout_p10": float(np.percentile(nndr(dh), 10)),
        "membership_inference": {**mia, "ideal": 0.5, "risk": mia_risk["value"], "risk_interval": mia_risk,
                                 "verdict": mia_risk["verdict"],
                                 "method": "score = minus the distance from a candidate row to its closest synthetic "
                                           "row; AUC of telling training rows from holdout rows",
                                 "risk_definition": "2 * (AUC - 0.5), clipped to [0, 1]"},
    }
    return out, plots.distance_plot(dt[:, 0], dh[:, 0])


# --------------------------------------------------------------------------- section
def _flags(copies: dict[str, Any]) -> list[dict[str, str]]:
    flags = []
    share_copy = copies["share_of_synthetic_in_training"]["value"] or 0.0
    if share_copy >= 0.95:
        flags.append({"flag": "synthetic_copies_training",
                      "message": f"{share_copy:.0%} of synthetic rows are exact copies of training rows: "
                                 "the 'synthetic' table is (almost) the training table itself"})
    for c, share in copies["id_values_copied"].items():
        if share > 0:
            flags.append({"flag": "id_values_copied",
                          "message": f"{share:.1%} of the synthetic {c!r} values are real {c!r} values; "
                                     "regenerate keys before release"})
    for c, t in copies["text_cells_copied"].items():
        if t["copied"] > 0:
            flags.append({"flag": "text_cells_copied",
                          "message": f"{t['copied']:,} synthetic {c!r} cells ({t['share']:.1%}) repeat a real "
                                     f"{c!r} text verbatim; drop the column or replace it before release"})
    overlap = copies.get("share_of_holdout_in_training")
    if overlap is not None and overlap >= 0.5:
        flags.append({"flag": "holdout_overlaps_training",
                      "message": f"{overlap:.0%} of holdout rows also appear in the training table; "
                                 "the control is not independent and every risk below is understated"})
    return flags


def evaluate_privacy(prep: Prepared, train: pd.DataFrame, syn: pd.DataFrame, holdout: pd.DataFrame | None,
                     *, raw: dict[str, pd.DataFrame | None], quasi_identifiers: list[str], sensitive: list[str],
                     seed: int, max_rows: int, n_attacks: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Exact copies, distances and the three WP29 attacks; the privacy score with its interval."""
    rng = np.random.default_rng(seed)
    section: dict[str, Any] = {"thresholds": dict(RISK_THRESHOLDS), "rule": RISK_RULE}
    copies = exact_copies(prep, train, syn, holdout, raw)
    section["exact_copies"] = copies
    section["flags"] = _flags(copies)
    figs: dict[str, Any] = {"distance": None}
    if holdout is None or min(len(train), len(holdout), len(syn)) < 2:
        section["status"] = "incomplete"
        section["note"] = ("no holdout given: only exact copies were checked; pass real rows that were not used to "
                           "train the generator as holdout to measure distances and attacks against a control"
                           if holdout is None else "fewer than 2 rows in a table: distances and attacks were skipped")
        section["score"] = None
        return section, figs
    # distances compare equal-sized training and holdout samples (the 50% ideal needs equal sizes)
    m = min(len(train), len(holdout), max_rows)
    T = train.sample(m, random_state=seed) if len(train) > m else train
    H = holdout.sample(m, random_state=seed + 1) if len(holdout) > m else holdout
    S = syn.sample(max_rows, random_state=seed + 2) if len(syn) > max_rows else syn
    # scaled and coded on both real samples, so that neither is nearer the synthetic rows by encoding alone
    enc = Encoder(prep).fit(pd.concat([T, H], ignore_index=True))
    section["distances"], figs["distance"] = distances(enc, T, H, S)
    section["rows_used"] = {"training": int(len(T)), "holdout": int(len(H)), "synthetic": int(len(S))}
    section["attack_rows"] = {"training": int(len(train)), "holdout": int(len(holdout)), "synthetic": int(len(syn))}
    _attacks(section, prep, train, holdout, syn, quasi_identifiers, sensitive, n_attacks, rng)
    _score(section)
    section["status"] = "complete"
    return section, figs


def _attacks(section: dict[str, Any], prep: Prepared, train: pd.DataFrame, holdout: pd.DataFrame,
             syn: pd.DataFrame, quasi_identifiers: list[str], sensitive: list[str], n_attacks: int,
             rng: np.random.Generator) -> None:
    """Singling out, linkability and inference on the whole tables (no subsample cuts a copied pair)."""
    from tabsynth.report.attacks import inference_all, linkability
    from tabsynth.report.singling_out import numeric_view, singling_out

    Tm, Hm, Sm = numeric_view(prep, [train, holdout, syn])
    section["singling_out"] = singling_out(prep, Tm, Hm, Sm, n_attacks, rng)
    n_att = min(n_attacks, len(train), len(holdout))
    qis = [c for c in quasi_identifiers if c in prep.columns]
    pool = qis if len(qis) >= 2 else list(prep.columns)
    if len(pool) >= 2:
        section["linkability"] = linkability(prep, train, holdout, syn, (pool[0::2], pool[1::2]), n_att, rng)
    else:
        section["linkability"] = {"value": None, "verdict": "grey", "note": "needs at least two columns"}
    secrets = list(dict.fromkeys(c for c in [*sensitive, *qis] if c in prep.columns))
    section["inference"], section["inference_note"] = inference_all(prep, train, holdout, syn, secrets, qis,
                                                                    n_att, rng)
    section["attack_count"] = int(n_att)


def _score(section: dict[str, Any]) -> None:
    dist = section["distances"]
    risks = {"exact_copies": section["exact_copies"]["risk"],
             "closer_to_training": dist["share_closer_to_training"]["risk_interval"],
             "membership_inference": dist["membership_inference"]["risk_interval"],
             "singling_out_univariate": section["singling_out"]["univariate"],
             "singling_out_multivariate": section["singling_out"]["multivariate"],
             "linkability": section["linkability"]}
    for inf in section["inference"]:
        risks[f"inference:{inf['secret']}"] = inf
    section["risks"] = {k: v.get("value") for k, v in risks.items()}
    section["risk_intervals"] = {k: {"value": v.get("value"), "low": v.get("low"), "high": v.get("high"),
                                     "verdict": v.get("verdict", "grey")} for k, v in risks.items()}
    worst = worst_of(risks)
    worst["label"] = risk_label(worst["name"])
    section["worst_risk"] = worst
    if worst["value"] is None:
        section["score"], section["score_interval"] = None, None
    else:
        section["score"] = 1.0 - worst["value"]
        section["score_interval"] = {"value": section["score"], "low": 1.0 - worst["high"],
                                     "high": 1.0 - worst["low"]}
    if any(f["flag"] == "synthetic_copies_training" for f in section["flags"]):
        section["score"] = 0.0
        section["score_interval"] = {"value": 0.0, "low": 0.0, "high": 0.0}
    section["score_definition"] = ("1 - the highest of the risks below (privacy high = low risk); its interval "
                                   "runs from 1 - the highest upper end to 1 - the highest lower end of the risks' "
                                   "95% intervals")


_RISK_LABELS = {
    "exact_copies": "exact copies of training rows",
    "closer_to_training": "synthetic rows closer to training than to holdout rows",
    "membership_inference": "membership inference",
    "singling_out_univariate": "singling out by one column",
    "singling_out_multivariate": "singling out by several columns",
    "linkability": "linkability",
}


def risk_label(name: str | None) -> str:
    """Plain-language name of a risk key, for the summary card."""
    if name is None:
        return "n/a"
    if name.startswith("inference:"):
        return f"inference of {name.split(':', 1)[1]}"
    return _RISK_LABELS.get(name, name.replace("_", " "))
