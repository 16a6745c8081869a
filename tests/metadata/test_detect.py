
import numpy as np
import pandas as pd
import pytest

import tabsynth as ts
from tabsynth.errors import DataError, DataWarning

ADULT_KINDS = {
    "age": "integer", "workclass": "categorical", "fnlwgt": "integer", "education": "categorical",
    "education-num": "integer", "marital-status": "categorical", "occupation": "categorical",
    "relationship": "categorical", "race": "categorical", "sex": "categorical",
    "capital-gain": "integer", "capital-loss": "integer", "hours-per-week": "integer",
    "native-country": "categorical", "income": "categorical",
}


def test_adult_kinds(adult):
    meta = ts.Metadata.detect(adult)
    assert {n: s.kind for n, s in meta.columns.items()} == ADULT_KINDS
    assert meta.columns["workclass"].nullable and not meta.columns["age"].nullable


def test_detected_domains_are_observed_never_public(adult):
    meta = ts.Metadata.detect(adult)
    for spec in meta.columns.values():
        assert not spec.is_public
        if spec.bounds is not None or spec.categories is not None:
            assert spec.domain_source == "observed"
    assert meta.columns["age"].bounds == (17, 90)
    assert "Private" in meta.columns["workclass"].categories


def test_kinds_of_mixed_table(mixed_df):
    meta = ts.Metadata.detect(mixed_df)
    kinds = {n: s.kind for n, s in meta.columns.items()}
    assert kinds == {"id": "id", "age": "integer", "weight": "numerical", "city": "categorical",
                     "smoker": "boolean", "visit": "datetime", "admitted": "datetime",
                     "date_text": "datetime"}
    assert meta.columns["date_text"].datetime_format == "%d/%m/%Y"
    assert meta.columns["admitted"].timezone == "Europe/Berlin"
    assert meta.columns["visit"].resolution == "D"
    assert meta.columns["admitted"].resolution == "min"
    assert meta.primary_key == "id"


def test_near_unique_strings_are_ids_and_unique_ints_named_id():
    n = 100
    df = pd.DataFrame({
        "account": [f"AC{i * 7919 % 100000:06d}" for i in range(n - 2)] + ["AC000000", "AC000007"],
        "customer_id": np.arange(1000, 1000 + n),
        "score": np.arange(n),
    })
    meta = ts.Metadata.detect(df)
    assert meta.columns["account"].kind == "id"
    assert meta.columns["customer_id"].kind == "id"
    assert meta.columns["score"].kind == "integer"


def test_zero_one_integers_are_boolean():
    df = pd.DataFrame({"death": [0, 1, 1, 0], "n": [0, 1, 2, 3]})
    meta = ts.Metadata.detect(df)
    assert meta.columns["death"].kind == "boolean"
    assert meta.columns["n"].kind == "integer"


def test_all_missing_column_warns_and_is_described():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "empty": [np.nan, np.nan, np.nan]})
    with pytest.warns(DataWarning, match="'empty' is entirely missing"):
        meta = ts.Metadata.detect(df)
    assert meta.columns["empty"].nullable


def test_pre_1677_and_timezone_datetimes():
    old = pd.Series(np.array(["1500-01-01", "1600-06-30", "1650-12-31"], dtype="datetime64[s]"))
    df = pd.DataFrame({"old": old, "old_text": ["1500-01-01", "1600-06-30", "1650-12-31"],
                       "tz": pd.to_datetime(["2020-01-01 10:00", "2020-06-01 11:00", "2020-12-01 12:00"]).tz_localize("America/Lima")})
    meta = ts.Metadata.detect(df)
    assert meta.columns["old"].kind == "datetime" and meta.columns["old"].resolution == "D"
    assert meta.columns["old_text"].kind == "datetime"
    assert meta.columns["tz"].timezone == "America/Lima"


def test_high_cardinality_non_unique_strings_are_categorical():
    rng = np.random.default_rng(0)
    values = np.array([f"code{i}" for i in range(12_000)])
    df = pd.DataFrame({"code": rng.choice(values, 40_000)})
    assert df["code"].nunique() > 10_000
    assert ts.Metadata.detect(df).columns["code"].kind == "categorical"


def test_group_key_named_like_an_id_is_an_id():
    cases = [f"{i // 3}:{(i // 3) % 7}" for i in range(600)]
    df = pd.DataFrame({"caseid": cases, "case": cases, "x": np.arange(600) % 5})
    meta = ts.Metadata.detect(df)
    assert df["caseid"].nunique() < 0.95 * len(df)
    assert meta.columns["caseid"].kind == "id"
    assert meta.columns["case"].kind == "categorical"  # same values, no id-like name
    assert ts.Metadata.detect(ts.datasets.load("nass_cds").head(3000)).columns["caseid"].kind == "id"


# --- bad input at the boundary ------------------------------------------------------------------

def test_empty_frame():
    with pytest.raises(DataError, match="no rows"):
        ts.Metadata.detect(pd.DataFrame({"a": []}))
    with pytest.raises(DataError, match="no columns"):
        ts.Metadata.detect(pd.DataFrame())


def test_duplicate_column_names():
    df = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(DataError, match=r"duplicate column names \['a'\]"):
        ts.Metadata.detect(df)


def test_non_string_column_names():
    with pytest.raises(DataError, match="column names must be strings.*astype\\(str\\)"):
        ts.Metadata.detect(pd.DataFrame({0: [1, 2], 1: [3, 4]}))


def test_mixed_types_in_object_column():
    df = pd.DataFrame({"m": ["a", 1, "b", 2.5]})
    with pytest.raises(DataError, match="column 'm' mixes value types .*astype\\(str\\)"):
        ts.Metadata.detect(df)


def test_infinite_values():
    df = pd.DataFrame({"x": [1.0, np.inf, -np.inf, 2.0]})
    with pytest.raises(DataError, match="column 'x' has 2 infinite value\\(s\\); replace them with NaN"):
        ts.Metadata.detect(df)


def test_all_problems_reported_at_once():
    df = pd.DataFrame({"x": [1.0, np.inf], "m": ["a", 1]})
    with pytest.raises(DataError, match="2 problems in the table") as info:
        ts.Metadata.detect(df)
    assert "'x'" in str(info.value) and "'m'" in str(info.value)


def test_not_a_dataframe():
    with pytest.raises(DataError, match="expected a pandas DataFrame, got list"):
        ts.Metadata.detect([[1, 2]])
