import numpy as np
import pandas as pd
import torch

import tabsynth as ts
from tabsynth.models.condition import ConditionSampler
from tabsynth.transform import TableTransformer
from tabsynth.transform.layout import SpanLayout


def _setup(df):
    tt = TableTransformer().fit(df)
    data = torch.from_numpy(tt.transform(df))
    layout = SpanLayout(tt.spans_, torch.device("cpu"))
    return tt, data, layout, ConditionSampler.from_matrix(layout, data)


def test_sampled_rows_hold_the_asked_value():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.choice(["x", "y", "z"], 5000, p=[0.9, 0.09, 0.01]),
                       "b": rng.choice([True, False], 5000), "v": rng.normal(size=5000)})
    df.loc[:99, "v"] = np.nan
    tt, data, layout, cs = _setup(df)
    gen = torch.Generator().manual_seed(0)
    cond, mask, group, slot = cs.sample(20_000, generator=gen)
    assert torch.equal(cond.sum(1), torch.ones(20_000)) and torch.equal(mask.sum(1), torch.ones(20_000))
    rows = cs.sample_rows(group, slot, generator=gen)
    codes = layout.cond_codes(data)
    assert torch.equal(codes[rows, group], slot)
    # the missing indicator of "v" is a conditional group too
    assert [s.column for s in tt.conditional_spans_] == ["a", "b", "v"]


def test_log_frequency_favours_rare_values():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.choice(["x", "y", "z"], 5000, p=[0.9, 0.09, 0.01])})
    tt, data, layout, cs = _setup(df)
    gen = torch.Generator().manual_seed(0)
    _, _, _, slot = cs.sample(50_000, log_frequency=True, generator=gen)
    _, _, _, raw = cs.sample(50_000, log_frequency=False, generator=gen)
    rare = tt.encoder_of("a").slot_of("z")
    counts = cs.counts[0]
    expected_log = float(torch.log1p(counts[rare]) / torch.log1p(counts).sum())
    assert abs(float((slot == rare).float().mean()) - expected_log) < 0.01
    assert abs(float((raw == rare).float().mean()) - float(counts[rare] / counts.sum())) < 0.005


def test_rare_category_condition_is_direct_and_fast():
    df = ts.datasets.load("adult").sample(3000, random_state=0).reset_index(drop=True)
    df.loc[0, "native-country"] = "Atlantis"  # held by one row
    model = ts.CTGAN(epochs=1, batch_size=500, seed=0, verbose=False).fit(df)
    syn = model.sample(20_000, seed=0, conditions={"native-country": "Atlantis"})
    assert len(syn) == 20_000 and (syn["native-country"] == "Atlantis").all()
