"""Table kinds: how a benchmark table is split, and the scores every method gets the same way.

A kind loads a table spec into (train, holdout) frames keyed by table name and scores a method's
synthetic frames against them. ``single`` is one table; a kind for a pair of tables (persons and
their events, scored with mostlyai-qa) is a class with the same two methods, added to ``KINDS``.

Scores of a single table:

* ``quality``: sdmetrics QualityReport overall score and its all-pairs variant (:func:`quality`),
  sdmetrics metadata from the real table's dtypes (object: categorical, numbers: numerical).
* ``tstr_auc``: ROC AUC on the holdout of a HistGradientBoostingClassifier trained on a frame
  (synthetic: TSTR; real train: TRTR); one-vs-rest macro AUC for multiclass targets. Categoricals
  are ordinal-encoded with the real train table's categories, missing (and unseen) as a category
  of its own; rows with a missing target are dropped.
* ``dcr_share``: share of synthetic rows closer to a train row than to a holdout row, train cut to
  the holdout's size (about 0.5: no copying; 1: copies of training rows).
* ``validity``: share of synthetic rows whose every category was seen in training and every number
  lies inside the training range (missing counts as valid where training had missing values).
* ``exact_share`` and ``at_precision``: per numeric column, the share of synthetic values that are
  among the training values, and the share written at the training column's decimals (the fewest,
  0 to 8, that write 99.9% of its values); each the mean over numeric columns (:func:`exact_values`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Seed of the 70/30 split of every bundled table but adult (which has its own test file).
SPLIT_SEED = 0
TEST_SHARE = 0.3
#: Most category codes HistGradientBoosting takes as a native categorical feature.
MAX_NATIVE_CATEGORIES = 250
#: Rows each side of the DCR computation (synthetic rows, and train/holdout rows each).
DCR_ROWS = 3000
#: Most one-hot columns per categorical in the DCR distance (rarer values share one).
DCR_TOP_CATEGORIES = 50


def is_categorical(s: pd.Series) -> bool:
    """Object, string, category and bool columns are categorical; numbers are numerical."""
    return not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)


def align(synth: pd.DataFrame, real: pd.DataFrame) -> pd.DataFrame:
    """Synthetic rows in the real table's column order with its dtype family (numbers as float,
    categories as object strings), so CSV round trips and peers' dtypes do not change any score."""
    out = {}
    for c in real.columns:
        col = synth[c] if c in synth.columns else pd.Series([np.nan] * len(synth))
        col = col.reset_index(drop=True)
        if is_categorical(real[c]):
            out[c] = col.astype(object).where(col.notna(), None).map(lambda v: v if v is None else str(v))
        else:
            out[c] = pd.to_numeric(col, errors="coerce").astype("float64")
    return pd.DataFrame(out)


def as_real(df: pd.DataFrame) -> pd.DataFrame:
    """The real table in the same dtype family as :func:`align`."""
    return align(df, df)


# --- train on synthetic, test on real ----------------------------------------------------------
def _labels(s: pd.Series, numeric: bool) -> pd.Series:
    if numeric:
        v = pd.to_numeric(s, errors="coerce").round()
        return v.map(lambda x: None if pd.isna(x) else str(int(x)))
    return s.astype(object).where(s.notna(), None).map(lambda v: v if v is None else str(v))


def _features(df: pd.DataFrame, real: pd.DataFrame, target: str) -> tuple[pd.DataFrame, list[bool]]:
    x, native = {}, []
    for c in real.columns:
        if c == target:
            continue
        if is_categorical(real[c]):
            cats = pd.Index(sorted(real[c].dropna().astype(str).unique()))
            codes = cats.get_indexer(df[c].astype(object).where(df[c].notna(), None).map(
                lambda v: v if v is None else str(v)))
            codes = np.where(codes < 0, len(cats), codes)  # missing and unseen: a category of their own
            x[c] = codes.astype("float64")
            native.append(len(cats) + 1 <= MAX_NATIVE_CATEGORIES)
        else:
            x[c] = pd.to_numeric(df[c], errors="coerce").astype("float64").to_numpy()
            native.append(False)
    return pd.DataFrame(x), native


