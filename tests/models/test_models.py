"""The shared fit/sample life cycle of every model family (small data, 1-2 epochs)."""

import os
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

import tabsynth as ts
from tabsynth.errors import ConfigError, InvalidConditionError, ModelFileError, NotFittedError, SamplingWarning

FAST = dict(epochs=1, batch_size=100, seed=0, verbose=False)
MODELS = [
    pytest.param(lambda **kw: ts.CTGAN(generator_dim=(64, 64), discriminator_dim=(64, 64), pac=10, **{**FAST, **kw}),
                 id="ctgan"),
    pytest.param(lambda **kw: ts.TVAE(compress_dims=(64,), decompress_dims=(64,), **{**FAST, **kw}), id="tvae"),
    pytest.param(lambda **kw: ts.TabularAR(embedding_dim=32, hidden=(64,), **{**FAST, **kw}), id="tabularar"),
]


def test_the_contract_covers_every_registered_family():
    from tabsynth.models.registry import model_names

    assert sorted(p.id for p in MODELS) == sorted(model_names()), "add the new family to MODELS (small and fast)"


@pytest.fixture(scope="module")
def table():
    df = ts.datasets.load("credit_data").sample(600, random_state=0).reset_index(drop=True)
    df["visit"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(600) % 97, unit="D")
    df["patient"] = [f"P{i:04d}" for i in range(600)]
    return df


@pytest.fixture(scope="module", params=MODELS)
def fitted(request, table):
    return request.param(), request.param().fit(table)


def test_output_matches_input_schema(fitted, table):
    _, model = fitted
    syn = model.sample(500, seed=1)
    assert list(syn.columns) == list(table.columns)
    assert syn.dtypes.equals(table.dtypes)
    assert len(syn) == 500
    for col in ["Home", "Marital", "Job", "Status"]:
        assert set(syn[col].dropna()) <= set(table[col].dropna())
    for col in ["Seniority", "Amount"]:
        assert syn[col].between(table[col].min(), table[col].max()).all()
    assert syn["patient"].is_unique and syn["patient"].str.match(r"^P\d{4}$").all()


def test_null_pattern_is_modelled(table):
    model = ts.TVAE(epochs=30, batch_size=200, seed=0, verbose=False).fit(table)
    syn = model.sample(4000, seed=0)
    # Income has ~8% missing in this sample; the model produces missing values there and nowhere new
    assert syn["Income"].isna().any()
    assert not syn["Status"].isna().any() and not syn["Seniority"].isna().any()


def test_seed_reproduces_fit_and_sample(table):
    a = ts.CTGAN(generator_dim=(32,), discriminator_dim=(32,), **FAST).fit(table).sample(200, seed=3)
    b = ts.CTGAN(generator_dim=(32,), discriminator_dim=(32,), **FAST).fit(table).sample(200, seed=3)
    pd.testing.assert_frame_equal(a, b)


def test_block_size_does_not_change_samples(fitted, monkeypatch):
    """Rows go through the network in blocks, but their random numbers are drawn per chunk, so the
    block size (a speed knob) never changes what a seed gives, conditions included."""
    from tabsynth.models import generation as base

    _, model = fitted
    want = model.sample(700, seed=5), model.sample(300, seed=6, conditions={"Home": "rent"})
    monkeypatch.setattr(base, "BLOCK_ROWS", 64)
    got = model.sample(700, seed=5), model.sample(300, seed=6, conditions={"Home": "rent"})
    for a, b in zip(want, got):
        pd.testing.assert_frame_equal(a, b)


