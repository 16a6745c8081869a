"""The benchmarks' scores on a tiny table: each must move the way its definition says."""

import numpy as np
import pandas as pd
import pytest
import scoring as sc


def table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], n)
    y = np.where(x + (colour == "red") + rng.normal(0, 0.3, n) > 0.5, "yes", "no")
    df = pd.DataFrame({"x": x, "k": rng.integers(0, 5, n), "colour": colour, "y": y})
    df.loc[rng.random(n) < 0.1, "colour"] = None
    return sc.as_real(df)


@pytest.fixture(scope="module")
def frames():
    return table(600, 0), table(300, 1), table(600, 2)  # train, holdout, fresh draws


def test_tstr_separates_signal_from_noise(frames):
    train, holdout, fresh = frames
    assert sc.tstr_auc(train, train, holdout, "y") > 0.85
    noise = fresh.assign(y=np.random.default_rng(0).permutation(fresh["y"].to_numpy()))
    assert abs(sc.tstr_auc(noise, train, holdout, "y") - 0.5) < 0.1
    assert sc.tstr_auc(train.assign(y="no"), train, holdout, "y") == 0.5  # one class: constant predictor


def test_multiclass_is_one_vs_rest_macro_and_survives_a_missing_class(frames):
    train, holdout, _ = frames
    target = "colour"
    auc = sc.tstr_auc(train, train, holdout, target)
    assert 0.5 < auc < 1.0
    no_blue = train[train[target] != "blue"]
    assert 0.4 < sc.tstr_auc(no_blue, train, holdout, target) < auc + 0.05


def test_dcr_share_is_one_for_copies_and_about_half_for_fresh_rows(frames):
    train, holdout, fresh = frames
    same_size = table(600, 3)
    assert sc.dcr_share(train, same_size, train) > 0.95
    # train is cut to the holdout's size: half the copies lose their source, and score 0.5
    assert 0.65 < sc.dcr_share(train, holdout, train) < 0.85
    assert 0.35 < sc.dcr_share(train, holdout, fresh) < 0.65


def test_validity_counts_rows_with_unseen_values(frames):
    train, _, fresh = frames
    assert sc.validity(train, train) == 1.0
    bad = train.copy()
    bad.loc[:59, "x"] = train["x"].max() + 1
    bad.loc[60:89, "colour"] = "purple"
    bad.loc[90:99, "k"] = np.nan  # k has no missing values in training
    assert sc.validity(train, bad) == pytest.approx(1 - 100 / 600)


def test_align_restores_the_real_dtype_family():
    real = pd.DataFrame({"n": [1, 2, 3], "b": [True, False, True], "s": ["a", None, "c"]})
    synth = pd.DataFrame({"s": ["a", "a", None], "b": ["True", "False", "True"], "n": ["1", "x", "3"]})
    out = sc.align(synth, real)
    assert list(out.columns) == ["n", "b", "s"] and out["n"].dtype == "float64"
    assert out["n"].isna().tolist() == [False, True, False] and out["b"].tolist() == ["True", "False", "True"]


def test_score_has_every_metric_and_quality_prefers_the_real_table(frames):
    train, holdout, fresh = frames
    good = sc.score(train, holdout, fresh, "y")
    assert {"quality", "quality_allpairs", "tstr_auc", "dcr_share", "validity"} <= set(good)
    shuffled = fresh.apply(lambda c: c.sample(frac=1, random_state=0).to_numpy())
    shuffled["x"] = shuffled["x"] * 5
    assert good["quality"] > sc.quality(train, shuffled)["quality"] + 0.02


def test_split_is_seeded_seventy_thirty_and_rows_take_a_sample():
    a_train, a_test = sc.split("german_credit")
    b_train, _ = sc.split("german_credit")
    assert (len(a_train), len(a_test)) == (700, 300) and a_train.equals(b_train)
    small, small_test = sc.split("german_credit@100")
    assert len(small) == 100 and small_test.equals(a_test)
    assert small.merge(a_train, how="left", indicator=True)["_merge"].eq("both").all()


def test_exact_values_are_one_for_copies_and_fall_for_fresh_continuous_draws(frames):
    train, _, fresh = frames
    assert sc.exact_values(train, train) == {"exact_share": 1.0, "at_precision": 1.0}
    rounded = sc.exact_values(train, fresh.assign(x=fresh["x"].round(2)))
    assert rounded["exact_share"] < 0.6 and rounded["at_precision"] == 1.0  # k (integers) exact, x not
    assert sc.decimals(np.array([1.5, 2.25, 3.0])) == 2 and sc.decimals(np.array([np.pi])) is None
