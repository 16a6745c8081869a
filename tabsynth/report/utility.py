"""Utility: is a model trained on the synthetic table as good as one trained on the real table?

Train-on-synthetic-test-on-real (TSTR) against train-on-real-test-on-real (TRTR) with
scikit-learn's HistGradientBoosting, always tested on the same holdout rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.inspection import permutation_importance
from sklearn.metrics import f1_score, mean_absolute_error, r2_score, roc_auc_score

from tabsynth.report._common import ModelMatrix, Prepared, clip01, fmt, traffic
from tabsynth.report.section import Section, threshold_check

THRESHOLDS = {"green": 0.9, "amber": 0.75}
#: Rows used to measure feature importance (permutation importance on the test rows).
IMPORTANCE_ROWS = 2000


def _model(task: str, mm: ModelMatrix, seed: int):
    kw = dict(max_iter=100, categorical_features=mm.categorical_mask, random_state=seed)
    return HistGradientBoostingClassifier(**kw) if task == "classification" else HistGradientBoostingRegressor(**kw)


def _scores(task: str, model, X: np.ndarray, y: np.ndarray, classes: list) -> dict[str, float | None]:
    if task == "regression":
        pred = model.predict(X)
        return {"r2": float(r2_score(y, pred)), "mae": float(mean_absolute_error(y, pred))}
    pred = model.predict(X)
    out: dict[str, float | None] = {"macro_f1": float(f1_score(y, pred, average="macro", labels=classes,
                                                                zero_division=0)),
                                    "accuracy": float(np.mean(pred == y))}
    proba = model.predict_proba(X)
    full = np.zeros((len(X), len(classes)))
    for j, c in enumerate(model.classes_):
        if c in classes:  # a class only the synthetic table has (e.g. a DP 'other') cannot be scored
            full[:, classes.index(c)] = proba[:, j]
    present = [c for c in classes if (y == c).any()]
    try:
        if len(classes) == 2:
            out["roc_auc"] = float(roc_auc_score(y == classes[1], full[:, 1]))
        elif len(present) > 1:
            cols = [classes.index(c) for c in present]
            p = full[:, cols]
            p = p / np.clip(p.sum(1, keepdims=True), 1e-12, None)
            out["roc_auc"] = float(roc_auc_score(y, p, multi_class="ovr", average="macro", labels=present))
        else:
            out["roc_auc"] = None
    except ValueError:
        out["roc_auc"] = None
    return out


def _fit(task: str, mm: ModelMatrix, X: np.ndarray, y: np.ndarray, seed: int):
    if task == "classification" and len(np.unique(y)) < 2:
        return None
    return _model(task, mm, seed).fit(X, y)


@dataclass(frozen=True)
class _Data:
    """The encoded training and test rows both models see, and what the target is."""

    task: str
    features: list[str]
    mm: ModelMatrix
    n_train: int
    n_test: int
    Xr: np.ndarray
    Xs: np.ndarray
    Xt: np.ndarray
    yr: np.ndarray
    ys: np.ndarray
    yt: np.ndarray
    classes: list

    @property
    def primary(self) -> str:
        return "roc_auc" if self.task == "classification" else "r2"


def _data(prep: Prepared, real: pd.DataFrame, syn: pd.DataFrame, holdout: pd.DataFrame, target: str,
          features: list[str], seed: int, max_rows: int) -> _Data:
    """Equal-sized real and synthetic training rows and the capped holdout, encoded the same way, so
    that the two models differ only in the table they learn from."""
    task = "classification" if prep.kinds[target] in ("categorical", "boolean") else "regression"
    real = real[real[target].notna()]
    syn = syn[syn[target].notna()]
    test = holdout[holdout[target].notna()]
    if len(test) > max_rows:
        test = test.sample(max_rows, random_state=seed)
    n_train = min(len(real), len(syn), max_rows)
    real_tr = real.sample(n_train, random_state=seed) if len(real) > n_train else real
    syn_tr = syn.sample(n_train, random_state=seed) if len(syn) > n_train else syn
    mm = ModelMatrix(prep, features).fit(real_tr)
    dtype = object if task == "classification" else float
    yr, ys, yt = (d[target].to_numpy(dtype=dtype) for d in (real_tr, syn_tr, test))
    classes = sorted(set(yr) | set(yt), key=str) if task == "classification" else []
    return _Data(task, features, mm, n_train, len(test), mm.transform(real_tr), mm.transform(syn_tr),
                 mm.transform(test), yr, ys, yt, classes)


def _headline(d: _Data, trtr: dict, tstr: dict, trained_on_synthetic: bool) -> tuple[float | None, float | None, str]:
    """TSTR / TRTR ratio, the utility score and its definition: for AUC the share of the real model's
    lift over chance, since an AUC of 0.5 is no utility at all."""
    primary = d.primary
    ratio = None
    if tstr.get(primary) is not None and trtr.get(primary):
        ratio = tstr[primary] / trtr[primary]
    if d.task == "classification":
        score = None if tstr.get(primary) is None or trtr.get(primary) is None else (
            0.0 if trtr[primary] <= 0.5 else clip01((tstr[primary] - 0.5) / (trtr[primary] - 0.5)))
        score_def = "(TSTR ROC AUC - 0.5) / (TRTR ROC AUC - 0.5): share of the real model's lift over chance"
    else:
        known = tstr.get("r2") is not None and trtr.get("r2") and trtr["r2"] > 0
        score = clip01(tstr["r2"] / trtr["r2"]) if known else None
        score_def = "TSTR R2 / TRTR R2"
    if not trained_on_synthetic:
        score = 0.0
    return ratio, score, score_def


def _importance_scoring(d: _Data):
    """The permutation-importance scorer: AUC of the positive class for two classes (robust to a class
    the synthetic model never saw), macro F1 for more, R2 for regression."""
    if d.task == "classification" and len(d.classes) == 2:
        pos = d.classes[1]

        def scoring(est, X, y):
            cols = list(est.classes_)
            p = est.predict_proba(X)[:, cols.index(pos)] if pos in cols else np.zeros(len(X))
            return roc_auc_score(y == pos, p) if 0 < (y == pos).sum() < len(y) else 0.5
        return scoring
    return "f1_macro" if d.task == "classification" else "r2"


def _importance(d: _Data, m_real, m_syn, seed: int) -> dict[str, Any]:
    """Whether both models rely on the same features: permutation importance on the same test rows,
    compared by rank correlation."""
    importance: dict[str, Any] = {"method": f"permutation importance on {min(d.n_test, IMPORTANCE_ROWS)} "
                                            "holdout rows, 2 repeats; agreement = Spearman rank correlation"}
    if m_syn is None or len(d.features) < 2:
        return importance
    idx = np.random.default_rng(seed).permutation(d.n_test)[:IMPORTANCE_ROWS]
    scoring = _importance_scoring(d)
    imps = [permutation_importance(m, d.Xt[idx], d.yt[idx], scoring=scoring, n_repeats=2,
                                   random_state=seed).importances_mean for m in (m_real, m_syn)]
    rho = spearmanr(imps[0], imps[1]).statistic if np.std(imps[0]) > 0 and np.std(imps[1]) > 0 else None
    importance.update({
        "agreement": None if rho is None or not np.isfinite(rho) else float(rho),
        "real": dict(zip(d.features, map(float, imps[0]))),
        "synthetic": dict(zip(d.features, map(float, imps[1]))),
        "top_real": [d.features[i] for i in np.argsort(-imps[0])[:5]],
        "top_synthetic": [d.features[i] for i in np.argsort(-imps[1])[:5]],
    })
    return importance


def _minority_rows(d: _Data) -> np.ndarray:
    """Indices of synthetic rows that would bring every real class up to the majority class's count."""
    counts = pd.Series(d.yr).value_counts()
    major = counts.max()
    add_idx = []
    for cls, cnt in counts.items():
        if cnt < major:
            pool = np.flatnonzero(d.ys == cls)
            add_idx.extend(pool[: major - cnt].tolist())
    return np.array(add_idx, dtype=int)