def test_seed_does_not_touch_global_rng(table):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ts.TVAE(**FAST).fit(table).sample(10, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_sample_zero_rows(fitted, table):
    _, model = fitted
    empty = model.sample(0)
    assert empty.empty and list(empty.columns) == list(table.columns)


def test_save_load_same_samples(fitted, tmp_path):
    _, model = fitted
    path = model.save(tmp_path / "m.tsyn")
    again = ts.load(path)
    pd.testing.assert_frame_equal(model.sample(300, seed=7), again.sample(300, seed=7))
    assert again.loss_history_.shape == model.loss_history_.shape
    assert not again.privacy_spent().is_dp


def test_loss_history(fitted):
    _, model = fitted
    hist = model.loss_history_
    assert len(hist) == 1 and hist["epoch"].tolist() == [0]
    assert np.isfinite(hist.drop(columns="epoch").to_numpy()).all()


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_tabsynth_test",))


def test_load_refuses_pickle_payload(fitted, tmp_path, monkeypatch):
    _, model = fitted
    monkeypatch.chdir(tmp_path)
    good = model.save(tmp_path / "good.tsyn")
    with zipfile.ZipFile(good) as zf:
        config = zf.read("config.json")
    bad = tmp_path / "bad.tsyn"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("config.json", config)
        zf.writestr("weights.pt", pickle.dumps({"w": _Evil()}))
    with pytest.raises(ModelFileError, match="refused unread"):
        ts.load(bad)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(ModelFileError, match="not a tabsynth model file"):
        ts.load(raw)
    assert not (tmp_path / "pwned_by_tabsynth_test").exists()
    with pytest.raises(ModelFileError, match="not found"):
        ts.load(tmp_path / "nope.tsyn")


def test_load_of_a_folder_is_a_model_file_error(tmp_path):
    (tmp_path / "release").mkdir()
    with pytest.raises(ModelFileError, match="is a folder, not a model file"):
        ts.load(tmp_path / "release")


def test_conditions_honoured_on_every_row(fitted):
    _, model = fitted
    syn = model.sample(300, seed=0, conditions={"Home": "rent"})
    assert len(syn) == 300 and (syn["Home"] == "rent").all()
    both = model.sample(100, seed=0, conditions={"Home": "owner", "Status": "good"})
    assert len(both) == 100 and (both["Home"] == "owner").all() and (both["Status"] == "good").all()


def test_bad_conditions(fitted):
    _, model = fitted
    with pytest.raises(InvalidConditionError, match="unknown column 'nope'"):
        model.sample(10, conditions={"nope": 1})
    with pytest.raises(InvalidConditionError, match="Home='castle' cannot be generated"):
        model.sample(10, conditions={"Home": "castle"})
    with pytest.raises(InvalidConditionError, match="it is integer"):
        model.sample(10, conditions={"Seniority": 3})
    with pytest.raises(InvalidConditionError, match="must be a dict"):
        model.sample(10, conditions=[("Home", "rent")])


def test_rare_condition_combination_warns_and_stops(fitted):
    _, model = fitted
    if isinstance(model, ts.TabularAR) and model.resolved_params()["order"] == "any":  # met directly: no rejection
        syn = model.sample(5000, seed=0, conditions={"Home": "ignore", "Marital": "widow", "Job": "others"},
                           max_tries=1)
        assert len(syn) == 5000
        assert ((syn["Home"] == "ignore") & (syn["Marital"] == "widow") & (syn["Job"] == "others")).all()
        return
    with pytest.warns(SamplingWarning, match="rows honour"):
        syn = model.sample(5000, seed=0, conditions={"Home": "ignore", "Marital": "widow", "Job": "others"},
                           max_tries=1)
    assert len(syn) < 5000
    assert ((syn["Home"] == "ignore") & (syn["Marital"] == "widow") & (syn["Job"] == "others")).all()


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_sample_to_file_streams(fitted, tmp_path, suffix, table):
    _, model = fitted
    path = model.sample_to_file(1050, tmp_path / f"out{suffix}", batch_rows=200, seed=1)
    back = ts.io.read_table(path)
    assert len(back) == 1050 and list(back.columns) == list(table.columns)
    assert back["patient"].is_unique


def test_not_fitted_and_bad_params(table):
    with pytest.raises(NotFittedError, match="call fit"):
        ts.CTGAN().sample(5)
    with pytest.raises(ConfigError, match=r"batch_size \(105\) must be a multiple of pac \(10\)"):
        ts.CTGAN(batch_size=105, verbose=False).fit(table)
    with pytest.raises(ConfigError, match="epochs must be a positive integer"):
        ts.TVAE(epochs=0, verbose=False).fit(table)
    with pytest.raises(ConfigError, match="device='tpu'"):
        ts.TVAE(device="tpu", verbose=False).fit(table)
    with pytest.raises(ConfigError, match=r"generator_average must be a number in \[0, 1\), got 1"):
        ts.CTGAN(generator_average=1, **FAST).fit(table)
    with pytest.raises(ConfigError, match="non-negative integer"):
        ts.TVAE(**FAST).fit(table).sample(-1)
    with pytest.raises(ts.errors.DataError, match="no rows"):
        ts.TVAE(**FAST).fit(table.iloc[:0])


@pytest.mark.parametrize("make", MODELS)
def test_one_row_and_constant_tables(make):
    one = pd.DataFrame({"a": [1.5], "b": ["x"], "c": [3]})
    syn = make().fit(one).sample(20, seed=0)
    assert (syn["a"] == 1.5).all() and (syn["b"] == "x").all() and (syn["c"] == 3).all()
    const = pd.DataFrame({"a": [2.0] * 50, "b": ["y"] * 50})
    syn = make().fit(const).sample(10, seed=0)
    assert (syn["a"] == 2.0).all() and (syn["b"] == "y").all()


def test_only_ids_table():
    df = pd.DataFrame({"key": [f"K{i:03d}" for i in range(40)]})
    syn = ts.CTGAN(**FAST).fit(df).sample(5, seed=0)
    assert syn["key"].is_unique and len(syn) == 5


def test_progress_bar_and_device_message(table, capsys):
    ts.TVAE(epochs=1, batch_size=200, seed=0, verbose=True).fit(table)
    captured = capsys.readouterr()
    assert "on cpu" in captured.out and "TVAE" in captured.err
    ts.TVAE(epochs=1, batch_size=200, seed=0, verbose=False).fit(table)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


@pytest.mark.parametrize("cls", [ts.CTGAN, ts.TVAE, ts.TabularAR])
def test_bf16_autocast_trains_and_samples(cls):
    df = ts.datasets.load("adult").head(300)
    fp32 = cls(epochs=1, batch_size=100, seed=0, verbose=False, device="cpu").fit(df)
    bf16 = cls(epochs=1, batch_size=100, seed=0, verbose=False, device="cpu", precision="bf16").fit(df)
    hist = bf16.loss_history_.drop(columns="epoch")
    assert np.isfinite(hist.to_numpy()).all()
    assert not hist.equals(fp32.loss_history_.drop(columns="epoch"))  # the matmuls did run in bf16
    out = bf16.sample(50, seed=1)
    assert list(out.columns) == list(df.columns) and len(out) == 50


def test_precision_errors():
    df = ts.datasets.load("adult").head(100)
    with pytest.raises(ts.errors.ConfigError, match="needs a CUDA device"):
        ts.TVAE(epochs=1, device="cpu", precision="fp16", verbose=False).fit(df)
    with pytest.raises(ts.errors.ConfigError, match="without DP"):
        ts.TVAE(epochs=1, device="cpu", precision="bf16", epsilon=1.0, verbose=False).fit(df)
    with pytest.raises(ts.errors.ConfigError, match="use one of fp32"):
        ts.CTGAN(epochs=1, device="cpu", precision="half", verbose=False).fit(df)
