import numpy as np
import pandas as pd
import pytest

import tabsynth as ts


@pytest.fixture(scope="session")
def adult() -> pd.DataFrame:
    return ts.datasets.load("adult")


@pytest.fixture(scope="session")
def adult_small(adult) -> pd.DataFrame:
    return adult.sample(2000, random_state=0).reset_index(drop=True)


@pytest.fixture
def mixed_df() -> pd.DataFrame:
    """A small table with every kind, nulls, a time zone and an id."""
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame({
        "id": [f"P{i:05d}" for i in range(n)],
        "age": rng.integers(18, 90, n),
        "weight": rng.normal(70, 12, n).round(3),
        "city": rng.choice(["Oslo", "Lima", "Pune"], n),
        "smoker": rng.choice([True, False], n),
        "visit": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
        "admitted": pd.date_range("2021-03-01", periods=n, freq="37min", tz="Europe/Berlin"),
        "date_text": (pd.Timestamp("2019-05-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D")).strftime("%d/%m/%Y"),
    })
    df.loc[rng.choice(n, 30, replace=False), "weight"] = np.nan
    df.loc[rng.choice(n, 20, replace=False), "city"] = None
    return df


def frames_equal_nulls(a: pd.Series, b: pd.Series) -> bool:
    return bool((a.isna().to_numpy() == b.isna().to_numpy()).all())