def _augmentation(d: _Data, trtr: dict, seed: int) -> dict[str, Any]:
    """Whether synthetic rows help a real model: real + synthetic, and real + synthetic minority rows,
    against real alone."""
    augmentation: dict[str, Any] = {"real_only": trtr}
    aug = _fit(d.task, d.mm, np.vstack([d.Xr, d.Xs]), np.r_[d.yr, d.ys], seed)
    augmentation["real_plus_synthetic"] = _scores(d.task, aug, d.Xt, d.yt, d.classes) if aug is not None else None
    if d.task == "classification":
        add = _minority_rows(d)
        if len(add):
            reb = _fit(d.task, d.mm, np.vstack([d.Xr, d.Xs[add]]), np.r_[d.yr, d.ys[add]], seed)
            augmentation["real_plus_synthetic_minority"] = _scores(d.task, reb, d.Xt, d.yt, d.classes)
            augmentation["minority_rows_added"] = int(len(add))
        else:
            augmentation["real_plus_synthetic_minority"] = None
            augmentation["minority_rows_added"] = 0
    for key in ("real_plus_synthetic", "real_plus_synthetic_minority"):
        s = augmentation.get(key)
        if isinstance(s, dict) and s.get(d.primary) is not None and trtr.get(d.primary) is not None:
            augmentation[key + "_gain"] = s[d.primary] - trtr[d.primary]
    return augmentation


