"""Fidelity: how closely the synthetic table reproduces the real one, next to a fresh real sample.

Every number is computed twice: real vs synthetic, and real vs a *reference* sample of real rows
the same size as the synthetic sample (the holdout when given, otherwise the other half of the
real table). The reference tells what "as good as new real data" looks like.
"""

from __future__ import annotations

import warnings
from typing import Any, cast

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split

from tabsynth.report import plots
from tabsynth.report._common import ModelMatrix, Prepared, auc_with_ci, clip01, codes_for, fmt, traffic
from tabsynth.report.section import Section, threshold_check

#: Real categories with less than this share of real rows count as rare.
RARE_SHARE = 0.01
THRESHOLDS = {"green": 0.85, "amber": 0.70}
#: Rows per side for the real-vs-synthetic discriminator.
DISCRIMINATOR_ROWS = 5000


def _sdmetrics_frames(prep: Prepared, *dfs: pd.DataFrame) -> tuple[list[pd.DataFrame], dict]:
    md = {"columns": {c: {"sdtype": "numerical" if c in prep.numeric else "categorical"}
                      for c in prep.columns}}
    return [d[prep.columns].reset_index(drop=True) for d in dfs], md


def run_sdmetrics(prep: Prepared, real: pd.DataFrame, other: pd.DataFrame) -> dict[str, Any]:
    """sdmetrics' single-table QualityReport and DiagnosticReport, reused as they are."""
    with warnings.catch_warnings():  # sdmetrics 0.32 flags the single-table module as deprecated on import
        warnings.simplefilter("ignore", FutureWarning)
        from sdmetrics.reports.single_table import DiagnosticReport, QualityReport

    (r, o), md = _sdmetrics_frames(prep, real, other)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = QualityReport()
        q.generate(r, o, md, verbose=False)
        d = DiagnosticReport()
        d.generate(r, o, md, verbose=False)
        qprops = dict(zip(q.get_properties()["Property"], q.get_properties()["Score"]))
        shapes = q.get_details("Column Shapes")
        pairs = q.get_details("Column Pair Trends")
        dprops = dict(zip(d.get_properties()["Property"], d.get_properties()["Score"]))
        validity = d.get_details("Data Validity")
    pair_scores = pairs["Score"].to_numpy(dtype=float) if len(pairs) else np.array([])
    return {
        "quality_score": float(q.get_score()),
        "column_shapes": float(qprops.get("Column Shapes", np.nan)),
        "column_pair_trends": float(qprops.get("Column Pair Trends", np.nan)),
        "column_pair_trends_all_pairs": float(np.nanmean(pair_scores)) if np.isfinite(pair_scores).any() else None,
        "pairs_meeting_threshold": int(pairs["Meets Threshold?"].sum()) if "Meets Threshold?" in pairs else None,
        "pairs_total": int(len(pairs)),
        "diagnostic_score": float(d.get_score()),
        "data_validity": float(dprops.get("Data Validity", np.nan)),
        "data_structure": float(dprops.get("Data Structure", np.nan)),
        "per_column_shape": {str(c): float(s) for c, s in zip(shapes["Column"], shapes["Score"])},
        "per_column_metric": {str(c): str(m) for c, m in zip(shapes["Column"], shapes["Metric"])},
        "per_column_validity": {str(c): float(s) for c, s in zip(validity["Column"], validity["Score"])},
    }


def missing_rates(prep: Prepared, real: pd.DataFrame, syn: pd.DataFrame, ref: pd.DataFrame) -> list[dict]:
    r, s, h = (d[prep.columns].isna().mean() for d in (real, syn, ref))
    return [{"column": c, "real": float(r[c]), "synthetic": float(s[c]), "reference": float(h[c]),
             "abs_diff": float(abs(r[c] - s[c])), "reference_abs_diff": float(abs(r[c] - h[c]))}
            for c in prep.columns]


def _coverage(real: pd.Series, other: pd.Series) -> dict[str, Any]:
    freq = real.value_counts(normalize=True, dropna=True)
    present = set(other.dropna().unique())
    rare = freq.index[freq < RARE_SHARE]
    novel_rows = ~other.isin(set(freq.index)) & other.notna()
    return {
        "categories": int(len(freq)),
        "covered": float(np.mean([c in present for c in freq.index])) if len(freq) else None,
        "rare_categories": int(len(rare)),
        "rare_covered": float(np.mean([c in present for c in rare])) if len(rare) else None,
        "novel_row_share": float(novel_rows.mean()),
    }


