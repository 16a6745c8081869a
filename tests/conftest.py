import os

import numpy as np
import pandas as pd
import pytest
import torch

import tabsynth as ts
from tabsynth.models.registry import MODELS

if os.environ.get("PYTEST_XDIST_WORKER"):  # one worker per core: a second torch thread would only contend
    torch.set_num_threads(1)

#: Each family's step rule as the library has it (tests run with a shrunk one).
LIBRARY_DP_STEPS: dict = {}


@pytest.fixture(scope="session")
def library_dp_steps(few_dp_steps) -> dict:
    """Each registered family's DP step rule as the library has it, by family name."""
    return LIBRARY_DP_STEPS


@pytest.fixture(autouse=True, scope="session")
def few_dp_steps():
    """DP fits left at their defaults take few steps in tests (the rule's shape is kept; its size is
    the library's only outside tests): the step rule's 400 steps would make the suite slow."""
    import dataclasses

    saved = {name: cls.__dict__.get("_DP_STEPS") for name, cls in MODELS.items()}
    LIBRARY_DP_STEPS.update({name: cls._DP_STEPS for name, cls in MODELS.items()})
    for cls in MODELS.values():
        cls._DP_STEPS = dataclasses.replace(cls._DP_STEPS, min_steps=20, min_epochs=1)
    yield
    for name, rule in saved.items():
        if rule is None:
            del MODELS[name]._DP_STEPS
        else:
            MODELS[name]._DP_STEPS = rule


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
