"""The preprocessing release: per-statistic noise from the schema alone, its epsilon recomputed from
those noise scales, and numeric ranges that survive far from zero (docs/privacy.md rule 4)."""

import warnings

import numpy as np
import pandas as pd
import pytest

import tabsynth as ts
from tabsynth.errors import PrivacyWarning
from tabsynth.privacy.accountant import Accountant, gaussian_rdp, rdp_to_dp
from tabsynth.privacy.preprocessing import UNITS_SELECTED, noise_scales, plan, private_transformer
from tabsynth.privacy.randomness import reproducible_noise

TINY = dict(epochs=1, seed=0, verbose=False, device="cpu")


def _table(seed: int, n: int = 1500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "year": rng.integers(1995, 2004, n),
        "creatinine": np.round(rng.lognormal(0.0, 0.35, n), 1),
        "amount": np.round(rng.lognormal(8.0, 1.0, n), 2),
        "grade": rng.choice(list("abc"), n, p=[0.6, 0.3, 0.1]),
        "flag": rng.random(n) < 0.3,
    })


def _fit(df: pd.DataFrame):
    with warnings.catch_warnings(), reproducible_noise(0):
        warnings.simplefilter("ignore", PrivacyWarning)
        return ts.TVAE(epsilon=1.0, **TINY).fit(df)


def test_noise_scales_follow_the_schema_only():
    a, b = _table(0), _table(1).iloc[:700]  # other values, other row count, the same schema
    b = b.assign(grade=b["grade"].map({"a": "x", "b": "y", "c": "z"}))
    da, db = (_fit(t).privacy_spent().parts["preprocessing"].details for t in (a, b))
    assert da["noise_stds"] == db["noise_stds"] and da["row_count_noise_std"] == db["row_count_noise_std"]
    meta = ts.Metadata.from_dtypes(a)
    row, stds = noise_scales(meta, 10.0)
    assert stds == noise_scales(ts.Metadata.from_dtypes(b), 10.0)[1]
    # the row count and categories read off the data get the most of the budget; numeric columns
    # measure three rounds
    assert row == pytest.approx(stds["grade"][0]) and stds["grade"][0] < stds["flag"][0]
    assert len(stds["year"]) == 3
    assert stds["flag"][0] / stds["grade"][0] == pytest.approx(UNITS_SELECTED ** 0.5)


def test_release_epsilon_recomputes_from_its_noise_scales():
    model = _fit(_table(0))
    spent = model.privacy_spent()
    part = spent.parts["preprocessing"]
    d = part.details
    precision = d["row_count_noise_std"] ** -2 + sum(s ** -2 for v in d["noise_stds"].values() for s in v)
    z = precision ** -0.5
    assert z == pytest.approx(d["noise_multiplier"], rel=1e-9)
    assert d["noise_std"] / d["l2_sensitivity"] == pytest.approx(z, rel=1e-9)
    assert rdp_to_dp(gaussian_rdp(z), part.delta) == pytest.approx(part.epsilon, abs=1e-9)
    # the planned release alone meets its share of epsilon at the planning delta
    acc = Accountant(1.0, 1e-5)
    release = plan(ts.Metadata.from_dtypes(_table(0)), acc, 0.35)
    assert rdp_to_dp(release.rdp(), acc.delta_rdp) == pytest.approx(0.35, abs=1e-4)


def _private(df: pd.DataFrame, seed: int):
    meta = ts.Metadata.from_dtypes(df)
    acc = Accountant(1.0, 1e-5)
    release = plan(meta, acc, 0.35)
    stats = private_transformer(df, meta, acc, release, n_hat=len(df), max_modes=10, max_categories=100,
                                rng=np.random.default_rng(0), noise_rng=np.random.default_rng(seed))
    return stats.transformer, release


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_values_far_from_zero_keep_their_range(seed):
    n = 3000
    rng = np.random.default_rng(100 + seed)
    df = pd.DataFrame({"year": rng.integers(1995, 2004, n),
                       "when": pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 730, n), unit="D"),
                       "creatinine": np.round(rng.lognormal(0.0, 0.3, n), 2)})
    transformer, _ = _private(df, seed)
    year = transformer.encoder_of("year")
    assert 1991 <= year.lower <= 1995 and 2003 <= year.upper <= 2007, (year.lower, year.upper)
    cr = transformer.encoder_of("creatinine")
    inside = df["creatinine"].between(cr.lower, cr.upper).mean()
    assert inside > 0.95 and cr.upper - cr.lower < 4, (cr.lower, cr.upper)
    when = transformer.encoder_of("when")
    lo = pd.Timestamp(0) + pd.Timedelta(days=when.origin)
    hi = lo + pd.Timedelta(days=when.numeric.upper)
    assert pd.Timestamp("2014-06-01") <= lo <= pd.Timestamp("2015-02-01"), lo
    assert pd.Timestamp("2016-11-01") <= hi <= pd.Timestamp("2017-07-01"), hi


def test_booleans_and_declared_categories_are_not_selected():
    df = _table(0)
    meta = ts.Metadata.from_dtypes(df).with_public_domain("grade", categories=["a", "b", "c", "d"])
    acc = Accountant(1.0, 1e-5)
    stats = private_transformer(df, meta, acc, plan(meta, acc, 0.35), n_hat=len(df), max_modes=10,
                                max_categories=100, rng=np.random.default_rng(0), noise_rng=np.random.default_rng(0))
    assert acc.selection == {} and stats.transformer.encoder_of("grade").categories == ["a", "b", "c", "d"]
