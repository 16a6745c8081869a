"""The ``pair`` table kind: a person table and its event table, split and scored at the person level.

``load`` splits a bundled sequence data set (``tabsynth.datasets.SEQUENCES``) by person, 70/30 with
a fixed seed, each person's events going with them. ``score`` takes a method's synthetic pair as it
came out (``subjects.csv``, ``events.csv``) and:

* ``order_share``: share of synthetic persons (two events or more) whose sequence column never falls
  in the order the method wrote their events (nan without a sequence column). Every other score
  re-sorts the events by person and sequence column first (stable), as a user would.
* ``rules_share``: share of synthetic persons meeting every rule of :data:`RULES` (``rules_share_real``
  for the real training persons; nan where a data set declares none).
* ``events_per_person``: 1 - Kolmogorov-Smirnov statistic between the real and synthetic numbers of
  events per person (1: same distribution).
* ``person_quality`` (and its ``person_column_shapes`` / ``person_pair_trends``): sdmetrics quality
  of the person-level table, one row per person: their attributes, their number of events and the
  first, last and mean of each event column (first and last of categories).
* ``person_tstr_auc`` / ``person_trtr_auc``: ROC AUC on the holdout persons of HistGradientBoosting
  trained on synthetic (real) persons, features the person-level table; the target is the suggested
  person column where a data set has one, else the most frequent value of the suggested event
  column per person (its aggregates left out of the features).
* ``qa_*``: MOSTLY AI's QA (``qa.py`` in ``.venv-qa``), the events as target table with the persons
  as context: overall accuracy (univariate, bivariate and coherence parts), similarity and the
  distance-to-closest-record shares. Left out, with ``qa_error`` saying why, where the venv is
  missing or QA refuses the tables (it needs at least 100 persons in each).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scoring
from common import ROOT

#: Per data set, rules every person must meet: (name, check(sorted events with person columns,
#: key, order_by) -> a bool per event row; a person meets a rule when all their rows do).
Rule = tuple[str, Callable[[pd.DataFrame, str], pd.Series]]


def _never_falls(col: str) -> Callable[[pd.DataFrame, str], pd.Series]:
    return lambda df, key: df.groupby(key, sort=False)[col].diff().fillna(0).ge(0)


def _constant(expr: Callable[[pd.DataFrame], pd.Series]) -> Callable[[pd.DataFrame, str], pd.Series]:
    def check(df: pd.DataFrame, key: str) -> pd.Series:
        v = expr(df)
        return v.groupby(df[key], sort=False).transform("nunique").le(1) & v.notna()
    return check


RULES: dict[str, list[Rule]] = {
    "pbcseq": [("every visit on or before futime", lambda df, key: df["day"].le(df["futime"]))],
    "nlswork": [("ttl_exp never falls", _never_falls("ttl_exp")), ("age never falls", _never_falls("age"))],
    "rwm5yr": [("age rises by one a year", _constant(lambda df: df["age"] - df["year"]))],
}

QA_PYTHON = ROOT / ".venv-qa" / "bin" / "python"
QA_SCRIPT = Path(__file__).resolve().parent / "qa.py"
#: Seconds QA may take on one pair before it is given up.
QA_TIME_LIMIT_S = 1800


# --- the person-level table ----------------------------------------------------------------------
def resort(events: pd.DataFrame, key: str, order_by: str | None) -> pd.DataFrame:
    """Events grouped by person, in sequence-column order (stable: ties and no column keep row order)."""
    by = [key] if order_by is None else [key, order_by]
    first = events[key].map(dict(zip(pd.unique(events[key]), range(events[key].nunique()))))
    out = events.assign(_person=first).sort_values(["_person", *by[1:]], kind="stable")
    return out.drop(columns="_person").reset_index(drop=True)


def order_share(events: pd.DataFrame, key: str, order_by: str | None) -> float:
    """Share of persons with two events or more whose ``order_by`` never falls in row order."""
    if order_by is None or events.empty:
        return float("nan")
    seq = pd.to_numeric(events[order_by], errors="coerce")
    ok = seq.groupby(events[key], sort=False).diff().fillna(0).ge(0)
    per = ok.groupby(events[key], sort=False).agg(["all", "size"])
    many = per[per["size"] >= 2]
    return float(many["all"].mean()) if len(many) else float("nan")


def rules_share(subjects: pd.DataFrame, events: pd.DataFrame, key: str, rules: list[Rule]) -> float:
    """Share of persons (with events) whose every event meets every rule."""
    if not rules or events.empty:
        return float("nan")
    df = events.merge(subjects, on=key, how="left", suffixes=("", "_person"))
    ok = pd.Series(True, index=df.index)
    for _, check in rules:
        ok &= check(df, key).to_numpy()
    return float(ok.groupby(df[key], sort=False).all().mean())


def person_table(subjects: pd.DataFrame, events: pd.DataFrame, key: str, skip: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per person: attributes, number of events, first/last/mean of each event column (first
    and last of categorical ones), in a fixed column order; event columns in ``skip`` left out."""
    cols = [c for c in events.columns if c != key and c not in skip]
    g = events.groupby(key, sort=False)
    parts = [g.size().rename("n_events")]
    for c in cols:
        parts += [g[c].first().rename(f"{c}__first"), g[c].last().rename(f"{c}__last")]
        if not scoring.is_categorical(events[c]):
            parts.append(g[c].mean().rename(f"{c}__mean"))
    agg = pd.concat(parts, axis=1) if len(events) else pd.DataFrame(columns=[p.name for p in parts])
    out = subjects.set_index(key).join(agg, how="left")
    out["n_events"] = out["n_events"].fillna(0)
    return out.reset_index(drop=True)