def evaluate_utility(prep: Prepared, real: pd.DataFrame, syn: pd.DataFrame, holdout: pd.DataFrame,
                     target: str, *, seed: int, max_rows: int) -> dict[str, Any]:
    """Utility section: TSTR against TRTR on the holdout, feature-importance agreement, augmentation."""
    features = [c for c in prep.columns if c != target]
    if not features:
        return {"skipped": "the target is the only non-id column; there is nothing to predict it from"}
    d = _data(prep, real, syn, holdout, target, features, seed, max_rows)
    caveats: list[str] = []
    m_real = _fit(d.task, d.mm, d.Xr, d.yr, seed)
    m_syn = _fit(d.task, d.mm, d.Xs, d.ys, seed)
    if m_real is None or d.n_test == 0:
        return {"skipped": f"the real table or the holdout has a single value of {target!r}; utility needs two"}
    trtr = _scores(d.task, m_real, d.Xt, d.yt, d.classes)
    if m_syn is None:
        tstr: dict[str, float | None] = {k: None for k in trtr}
        caveats.append(f"the synthetic table has only one value of {target!r}: no model can be trained on it")
    else:
        tstr = _scores(d.task, m_syn, d.Xt, d.yt, d.classes)
    ratio, score, score_def = _headline(d, trtr, tstr, m_syn is not None)
    return {
        "task": d.task, "target": target, "primary_metric": d.primary,
        "train_rows": int(d.n_train), "test_rows": int(d.n_test),
        "model": "scikit-learn HistGradientBoosting (100 iterations, native categorical handling)",
        "trtr": trtr, "tstr": tstr, "ratio": ratio,
        "score": score, "score_definition": score_def, "thresholds": dict(THRESHOLDS),
        "feature_importance": _importance(d, m_real, m_syn, seed),
        "augmentation": _augmentation(d, trtr, seed), "caveats": caveats,
    }


def _utility_how(uti: dict[str, Any], score: float | None, tstr: float | None, trtr: float | None) -> str:
    """How the utility score follows from the TSTR and TRTR numbers shown beside it."""
    if tstr is None:
        return (f"Utility score {fmt(score, 3)}: no model could be trained on the synthetic rows "
                f"({'; '.join(uti.get('caveats', [])) or 'no prediction'})")
    if uti["primary_metric"] == "roc_auc":
        return (f"Utility score {fmt(score, 3)} = ({fmt(tstr, 3)} - 0.5) / ({fmt(trtr, 3)} - 0.5): the share of the "
                "real-trained model's gain over chance (AUC 0.5) that the synthetic-trained model keeps")
    return f"Utility score {fmt(score, 3)} = {fmt(tstr, 3)} / {fmt(trtr, 3)}, the share of R2 kept"


def utility_section(uti: dict[str, Any]) -> Section:
    """The utility card: TSTR against TRTR and how the score follows from them (grey when skipped)."""
    title = "Utility: can it train models?"
    if "skipped" in uti:
        return Section(name="utility", title=title, score=None, verdict="grey",
                       explanation=f"Utility not measured: {uti['skipped']}.",
                       check=threshold_check(None, THRESHOLDS["green"], THRESHOLDS["amber"], True, "utility score"),
                       details=uti)
    score = uti.get("score")
    light = traffic(score, THRESHOLDS["green"], THRESHOLDS["amber"])
    pm = uti["primary_metric"]
    tstr, trtr = uti["tstr"].get(pm), uti["trtr"].get(pm)
    text = (f"A model trained on synthetic rows scores {pm.upper().replace('_', ' ')} {fmt(tstr, 3)} on real "
            f"holdout rows, against {fmt(trtr, 3)} when trained on real rows (ratio TSTR / TRTR = "
            f"{fmt(uti.get('ratio'), 3)}, 1 = as good as real). {_utility_how(uti, score, tstr, trtr)}; the light "
            "is read from this score.")
    return Section(
        name="utility", title=title, score=score, verdict=light, explanation=text,
        threshold=f"good >= {THRESHOLDS['green']}, fair >= {THRESHOLDS['amber']} (on the utility score)",
        check=threshold_check(score, THRESHOLDS["green"], THRESHOLDS["amber"], True, "utility score"),
        next_step=(f"Utility: the synthetic table loses predictive signal for {uti['target']!r}; "
                   "check column pair trends involving it." if light in ("amber", "red") else None),
        details=uti)
