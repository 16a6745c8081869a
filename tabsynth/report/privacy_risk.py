"""Empirical privacy risk: what an attacker holding the synthetic table can learn about training rows.

Every attack runs twice: against training rows (the *attack*) and against holdout rows that the
generator never saw (the *control*). Only the excess of attack over control is leakage; the rest
is what anyone learns from the population (risk = (attack - control) / (1 - control), the
anonymeter method, Giomi et al. 2023). Distances use a Gower-like encoding: numbers scaled by
the real range, categories one-hot so that a mismatch adds 1 to the squared distance; id columns
are left out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from tabsynth.report import plots
from tabsynth.report._common import Encoder, Prepared, auc_with_ci, clip01, wilson

#: risk <= green: low; <= amber: medium; above: high (the stated thresholds of every risk).
RISK_THRESHOLDS = {"green": 0.05, "amber": 0.15}
#: Relative tolerance of a correct numeric guess in the inference attack (anonymeter's default).
INFERENCE_TOLERANCE = 0.05
EQ, LE, GE, NA = 0, 1, 2, 3
_EPS = 1e-9


def _verdict(risk: float | None) -> str:
    if risk is None:
        return "grey"
    return "green" if risk <= RISK_THRESHOLDS["green"] else "amber" if risk <= RISK_THRESHOLDS["amber"] else "red"


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
    value = clip01(raw)
    out = {"value": value, "raw": raw, "low": clip01(raw - err), "high": clip01(raw + err),
           "attack": attack, "control": control, "verdict": _verdict(value)}
    if baseline is not None:
        out["baseline"] = baseline
        out["beats_baseline"] = bool(a > baseline["value"]) if baseline["value"] is not None else None
    return out


# --------------------------------------------------------------------------- exact copies
def _row_hashes(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    return pd.util.hash_pandas_object(df[cols], index=False).to_numpy()


def exact_copies(prep: Prepared, train: pd.DataFrame, syn: pd.DataFrame, holdout: pd.DataFrame | None,
                 raw: dict[str, pd.DataFrame | None]) -> dict[str, Any]:
    cols = prep.columns
    ht, hs = _row_hashes(train, cols), _row_hashes(syn, cols)
    in_train = np.isin(hs, ht)
    out: dict[str, Any] = {"synthetic_rows": int(len(syn)),
                           "share_of_synthetic_in_training": wilson(int(in_train.sum()), len(hs))}
    uniq_t, counts = np.unique(ht, return_counts=True)
    unique_train = uniq_t[counts == 1]
    out["unique_training_rows_reproduced"] = wilson(int(np.isin(unique_train, hs).sum()), len(unique_train))
    if holdout is not None:
        hh = _row_hashes(holdout, cols)
        out["share_of_synthetic_in_holdout"] = wilson(int(np.isin(hs, hh).sum()), len(hs))
        out["share_of_holdout_in_training"] = float(np.isin(hh, ht).mean())
        out["risk"] = residual_risk(out["share_of_synthetic_in_training"], out["share_of_synthetic_in_holdout"])
    # copied keys: an id value of the real table appearing in the synthetic one
    keys = {}
    rt, rs = raw.get("real"), raw.get("synthetic")
    if rt is not None and rs is not None:
        for c in prep.ids:
            a = rs[c].dropna().astype(str)
            keys[c] = float(a.isin(set(rt[c].dropna().astype(str))).mean()) if len(a) else 0.0
    out["id_values_copied"] = keys
    return out


# --------------------------------------------------------------------------- distances
def _knn(fit: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, len(fit))
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=-1).fit(fit)
    d, i = nn.kneighbors(query)
    if k == 1:
        d = np.c_[d, d]
        i = np.c_[i, i]
    return d, i


def distances(enc: Encoder, T: pd.DataFrame, H: pd.DataFrame, S: pd.DataFrame) -> tuple[dict[str, Any], str]:
    et, eh, es = enc.transform(T), enc.transform(H), enc.transform(S)
    dt, _ = _knn(et, es, 2)
    dh, _ = _knn(eh, es, 2)
    closer = (dt[:, 0] < dh[:, 0] - _EPS).astype(float) + 0.5 * (np.abs(dt[:, 0] - dh[:, 0]) <= _EPS)

    def nndr(d: np.ndarray) -> np.ndarray:
        return np.where(d[:, 0] <= _EPS, 0.0, d[:, 0] / np.maximum(d[:, 1], _EPS))

    share = wilson(float(closer.sum()), len(closer))
    share_risk = clip01(2 * (share["value"] - 0.5))
    ds_t, _ = _knn(es, et, 1)
    ds_h, _ = _knn(es, eh, 1)
    mia = auc_with_ci(np.r_[np.ones(len(T)), np.zeros(len(H))], -np.r_[ds_t[:, 0], ds_h[:, 0]])
    mia_risk = None if mia["value"] is None else clip01(2 * (mia["value"] - 0.5))
    q = [5, 50]
    out = {
        "dcr_training": {f"p{p}": float(np.percentile(dt[:, 0], p)) for p in q},
        "dcr_holdout": {f"p{p}": float(np.percentile(dh[:, 0], p)) for p in q},
        "share_closer_to_training": {**share, "ideal": 0.5, "risk": share_risk, "verdict": _verdict(share_risk),
                                     "risk_definition": "2 * (share - 0.5), clipped to [0, 1]"},
        "nndr_training_p10": float(np.percentile(nndr(dt), 10)),
        "nndr_holdout_p10": float(np.percentile(nndr(dh), 10)),
        "membership_inference": {**mia, "ideal": 0.5, "risk": mia_risk, "verdict": _verdict(mia_risk),
                                 "method": "score = minus the distance from a candidate row to its closest synthetic "
                                           "row; AUC of telling training rows from holdout rows",
                                 "risk_definition": "2 * (AUC - 0.5), clipped to [0, 1]"},
    }
    return out, plots.distance_plot(dt[:, 0], dh[:, 0])


# --------------------------------------------------------------------------- singling out
def _numeric_view(prep: Prepared, frames: list[pd.DataFrame]) -> list[np.ndarray]:
    """Each table as a float matrix: numbers as they are, categories as shared codes, NaN missing."""
    mats = [np.empty((len(f), len(prep.columns))) for f in frames]
    for j, c in enumerate(prep.columns):
        if c in prep.numeric:
            for m, f in zip(mats, frames):
                m[:, j] = f[c].to_numpy(dtype=float)
        else:
            allv = pd.concat([f[c] for f in frames], ignore_index=True)
            codes, _ = pd.factorize(allv)
            codes = codes.astype(float)
            codes[codes < 0] = np.nan
            start = 0
            for m, f in zip(mats, frames):
                m[:, j] = codes[start:start + len(f)]
                start += len(f)
    return mats


def _count_matches(X: np.ndarray, cols: np.ndarray, vals: np.ndarray, ops: np.ndarray,
                   block: int = 256) -> np.ndarray:
    """Rows of X matching each conjunctive predicate (cols/vals/ops: predicates x terms)."""
    k = len(cols)
    counts = np.zeros(k, dtype=np.int64)
    for s in range(0, k, block):
        c, v, o = cols[s:s + block], vals[s:s + block], ops[s:s + block]
        mask = np.ones((len(c), len(X)), dtype=bool)
        for t in range(c.shape[1]):
            x = X[:, c[:, t]].T
            vt, ot = v[:, t:t + 1], o[:, t:t + 1]
            with np.errstate(invalid="ignore"):
                cond = np.where(ot == EQ, x == vt, np.where(ot == LE, x <= vt, np.where(ot == GE, x >= vt, np.isnan(x))))
            mask &= cond
        counts[s:s + block] = mask.sum(1)
    return counts


def _terms(values: np.ndarray, cols: np.ndarray, numeric: np.ndarray, medians: np.ndarray) -> np.ndarray:
    ops = np.where(np.isnan(values), NA, np.where(numeric[cols], np.where(values >= medians[cols], GE, LE), EQ))
    return ops


def singling_out(prep: Prepared, T: np.ndarray, H: np.ndarray, S: np.ndarray, n_attacks: int,
                 rng: np.random.Generator) -> dict[str, Any]:
    ncol = S.shape[1]
    numeric = np.array([c in prep.numeric for c in prep.columns])
    medians = np.array([np.nanmedian(S[:, j]) if np.isfinite(S[:, j]).any() else 0.0 for j in range(ncol)])
    out: dict[str, Any] = {}

    # univariate: values seen once in the synthetic table, and its extremes
    cols_l, vals_l, ops_l = [], [], []
    for j in range(ncol):
        col = S[:, j]
        fin = col[np.isfinite(col)]
        if fin.size == 0:
            continue
        u, cnt = np.unique(fin, return_counts=True)
        once = u[cnt == 1]
        cols_l += [j] * len(once)
        vals_l += once.tolist()
        ops_l += [EQ] * len(once)
        if numeric[j]:
            cols_l += [j, j]
            vals_l += [float(fin.min()), float(fin.max())]
            ops_l += [LE, GE]
    if cols_l:
        cols = np.array(cols_l)[:, None]
        vals = np.array(vals_l, dtype=float)[:, None]
        ops = np.array(ops_l)[:, None]
        keep = np.flatnonzero(_count_matches(S, cols, vals, ops) == 1)
        if len(keep) > n_attacks:
            keep = rng.choice(keep, n_attacks, replace=False)
        cols, vals, ops = cols[keep], vals[keep], ops[keep]
        out["univariate"] = _so_result(T, H, S, cols, vals, ops, numeric, medians, rng, 1)
    else:
        out["univariate"] = {"value": None, "verdict": "grey", "note": "no usable column"}

    # multivariate: 3 random columns with the values of one synthetic row
    p = min(3, ncol)
    # candidate predicates: as many as fit a fixed amount of work (predicates x synthetic rows)
    cand = int(max(n_attacks, min(10 * n_attacks, 1e8 // max(len(S), 1))))
    rows = rng.integers(0, len(S), cand)
    cols = np.argsort(rng.random((cand, ncol)), axis=1)[:, :p]
    vals = S[rows[:, None], cols]
    ops = _terms(vals, cols, numeric, medians)
    keep = np.flatnonzero(_count_matches(S, cols, vals, ops) == 1)[:n_attacks]
    out["multivariate"] = _so_result(T, H, S, cols[keep], vals[keep], ops[keep], numeric, medians, rng, p)
    out["method"] = ("the attacker writes predicates that isolate exactly one synthetic row (univariate: a value "
                     "seen once or an extreme; multivariate: 3 columns of one synthetic row); success = the "
                     "predicate isolates exactly one row of the target table")
    return out


def _so_result(T, H, S, cols, vals, ops, numeric, medians, rng, p) -> dict[str, Any]:
    n = len(cols)
    if n == 0:
        return {"value": None, "low": None, "high": None, "verdict": "grey", "attacks": 0,
                "note": "no predicate isolates a single synthetic row"}
    attack = wilson(int((_count_matches(T, cols, vals, ops) == 1).sum()), n)
    control = wilson(int((_count_matches(H, cols, vals, ops) == 1).sum()), n)
    # baseline: the same shape of predicate with values drawn at random from the synthetic columns
    bcols = np.argsort(rng.random((n, S.shape[1])), axis=1)[:, :p]
    bvals = S[rng.integers(0, len(S), (n, p)), bcols]
    bops = _terms(bvals, bcols, numeric, medians)
    baseline = wilson(int((_count_matches(T, bcols, bvals, bops) == 1).sum()), n)
    res = residual_risk(attack, control, baseline)
    res["attacks"] = int(n)
    return res


# --------------------------------------------------------------------------- linkability / inference
def _sample_idx(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(n, min(n, k), replace=False)


def linkability(prep: Prepared, Tdf, Hdf, Sdf, aux: tuple[list[str], list[str]], n_attacks: int,
                rng: np.random.Generator, n_neighbors: int = 1) -> dict[str, Any]:
    a_cols, b_cols = aux
    ea, eb = Encoder(prep, a_cols).fit(Tdf), Encoder(prep, b_cols).fit(Tdf)
    sa, sb = ea.transform(Sdf), eb.transform(Sdf)
    k = min(n_neighbors, len(Sdf))
    nna = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(sa)
    nnb = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(sb)

    def rate(df: pd.DataFrame) -> dict:
        idx = _sample_idx(len(df), n_attacks, rng)
        t = df.iloc[idx]
        ia = nna.kneighbors(ea.transform(t), return_distance=False)
        ib = nnb.kneighbors(eb.transform(t), return_distance=False)
        hit = (ia[:, :, None] == ib[:, None, :]).any(axis=(1, 2))
        return wilson(int(hit.sum()), len(idx))

    attack, control = rate(Tdf), rate(Hdf)
    n = attack["n"]
    ra = rng.integers(0, len(Sdf), (n, k))
    rb = rng.integers(0, len(Sdf), (n, k))
    baseline = wilson(int((ra[:, :, None] == rb[:, None, :]).any(axis=(1, 2)).sum()), n)
    res = residual_risk(attack, control, baseline)
    res.update({"aux_columns": [a_cols, b_cols], "n_neighbors": k,
                "method": "the attacker knows two disjoint sets of a person's columns (e.g. from two external "
                          "sources) and links them when both point to the same closest synthetic row"})
    return res


def inference(prep: Prepared, Tdf, Hdf, Sdf, secret: str, aux: list[str], n_attacks: int,
              rng: np.random.Generator) -> dict[str, Any]:
    enc = Encoder(prep, aux).fit(Tdf)
    nn = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(enc.transform(Sdf))
    s_secret = Sdf[secret].to_numpy()
    numeric = secret in prep.numeric

    def correct(guess: np.ndarray, truth: np.ndarray) -> np.ndarray:
        if numeric:
            g, t = guess.astype(float), truth.astype(float)
            with np.errstate(invalid="ignore"):
                ok = np.abs(g - t) <= INFERENCE_TOLERANCE * np.abs(t)
            return ok | (np.isnan(g) & np.isnan(t))
        gs, ts = pd.Series(guess), pd.Series(truth)
        return ((gs == ts) | (gs.isna() & ts.isna())).to_numpy()

    def rate(df: pd.DataFrame) -> tuple[dict, np.ndarray]:
        idx = _sample_idx(len(df), n_attacks, rng)
        t = df.iloc[idx]
        nb = nn.kneighbors(enc.transform(t), return_distance=False)[:, 0]
        truth = t[secret].to_numpy()
        return wilson(int(correct(s_secret[nb], truth).sum()), len(idx)), truth

    attack, truth = rate(Tdf)
    control, _ = rate(Hdf)
    guess = s_secret[rng.integers(0, len(Sdf), len(truth))]
    baseline = wilson(int(correct(guess, truth).sum()), len(truth))
    res = residual_risk(attack, control, baseline)
    res.update({"secret": secret, "aux_columns": aux,
                "method": f"the attacker knows {len(aux)} columns of a person and guesses {secret!r} from the "
                          "closest synthetic row" + (f" (correct within {INFERENCE_TOLERANCE:.0%})" if numeric else "")})
    return res


# --------------------------------------------------------------------------- section
def evaluate_privacy(prep: Prepared, train: pd.DataFrame, syn: pd.DataFrame, holdout: pd.DataFrame | None,
                     *, raw: dict[str, pd.DataFrame | None], quasi_identifiers: list[str], sensitive: list[str],
                     seed: int, max_rows: int, n_attacks: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(seed)
    section: dict[str, Any] = {"thresholds": dict(RISK_THRESHOLDS), "flags": []}
    copies = exact_copies(prep, train, syn, holdout, raw)
    section["exact_copies"] = copies
    share_copy = copies["share_of_synthetic_in_training"]["value"] or 0.0
    if share_copy >= 0.95:
        section["flags"].append({"flag": "synthetic_copies_training",
                                 "message": f"{share_copy:.0%} of synthetic rows are exact copies of training rows: "
                                            "the 'synthetic' table is (almost) the training table itself"})
    for c, share in copies["id_values_copied"].items():
        if share > 0:
            section["flags"].append({"flag": "id_values_copied",
                                     "message": f"{share:.1%} of the synthetic {c!r} values are real {c!r} values; "
                                                "regenerate keys before release"})
    figs: dict[str, Any] = {"distance": None}
    if holdout is None:
        section["status"] = "incomplete"
        section["note"] = ("no holdout given: only exact copies were checked; pass real rows that were not used to "
                           "train the generator as holdout to measure distances and attacks against a control")
        section["score"] = None
        return section, figs
    overlap = copies["share_of_holdout_in_training"]
    if overlap >= 0.5:
        section["flags"].append({"flag": "holdout_overlaps_training",
                                 "message": f"{overlap:.0%} of holdout rows also appear in the training table; "
                                            "the control is not independent and every risk below is understated"})
    m = min(len(train), len(holdout), max_rows)
    T = train.sample(m, random_state=seed) if len(train) > m else train
    H = holdout.sample(m, random_state=seed + 1) if len(holdout) > m else holdout
    S = syn.sample(max_rows, random_state=seed + 2) if len(syn) > max_rows else syn
    section["rows_used"] = {"training": int(len(T)), "holdout": int(len(H)), "synthetic": int(len(S))}
    if min(len(T), len(H), len(S)) < 2:
        section["status"] = "incomplete"
        section["note"] = "fewer than 2 rows in a table: distances and attacks were skipped"
        section["score"] = None
        return section, figs
    enc = Encoder(prep).fit(T)
    dist, figs["distance"] = distances(enc, T, H, S)
    section["distances"] = dist

    n_att = min(n_attacks, len(T), len(H))
    Tm, Hm, Sm = _numeric_view(prep, [T, H, S])
    section["singling_out"] = singling_out(prep, Tm, Hm, Sm, n_att, rng)
    qis = [c for c in quasi_identifiers if c in prep.columns]
    pool = qis if len(qis) >= 2 else list(prep.columns)
    if len(pool) >= 2:
        aux = (pool[0::2], pool[1::2])
        section["linkability"] = linkability(prep, T, H, S, aux, n_att, rng)
    else:
        section["linkability"] = {"value": None, "verdict": "grey", "note": "needs at least two columns"}
    section["inference"] = []
    for secret in [c for c in sensitive if c in prep.columns][:5]:
        aux = [c for c in (qis if qis else prep.columns) if c != secret]
        if not aux:
            aux = [c for c in prep.columns if c != secret]
        if aux:
            section["inference"].append(inference(prep, T, H, S, secret, aux, n_att, rng))
    section["attack_count"] = int(n_att)

    risks = {"exact_copies": copies["risk"]["value"],
             "closer_to_training": dist["share_closer_to_training"]["risk"],
             "membership_inference": dist["membership_inference"]["risk"],
             "singling_out_univariate": section["singling_out"]["univariate"].get("value"),
             "singling_out_multivariate": section["singling_out"]["multivariate"].get("value"),
             "linkability": section["linkability"].get("value")}
    for inf in section["inference"]:
        risks[f"inference:{inf['secret']}"] = inf["value"]
    known = {k: v for k, v in risks.items() if v is not None}
    section["risks"] = risks
    worst = max(known.items(), key=lambda kv: kv[1]) if known else (None, None)
    section["worst_risk"] = {"name": worst[0], "label": risk_label(worst[0]), "value": worst[1]}
    score = None if not known else 1.0 - worst[1]
    if any(f["flag"] == "synthetic_copies_training" for f in section["flags"]):
        score = 0.0
    section["score"] = score
    section["score_definition"] = "1 - the highest of the risks below (privacy high = low risk)"
    section["status"] = "complete"
    return section, figs


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
