"""The report's singling-out, linkability and inference risks agree with anonymeter, the reference
implementation of the same attacks, within their 95% intervals.

anonymeter is an optional test dependency: it pins numpy below 2, so it lives in a virtual
environment of its own (torch first, then ``pip install -e .[test] anonymeter``); the test is
skipped where it is not installed.
"""

from __future__ import annotations

import pandas as pd
import pytest

anonymeter = pytest.importorskip("anonymeter")

import tabsynth as ts  # noqa: E402
from tabsynth.report import evaluate  # noqa: E402

COLUMNS = ["age", "workclass", "education", "marital-status", "occupation", "sex", "hours-per-week", "income"]
QIS = ["age", "sex", "marital-status", "education"]
N_ATTACKS = 600


@pytest.fixture(scope="module")
def tables():
    df = ts.datasets.load("adult")[COLUMNS].dropna().drop_duplicates().sample(4500, random_state=3)
    df = df.reset_index(drop=True)
    train, holdout, fresh = df.iloc[:1500], df.iloc[1500:3000], df.iloc[3000:]
    # a leaky generator: half of its rows are training rows
    syn = pd.concat([train.iloc[:750], fresh.iloc[:750]], ignore_index=True)
    return train.reset_index(drop=True), holdout.reset_index(drop=True), syn


@pytest.fixture(scope="module")
def ours(tables):
    train, holdout, syn = tables
    return evaluate(train, syn, holdout=holdout, quasi_identifiers=QIS, sensitive=["income"],
                    n_attacks=N_ATTACKS, max_plots=0).to_dict()["privacy"]


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def test_singling_out_agrees_with_anonymeter(tables, ours):
    from anonymeter.evaluators import SinglingOutEvaluator

    train, holdout, syn = tables
    for mode, n_cols in (("multivariate", 3), ("univariate", 1)):
        ev = SinglingOutEvaluator(ori=train, syn=syn, control=holdout, n_attacks=N_ATTACKS, n_cols=n_cols, seed=0)
        ref = ev.evaluate(mode=mode).risk()
        mine = ours["singling_out"][mode]
        assert mine["attacks"] == N_ATTACKS or mode == "univariate"
        assert overlap((mine["low"], mine["high"]), ref.ci), (mode, mine["value"], mine["low"], mine["high"], ref)


def test_linkability_and_inference_agree_with_anonymeter(tables, ours):
    from anonymeter.evaluators import InferenceEvaluator, LinkabilityEvaluator

    train, holdout, syn = tables
    aux = ours["linkability"]["aux_columns"]
    ref = LinkabilityEvaluator(ori=train, syn=syn, control=holdout, n_attacks=N_ATTACKS, aux_cols=tuple(aux),
                               n_neighbors=1).evaluate(n_jobs=1).risk()
    mine = ours["linkability"]
    assert overlap((mine["low"], mine["high"]), ref.ci), (mine["value"], ref)
    inf = next(i for i in ours["inference"] if i["secret"] == "income")
    ref = InferenceEvaluator(ori=train, syn=syn, control=holdout, aux_cols=inf["aux_columns"], secret="income",
                             n_attacks=N_ATTACKS).evaluate(n_jobs=1).risk()
    assert overlap((inf["low"], inf["high"]), ref.ci), (inf["value"], ref)


def test_singling_out_with_a_smaller_holdout_agrees_with_anonymeter(tables):
    from anonymeter.evaluators import SinglingOutEvaluator

    train, holdout, syn = tables
    small = holdout.iloc[:500].reset_index(drop=True)  # a third of the training rows: both correct for size
    mine = evaluate(train, syn, holdout=small, quasi_identifiers=QIS, sensitive=["income"], n_attacks=N_ATTACKS,
                    max_plots=0).to_dict()["privacy"]["singling_out"]["multivariate"]
    ref = SinglingOutEvaluator(ori=train, syn=syn, control=small, n_attacks=N_ATTACKS, n_cols=3,
                               seed=1).evaluate(mode="multivariate").risk()
    assert mine["control"]["rows"] == 500 and mine["control"]["value"] != mine["control"]["observed"] / N_ATTACKS
    assert overlap((mine["low"], mine["high"]), ref.ci), (mine["value"], mine["low"], mine["high"], ref)