def tstr_auc(train: pd.DataFrame, real: pd.DataFrame, test: pd.DataFrame, target: str, seed: int = 0) -> float:
    """ROC AUC on ``test`` of HistGradientBoosting fit on ``train`` (``real`` fixes the encoding)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    numeric = not is_categorical(real[target])
    y_tr, y_te = _labels(train[target], numeric), _labels(test[target], numeric)
    train, test = train[y_tr.notna().to_numpy()], test[y_te.notna().to_numpy()]
    y_tr, y_te = y_tr.dropna().to_numpy(), y_te.dropna().to_numpy()
    classes = np.array(sorted(set(y_te)))
    if len(classes) < 2 or len(train) == 0:
        return float("nan")
    if len(set(y_tr)) < 2:
        return 0.5  # a constant predictor
    x_tr, native = _features(train, real, target)
    x_te, _ = _features(test, real, target)
    empty = [c for c in x_tr.columns if x_tr[c].isna().all()]  # nothing to learn; binning needs values
    x_tr[empty], x_te[empty] = 0.0, 0.0
    clf = HistGradientBoostingClassifier(categorical_features=np.array(native), random_state=seed)
    clf.fit(x_tr, y_tr)
    proba = np.zeros((len(x_te), len(classes)))
    known = clf.predict_proba(x_te)
    for j, cls in enumerate(clf.classes_):
        if cls in classes:
            proba[:, np.searchsorted(classes, cls)] = known[:, j]
    if len(classes) == 2:
        return float(roc_auc_score(y_te == classes[1], proba[:, 1]))
    present = proba.sum(axis=1, keepdims=True)
    proba = np.where(present > 0, proba / np.where(present > 0, present, 1), 1 / len(classes))
    return float(roc_auc_score(y_te, proba, multi_class="ovr", average="macro", labels=classes))


# --- distance to closest record ---------------------------------------------------------------
def _dcr_matrix(df: pd.DataFrame, real: pd.DataFrame) -> np.ndarray:
    """Numbers min-max scaled by the real range (missing: 0 plus an indicator), categories one-hot."""
    blocks = []
    for c in real.columns:
        if is_categorical(real[c]):
            top = real[c].astype(str).where(real[c].notna(), "\0na").value_counts().index[:DCR_TOP_CATEGORIES]
            v = df[c].astype(str).where(df[c].notna(), "\0na")
            codes = pd.Index(top).get_indexer(v)
            codes = np.where(codes < 0, len(top), codes)
            blocks.append(np.eye(len(top) + 1)[codes] / np.sqrt(2))
        else:
            r = pd.to_numeric(real[c], errors="coerce")
            lo, span = float(r.min()), float(r.max() - r.min()) or 1.0
            v = (pd.to_numeric(df[c], errors="coerce").to_numpy(dtype="float64") - lo) / span
            blocks.append(np.column_stack([np.nan_to_num(v), np.isnan(v)]))
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _nearest(a: np.ndarray, b: np.ndarray, chunk: int = 1000) -> np.ndarray:
    """Euclidean distance from each row of ``a`` to its nearest row of ``b``."""
    bb = (b * b).sum(1)
    out = np.empty(len(a), dtype=np.float64)
    for i in range(0, len(a), chunk):
        x = a[i:i + chunk]
        d2 = (x * x).sum(1)[:, None] + bb[None, :] - 2 * x @ b.T
        out[i:i + chunk] = np.sqrt(np.maximum(d2.min(1), 0))
    return out


def dcr_share(train: pd.DataFrame, holdout: pd.DataFrame, synth: pd.DataFrame, seed: int = 0) -> float:
    """Share of synthetic rows nearer to train than to holdout (ties count half), equal-size sides."""
    rng = np.random.default_rng(seed)
    n = min(len(holdout), len(train), DCR_ROWS)
    tr = train.iloc[rng.choice(len(train), n, replace=False)]
    ho = holdout.iloc[rng.choice(len(holdout), n, replace=False)]
    sy = synth.iloc[rng.choice(len(synth), min(len(synth), DCR_ROWS), replace=False)]
    m_tr, m_ho, m_sy = (_dcr_matrix(f, train) for f in (tr, ho, sy))
    d_tr, d_ho = _nearest(m_sy, m_tr), _nearest(m_sy, m_ho)
    return float(np.mean(np.where(np.isclose(d_tr, d_ho), 0.5, d_tr < d_ho)))


# --- validity ----------------------------------------------------------------------------------
def validity(train: pd.DataFrame, synth: pd.DataFrame) -> float:
    """Share of synthetic rows with every category seen in training and every number in its range."""
    ok = np.ones(len(synth), dtype=bool)
    for c in train.columns:
        real, v = train[c], synth[c]
        missing_ok = bool(real.isna().any())
        if is_categorical(real):
            good = v.isin(set(real.dropna().astype(str))).to_numpy()
        else:
            x = pd.to_numeric(v, errors="coerce")
            good = x.between(real.min(), real.max()).to_numpy()
        ok &= good | (v.isna().to_numpy() & missing_ok)
    return float(ok.mean())


# --- exact values ------------------------------------------------------------------------------
def decimals(values: np.ndarray) -> int | None:
    """Fewest decimals (0-8) that write 99.9% of ``values`` exactly; None when 8 do not."""
    for d in range(9):
        if np.mean(np.round(values, d) == values) >= 0.999:
            return d
    return None


def exact_values(train: pd.DataFrame, synth: pd.DataFrame) -> dict[str, float]:
    """``exact_share`` and ``at_precision`` (module docstring); NaN for a table without numeric columns."""
    inside, at = [], []
    for c in train.columns:
        if is_categorical(train[c]):
            continue
        real = train[c].dropna().to_numpy(float)
        syn = pd.to_numeric(synth[c], errors="coerce").dropna().to_numpy(float)
        if not len(real) or not len(syn):
            continue
        inside.append(float(np.isin(syn, real).mean()))
        d = decimals(real)
        at.append(float(np.mean(np.round(syn, d) == syn)) if d is not None else np.nan)
    return {"exact_share": _mean(inside), "at_precision": _mean(at)}


def _mean(values: list[float]) -> float:
    known = [v for v in values if not np.isnan(v)]
    return float(np.mean(known)) if known else float("nan")


def quality(real: pd.DataFrame, synth: pd.DataFrame) -> dict[str, float]:
    """sdmetrics QualityReport overall score (default thresholds) and the all-pairs variant.

    The all-pairs variant is the same report with both association thresholds set to 0, so Column
    Pair Trends averages CorrelationSimilarity over every numeric pair and ContingencySimilarity
    (numeric columns discretised as the report does) over every other pair, and the overall score
    is the mean of Column Shapes and that Column Pair Trends, as in the report.
    """
    from sdmetrics.reports.single_table import QualityReport

    meta = {"columns": {c: {"sdtype": "categorical" if is_categorical(real[c]) else "numerical"}
                        for c in real.columns}}
    synth = synth[list(real.columns)]
    out: dict[str, float] = {}
    for tag, thresholds in (("", None), ("_allpairs", (0, 0))):
        report = QualityReport()
        if thresholds is not None:
            report.real_correlation_threshold, report.real_association_threshold = thresholds
        report.generate(real, synth, meta, verbose=False)
        props = report.get_properties().set_index("Property")["Score"]
        out[f"quality{tag}"] = float(report.get_score())
        out[f"column_shapes{tag}"] = float(props["Column Shapes"])
        out[f"column_pair_trends{tag}"] = float(props["Column Pair Trends"])
    return out


def score(train: pd.DataFrame, holdout: pd.DataFrame, synth: pd.DataFrame, target: str,
          seed: int = 0) -> dict[str, Any]:
    """Every data score of one synthetic table (frames already in :func:`align`'s dtype family)."""
    out: dict[str, Any] = dict(quality(train, synth))
    out["tstr_auc"] = tstr_auc(synth, train, holdout, target, seed)
    out["dcr_share"] = dcr_share(train, holdout, synth, seed)
    out["validity"] = validity(train, synth)
    out.update(exact_values(train, synth))
    return out


def split(spec: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) of a bundled table: adult's own test file, else a seeded 70/30 split.

    ``NAME@ROWS`` keeps a seeded sample of ``ROWS`` training rows (the holdout stays whole)."""
    import tabsynth as ts

    name, _, rows = spec.partition("@")
    if name == "adult":
        train, holdout = ts.datasets.load("adult_train"), ts.datasets.load("adult_test")
    else:
        df = ts.datasets.load(name)
        order = np.random.default_rng(SPLIT_SEED).permutation(len(df))
        n_test = int(round(TEST_SHARE * len(df)))
        train, holdout = df.iloc[order[n_test:]], df.iloc[order[:n_test]]
    if rows and int(rows) < len(train):
        train = train.sample(n=int(rows), random_state=SPLIT_SEED)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


class Single:
    """One table: a bundled table's split, scored on its target (``tabsynth.datasets.TARGETS``)."""

    def load(self, spec: str) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
        train, holdout = split(spec)
        return {"table": train}, {"table": holdout}

    def score(self, spec: str, train: dict[str, pd.DataFrame], holdout: dict[str, pd.DataFrame],
              synth: dict[str, pd.DataFrame], seed: int) -> dict[str, Any]:
        import tabsynth as ts

        target = ts.datasets.TARGETS[spec.partition("@")[0]]
        real_tr, real_ho = as_real(train["table"]), as_real(holdout["table"])
        out = score(real_tr, real_ho, align(synth["table"], train["table"]), target, seed)
        out["trtr_auc"] = tstr_auc(real_tr, real_tr, real_ho, target, seed)
        return {**out, "target": target, "rows_synthetic": len(synth["table"])}


#: Table kinds by name; a method's kind (``worker.METHODS``) must match its table's.
KINDS: dict[str, Any] = {"single": Single()}
