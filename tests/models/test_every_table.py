"""Every bundled table fits as given: every family, without DP and at epsilon 1 (1 epoch each)."""

import warnings

import pytest

import tabsynth as ts

TABLES = [n for n in ts.datasets.names() if n not in ("adult_train", "adult_test")]


@pytest.mark.slow
@pytest.mark.parametrize("dp", [False, True], ids=["plain", "dp"])
@pytest.mark.parametrize("model", ["CTGAN", "TVAE", "TabularAR"])
@pytest.mark.parametrize("name", TABLES)
def test_one_epoch_fit_and_sample(name, model, dp):
    df = ts.datasets.load(name)
    kw = {"epsilon": 1.0, "delta": 1e-5} if dp else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = getattr(ts, model)(epochs=1, seed=0, verbose=False, **kw).fit(df)
        out = fitted.sample(500, seed=1)
    assert list(out.columns) == list(df.columns) and len(out) == 500
    assert out.notna().any().all() or dp  # without DP every column keeps some values