def person_target(events: pd.DataFrame, key: str, col: str) -> pd.Series:
    """The most frequent non-missing value of ``col`` per person (ties: the smallest), by person key."""
    v = events[[key, col]].dropna()
    counts = v.groupby([key, col]).size().rename("n").reset_index()
    counts = counts.sort_values([key, "n", col], ascending=[True, False, True], kind="stable")
    return counts.drop_duplicates(key).set_index(key)[col]


def _with_target(subjects: pd.DataFrame, events: pd.DataFrame, key: str, target: str,
                 person_level: bool) -> pd.DataFrame:
    if person_level:
        return person_table(subjects, events, key)
    t = person_target(events, key, target).rename(target)
    return person_table(subjects.join(t, on=key), events, key, skip=(target,))


# --- the scores ---------------------------------------------------------------------------------
def events_per_person(real: pd.DataFrame, synth: pd.DataFrame) -> float:
    """1 - KS statistic between the real and synthetic ``n_events`` columns."""
    from scipy.stats import ks_2samp

    if synth.empty:
        return 0.0
    return float(1 - ks_2samp(real["n_events"], synth["n_events"]).statistic)


def person_quality(real: pd.DataFrame, synth: pd.DataFrame) -> dict[str, float]:
    """sdmetrics QualityReport (default thresholds) of the person-level tables."""
    from sdmetrics.reports.single_table import QualityReport

    meta = {"columns": {c: {"sdtype": "categorical" if scoring.is_categorical(real[c]) else "numerical"}
                        for c in real.columns}}
    report = QualityReport()
    report.generate(real, synth[list(real.columns)], meta, verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    return {"person_quality": float(report.get_score()), "person_column_shapes": float(props["Column Shapes"]),
            "person_pair_trends": float(props["Column Pair Trends"])}


def prepare(pair: dict[str, pd.DataFrame], real: dict[str, pd.DataFrame], key: str,
            order_by: str | None) -> dict[str, pd.DataFrame]:
    """A pair in the real tables' dtype family, keys as strings, events re-sorted."""
    subjects = scoring.align(pair["subjects"], real["subjects"])
    events = scoring.align(pair["events"], real["events"])
    subjects[key] = pair["subjects"][key].astype(str).to_numpy() if key in pair["subjects"] else ""
    events[key] = pair["events"][key].astype(str).to_numpy() if key in pair["events"] else ""
    return {"subjects": subjects, "events": resort(events, key, order_by)}


def score_pair(train: dict[str, pd.DataFrame], holdout: dict[str, pd.DataFrame], synth: dict[str, pd.DataFrame],
               key: str, order_by: str | None, target: tuple[str | None, str], rules: list[Rule] | None = None,
               seed: int = 0, qa: bool = True) -> dict[str, Any]:
    """Every score of a synthetic pair (frames as the method wrote them) against train and holdout."""
    rules = rules or []
    raw_events = synth["events"].assign(**{key: synth["events"][key].astype(str)})
    tr, ho = prepare(train, train, key, order_by), prepare(holdout, train, key, order_by)
    sy = prepare(synth, train, key, order_by)
    out: dict[str, Any] = {"order_share": order_share(raw_events, key, order_by),
                           "rules_share": rules_share(sy["subjects"], sy["events"], key, rules),
                           "rules_share_real": rules_share(tr["subjects"], tr["events"], key, rules),
                           "persons_synthetic": len(sy["subjects"]), "events_synthetic": len(sy["events"]),
                           "orphan_events": int((~sy["events"][key].isin(sy["subjects"][key])).sum())}
    person_col, event_col = target
    tgt = person_col or event_col
    p_tr, p_ho, p_sy = (_with_target(f["subjects"], f["events"], key, tgt, person_col is not None)
                        for f in (tr, ho, sy))
    out["events_per_person"] = events_per_person(p_tr, p_sy)
    out.update(person_quality(p_tr, p_sy))
    out["person_tstr_auc"] = scoring.tstr_auc(p_sy, p_tr, p_ho, tgt, seed)
    out["person_trtr_auc"] = scoring.tstr_auc(p_tr, p_tr, p_ho, tgt, seed)
    out["person_target"] = tgt if person_col else f"most frequent {tgt}"
    if qa:
        out.update(run_qa(tr, ho, sy, key))
    return out


def run_qa(train: dict[str, pd.DataFrame], holdout: dict[str, pd.DataFrame], synth: dict[str, pd.DataFrame],
           key: str, python: Path = QA_PYTHON) -> dict[str, Any]:
    """MOSTLY AI's QA on the pair, in its venv: its metrics as ``qa_*``, or ``qa_error``."""
    if not python.exists():
        return {"qa_error": f"{python} not found: make .venv-qa/.installed"}
    with tempfile.TemporaryDirectory(prefix="qa-") as tmp:
        d = Path(tmp)
        for tag, pair in (("trn", train), ("hol", holdout), ("syn", synth)):
            pair["subjects"].to_parquet(d / f"{tag}_subjects.parquet")
            pair["events"].to_parquet(d / f"{tag}_events.parquet")
        cmd = [str(python), str(QA_SCRIPT), "--data", tmp, "--key", key, "--out", str(d / "metrics.json")]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=QA_TIME_LIMIT_S, check=False,
                                  env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                       "TRANSFORMERS_OFFLINE": "1", "HOME": tmp})
        except subprocess.TimeoutExpired:
            return {"qa_error": f"QA ran past {QA_TIME_LIMIT_S} s"}
        if proc.returncode != 0:
            return {"qa_error": (proc.stderr.strip().splitlines() or ["QA failed"])[-1][:300]}
        return json.loads((d / "metrics.json").read_text())


