"""Numbers decode to the values and precision the encoder saw: whatever scalars and modes a model
generates, a point mass is its value, a few-valued column gives back only its values, and every
value is rounded to the column's recorded decimals."""

import json

import numpy as np
import pandas as pd
import pytest

from tabsynth.transform import NumericEncoder, TableTransformer
from tabsynth.transform.numerical import recorded_decimals


def generated(enc: NumericEncoder, n: int, seed: int = 0) -> np.ndarray:
    """What a model could emit for ``enc``: modes drawn by their weights, scalars anywhere in [-1, 1]."""
    rng = np.random.default_rng(seed)
    block = np.zeros((n, enc.width), dtype=np.float32)
    pos = 0
    for sp in enc.spans:
        if sp.role == "value":
            block[:, sp.start] = rng.uniform(-1, 1, n)
        elif sp.role == "mode":
            block[np.arange(n), sp.start + rng.choice(enc.n_modes, n, p=enc.weights)] = 1.0
        else:
            block[:, sp.start] = 1.0  # present
        pos = sp.end
    assert pos == enc.width
    return enc.inverse_transform(block, rng).to_numpy(dtype=float)


def test_point_mass_at_the_maximum_is_hit_exactly():
    rng = np.random.default_rng(0)
    x = np.where(rng.random(5000) < 0.9, 45.0, rng.uniform(20, 45, 5000))  # full-precision values below
    enc = NumericEncoder.fit("hours", pd.Series(x))
    assert enc.decimals is None and not enc.discrete
    out = generated(enc, 20_000)
    assert abs((out == 45.0).mean() - 0.9) < 0.02
    assert out.max() == 45.0 and (out[out != 45.0] < 45.0).all()


def test_a_bound_held_by_a_few_percent_is_its_own_point_mass():
    rng = np.random.default_rng(1)
    x = np.where(rng.random(5000) < 0.03, 0.0, rng.lognormal(3, 1, 5000))  # a floor at 0 for 3% of rows
    enc = NumericEncoder.fit("amount", pd.Series(x))
    assert 0.0 in enc.means.tolist()
    out = generated(enc, 20_000)
    assert abs((out == 0.0).mean() - 0.03) < 0.01


def test_one_decimal_column_comes_back_at_one_decimal():
    rng = np.random.default_rng(2)
    x = np.round(rng.normal(100, 15, 5000), 1)
    enc = NumericEncoder.fit("bmi", pd.Series(x))
    assert enc.decimals == 1 and not enc.discrete
    out = generated(enc, 20_000)
    assert np.array_equal(out, np.round(out, 1)) and len(np.unique(out)) > 200
    assert x.min() <= out.min() and out.max() <= x.max()


def test_few_valued_floats_are_discrete():
    rng = np.random.default_rng(3)
    codes = np.log(np.arange(1, 32, dtype=float))  # 31 log-transformed codes, full float precision
    x = rng.choice(codes, 4000, p=np.linspace(1, 3, 31) / np.linspace(1, 3, 31).sum())
    enc = NumericEncoder.fit("code", pd.Series(x))
    assert enc.discrete and enc.decimals is None
    assert [sp.role for sp in enc.spans] == ["mode"]  # a one-hot of the values, no scalar
    out = generated(enc, 20_000)
    assert set(out.tolist()) <= set(codes.tolist()) and len(set(out.tolist())) == 31
    # too few rows per value for that many values: a measurement, not a code
    assert not NumericEncoder.fit("code", pd.Series(codes.repeat(3))).discrete


def test_integer_valued_floats_come_back_whole():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 1000, 5000).astype(float)
    x[::17] = np.nan
    enc = NumericEncoder.fit("visits", pd.Series(x), dtype="float64")  # read as numerical, not integer
    assert enc.decimals == 0 and not enc.integer
    out = generated(enc, 20_000)
    assert np.array_equal(out, np.round(out))


def test_recorded_decimals():
    assert recorded_decimals(np.array([0.25, 1.5, 3.0]), 0.25, 3.0) == 2
    assert recorded_decimals(np.array([1e5, 2e5, 3.5e6]), 1e5, 3.5e6) == -5
    assert recorded_decimals(np.array([100.0, 300.0]), 100.0, 300.0) == -1  # a step of 100 spans it twice only
    assert recorded_decimals(np.array([101.0, 300.0]), 101.0, 300.0) == 0
    assert recorded_decimals(np.log(np.array([2.0, 3.0])), 0.6, 1.1) is None
    # one computed value among 2,000 recorded at two decimals: still two decimals; two of them: not
    recorded = np.round(np.linspace(0, 10, 2000), 2)
    assert recorded_decimals(np.append(recorded, 1 / 3), 0, 10) == 2
    assert recorded_decimals(np.append(recorded, [1 / 3, 2 / 3, 4 / 3]), 0, 10) is None
    x32 = np.array([0.1, 2.7], dtype=np.float32).astype(np.float64)
    assert recorded_decimals(x32, 0.1, 2.7, "float32") == 1 and recorded_decimals(x32, 0.1, 2.7) is None


def test_rounding_keeps_values_inside_declared_bounds():
    enc = NumericEncoder.fit("x", pd.Series(np.arange(0.0, 100.0)), bounds=(0.4, 99.6))
    assert enc.decimals == 0
    out = generated(enc, 5000)
    assert out.min() >= 0.4 and out.max() <= 99.6 and np.array_equal(out, np.round(out))


@pytest.mark.parametrize("numerical", ["mode", "quantile", "minmax"])
def test_every_numeric_method_rounds_to_the_recorded_precision(numerical):
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"a": np.round(rng.uniform(0, 50, 2000), 2)})
    tf = TableTransformer(numerical=numerical, seed=0).fit(df)
    noisy = tf.transform(df)
    noisy[:, 0] += rng.normal(0, 0.01, len(df)).astype(np.float32)
    out = tf.inverse_transform(noisy, rng=0)["a"].to_numpy()
    assert np.array_equal(out, np.round(out, 2))


def test_exactness_survives_serialisation():
    rng = np.random.default_rng(6)
    df = pd.DataFrame({"code": rng.choice([0.5, 1.25, 7.0], 600), "v": np.round(rng.normal(0, 1, 600), 3)})
    tf = TableTransformer(seed=0).fit(df)
    back = TableTransformer.from_dict(json.loads(json.dumps(tf.to_dict())))
    assert [e.to_dict() for e in back.encoders_] == [e.to_dict() for e in tf.encoders_]
    assert back.encoders_[0].discrete and back.encoders_[1].decimals == 3
    assert back.output_dim_ == tf.output_dim_


def test_old_encoder_dicts_keep_their_layout():
    """An encoder saved before decimals and discreteness existed loads with its old width and decodes."""
    d = {"type": "numeric", "column": "x", "method": "mode", "lower": 0.0, "upper": 2.0, "integer": False,
         "has_missing": False, "fill": 1.0, "dtype": "float64", "means": [0.0, 2.0], "stds": [1e-6, 1e-6],
         "weights": [0.5, 0.5]}
    enc = NumericEncoder.from_dict(d)
    assert enc.width == 3 and not enc.discrete and enc.decimals is None
    assert set(generated(enc, 100).tolist()) == {0.0, 2.0}