def category_coverage(prep: Prepared, real: pd.DataFrame, syn: pd.DataFrame, ref: pd.DataFrame) -> list[dict]:
    out = []
    for c in prep.categorical:
        s, h = _coverage(real[c], syn[c]), _coverage(real[c], ref[c])
        out.append({"column": c, "categories": s["categories"], "rare_categories": s["rare_categories"],
                    "synthetic": {k: s[k] for k in ("covered", "rare_covered", "novel_row_share")},
                    "reference": {k: h[k] for k in ("covered", "rare_covered", "novel_row_share")}})
    return out


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    ka, kb = int(a.max()) + 1, int(b.max()) + 1
    table = np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb).astype(float)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    r, k = table.shape
    if r < 2 or k < 2:
        return 0.0
    n = table.sum()
    expected = table.sum(1, keepdims=True) @ table.sum(0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.sqrt(chi2 / (n * (min(r, k) - 1))))


def association_matrices(prep: Prepared, frames: list[pd.DataFrame]) -> list[np.ndarray]:
    """Cramér's V between every pair of columns (numerics in 10 quantile bins, missing as a value)."""
    cols = prep.columns
    codes = {c: codes_for(frames, c, c in prep.numeric) for c in cols}
    mats = [np.eye(len(cols)) for _ in frames]
    for i in range(len(cols)):
        for j in range(i + 1, len(cols)):
            for m, (a, b) in enumerate(zip(codes[cols[i]], codes[cols[j]])):
                v = _cramers_v(a, b)
                mats[m][i, j] = mats[m][j, i] = v
    return mats


def discriminator_auc(prep: Prepared, real: pd.DataFrame, other: pd.DataFrame, seed: int,
                      max_per_side: int = DISCRIMINATOR_ROWS) -> dict[str, Any]:
    """How well a gradient-boosting classifier tells real rows from the other table's.

    Equal numbers of rows from each table (at most ``max_per_side``); trained on one half,
    AUC measured on the other half.
    """
    n = min(len(real), len(other), max_per_side)
    if n < 20:
        return {"value": None, "low": None, "high": None, "rows_per_side": n}
    a = real.sample(n, random_state=seed) if len(real) > n else real
    b = other.sample(n, random_state=seed) if len(other) > n else other
    mm = ModelMatrix(prep, prep.columns).fit(a)
    X = np.vstack([mm.transform(a), mm.transform(b)])
    y = np.r_[np.zeros(n), np.ones(n)]
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, stratify=y, random_state=seed)
    clf = HistGradientBoostingClassifier(max_iter=100, categorical_features=mm.categorical_mask,
                                         random_state=seed, early_stopping=False).fit(X_tr, y_tr)
    res = auc_with_ci(y_te, clf.predict_proba(X_te)[:, 1])
    res["rows_per_side"] = n
    return res


def _disc_score(auc: float | None) -> float | None:
    return None if auc is None else clip01(1 - 2 * max(0.0, auc - 0.5))


def _score(sd: dict, disc: dict) -> float | None:
    """The fidelity score: mean of the shape, pair-trend and discriminator scores that could be computed."""
    parts = [sd["column_shapes"], sd["column_pair_trends_all_pairs"], _disc_score(disc["value"])]
    parts = [p for p in parts if p is not None and np.isfinite(p)]
    return float(np.mean(parts)) if parts else None


def _association(prep: Prepared, real: pd.DataFrame, syn: pd.DataFrame, ref: pd.DataFrame,
                 ref_base: pd.DataFrame) -> dict[str, Any]:
    """Association similarity of synthetic and reference to real, and the pairs the synthetic table
    distorts most, so that the card and the heatmap point at the relations that were lost."""
    mats = association_matrices(prep, [real, syn, ref_base, ref])
    diff_syn = np.abs(mats[0] - mats[1])
    diff_ref = np.abs(mats[2] - mats[3])
    iu = np.triu_indices(len(prep.columns), 1)
    worst_pairs = sorted(
        ({"columns": [prep.columns[i], prep.columns[j]], "real": float(mats[0][i, j]),
          "synthetic": float(mats[1][i, j]), "abs_diff": float(diff_syn[i, j])} for i, j in zip(*iu)),
        key=lambda d: -cast(float, d["abs_diff"]))[:10]
    return {"method": "Cramér's V for every column pair (numbers in 10 quantile bins, missing as its own value)",
            "synthetic_similarity": float(1 - diff_syn[iu].mean()) if iu[0].size else None,
            "reference_similarity": float(1 - diff_ref[iu].mean()) if iu[0].size else None,
            "columns": prep.columns, "abs_diff_synthetic": diff_syn, "worst_pairs": worst_pairs}