class Pair:
    """A bundled sequence data set (persons and events), split by person, scored per person and by QA
    (``qa=False``: the person-level scores only)."""

    def __init__(self, qa: bool = True) -> None:
        self.qa = qa

    def load(self, spec: str) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
        import tabsynth as ts

        name, _, rows = spec.partition("@")
        subjects, events = ts.datasets.load(name)
        key = ts.datasets.SEQUENCES[name][0]
        order = np.random.default_rng(scoring.SPLIT_SEED).permutation(len(subjects))
        n_test = round(scoring.TEST_SHARE * len(subjects))
        tr_ids = subjects[key].iloc[order[n_test:]]
        if rows and int(rows) < len(tr_ids):
            tr_ids = tr_ids.sample(n=int(rows), random_state=scoring.SPLIT_SEED)
        ho_ids = subjects[key].iloc[order[:n_test]]

        def part(ids: pd.Series) -> dict[str, pd.DataFrame]:
            keep = subjects[key].isin(ids)
            return {"subjects": subjects[keep].reset_index(drop=True),
                    "events": events[events[key].isin(ids)].reset_index(drop=True)}
        return part(tr_ids), part(ho_ids)

    def task_options(self, spec: str) -> dict[str, Any]:
        """What the worker must know to fit the pair: the key and the sequence column."""
        import tabsynth as ts

        key, order_by = ts.datasets.SEQUENCES[spec.partition("@")[0]]
        return {"key": key, "order_by": order_by}

    def score(self, spec: str, train: dict[str, pd.DataFrame], holdout: dict[str, pd.DataFrame],
              synth: dict[str, pd.DataFrame], seed: int) -> dict[str, Any]:
        import tabsynth as ts

        name = spec.partition("@")[0]
        key, order_by = ts.datasets.SEQUENCES[name]
        return score_pair(train, holdout, synth, key, order_by, ts.datasets.SEQUENCE_TARGETS[name],
                          RULES.get(name, []), seed, self.qa)


scoring.KINDS["pair"] = Pair()