def _per_column(prep: Prepared, sd_syn: dict, sd_ref: dict) -> list[dict]:
    """Each column's shape score beside the reference's, worst first, so the plots show the worst."""
    per_column = [{"column": c, "kind": prep.kinds[c], "metric": sd_syn["per_column_metric"].get(c),
                   "synthetic": sd_syn["per_column_shape"].get(c), "reference": sd_ref["per_column_shape"].get(c),
                   "validity": sd_syn["per_column_validity"].get(c)} for c in prep.columns]
    per_column.sort(key=lambda d: (d["synthetic"] if d["synthetic"] is not None else 1.0))
    return per_column


def _plots(prep: Prepared, real: pd.DataFrame, syn: pd.DataFrame, per_column: list[dict], diff_syn: np.ndarray,
           max_plots: int) -> dict[str, Any]:
    """Plots of the ``max_plots`` least faithful columns and the association-difference heatmap."""
    figs: dict[str, Any] = {"columns": [], "heatmap": None}
    for row in per_column[:max_plots]:
        c = row["column"]
        figs["columns"].append({"column": c, "png": plots.column_plot(c, c in prep.numeric, real[c], syn[c],
                                                                       row["synthetic"])})
    if len(prep.columns) > 1:
        figs["heatmap"] = plots.heatmap(diff_syn, prep.columns,
                                        "Association difference |real - synthetic| (Cramér's V)")
    return figs


def evaluate_fidelity(prep: Prepared, real: pd.DataFrame, syn: pd.DataFrame, ref: pd.DataFrame,
                      ref_base: pd.DataFrame, *, reference_label: str, seed: int,
                      max_plots: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fidelity section (numbers) and its plots (base64 PNG)."""
    sd_syn = run_sdmetrics(prep, real, syn)
    sd_ref = run_sdmetrics(prep, ref_base, ref)
    association = _association(prep, real, syn, ref, ref_base)
    disc_syn = discriminator_auc(prep, real, syn, seed)
    disc_ref = discriminator_auc(prep, ref_base, ref, seed)
    per_column = _per_column(prep, sd_syn, sd_ref)
    section = {
        "score": _score(sd_syn, disc_syn),
        "reference_score": _score(sd_ref, disc_ref),
        "score_definition": "mean of Column Shapes, Column Pair Trends (all pairs) and discriminator score "
                            "1 - 2*max(0, AUC - 0.5)",
        "thresholds": dict(THRESHOLDS),
        "reference": reference_label,
        "sdmetrics": {"synthetic": {k: v for k, v in sd_syn.items() if not k.startswith("per_column")},
                      "reference": {k: v for k, v in sd_ref.items() if not k.startswith("per_column")}},
        "per_column": per_column,
        "missing_rates": missing_rates(prep, real, syn, ref),
        "category_coverage": category_coverage(prep, real, syn, ref),
        "association": association,
        "discriminator": {"synthetic": disc_syn, "reference": disc_ref,
                          "synthetic_score": _disc_score(disc_syn["value"]),
                          "reference_score": _disc_score(disc_ref["value"])},
    }
    figs = _plots(prep, real, syn, per_column, association["abs_diff_synthetic"], max_plots)
    section["plots_shown"] = len(figs["columns"])
    return section, figs

def fidelity_section(fid: dict[str, Any]) -> Section:
    """The fidelity card: the score against the reference, the discriminator, the worst columns."""
    score = fid.get("score")
    light = traffic(score, THRESHOLDS["green"], THRESHOLDS["amber"])
    worst = [r["column"] for r in fid.get("per_column", [])[:3]]
    disc = fid["discriminator"]["synthetic"].get("value")
    text = (f"Fidelity {fmt(score, 3)} (a fresh real sample scores {fmt(fid.get('reference_score'), 3)}); "
            f"a classifier tells synthetic from real rows with AUC {fmt(disc, 2)} (0.5 = cannot tell). "
            f"Least faithful columns: {', '.join(map(str, worst))}.")
    return Section(
        name="fidelity", title="Fidelity: does it look like the real data?", score=score, verdict=light,
        explanation=text, extra={"reference": fid.get("reference_score")},
        threshold=f"good >= {THRESHOLDS['green']}, fair >= {THRESHOLDS['amber']} (on the fidelity score)",
        check=threshold_check(score, THRESHOLDS["green"], THRESHOLDS["amber"], True, "fidelity score"),
        next_step=("Fidelity: train longer or with more capacity, and check the worst columns' plots."
                   if light in ("amber", "red") else None),
        details=fid)
