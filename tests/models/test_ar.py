"""What is specific to TabularAR: the tokens, the causal context, direct conditions, any-order sampling."""

import numpy as np
import pandas as pd
import pytest
import torch

import tabsynth as ts
from tabsynth.errors import ConfigError
from tabsynth.transform import TableTransformer
from tabsynth.transform.tokens import Tokenizer, bin_edges

FAST = dict(epochs=3, batch_size=100, seed=0, verbose=False, embedding_dim=32, hidden=(64,), order="any")


@pytest.fixture(scope="module")
def table():
    return ts.datasets.load("credit_data").sample(600, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def model(table):
    return ts.TabularAR(**FAST).fit(table)


def test_bin_edges_are_public_and_increasing():
    for normal in (True, False):
        e = bin_edges(32, normal)
        assert len(e) == 33 and e[0] == -1.0 and e[-1] == 1.0 and (e.diff() > 0).all()
    assert torch.equal(bin_edges(32, True), bin_edges(32, True))


def test_tokens_round_trip(table):
    tf = TableTransformer(seed=0).fit(table)
    x = torch.from_numpy(tf.transform(table))
    tok = Tokenizer(tf.spans_, torch.device("cpu"), bins=16)
    tokens = tok.encode(x)
    assert tokens.shape == (len(x), len(tf.spans_)) and (tokens >= 0).all() and (tokens < tok.sizes).all()
    back = tok.decode(tokens, torch.rand(len(x), len(tok.cont_tokens), generator=torch.Generator().manual_seed(0)))
    disc = [sp for sp in tf.spans_ if sp.kind == "discrete"]
    for sp in disc:  # every discrete slot exactly
        assert torch.equal(back[:, sp.start:sp.end], x[:, sp.start:sp.end])
    for j, k in enumerate(tok.cont_tokens):  # every scalar inside its bin
        pos, b = tok.spans[k].start, tokens[:, k]
        lo, hi = tok.edges[j, b], tok.edges[j, b + 1]
        v, orig = back[:, pos], x[:, pos].clamp(-1, 1)
        assert ((v >= lo) & (v <= hi)).all() and ((orig >= lo) & (orig <= hi)).all()
    # a column's tokens are adjacent: the missing indicator, then the mode, then the scalar
    cols = tok.columns.tolist()
    assert cols == sorted(cols)
    roles = [sp.role for sp in tok.spans if sp.column == "Income"]
    assert roles == ["missing", "mode", "value"]


def test_the_context_is_causal(model):
    """Changing the token placed at step j changes no logits of the columns placed before it."""
    net, tok = model.net_, model.tokens_
    gen = torch.Generator().manual_seed(0)
    tokens = torch.stack([torch.randint(0, int(s), (8,), generator=gen) for s in tok.sizes], 1)
    order = torch.rand(8, tok.n_tokens, generator=gen).argsort(1)
    with torch.no_grad():
        base = net.all_logits(tokens, order)
        for j in (0, tok.n_tokens // 2, tok.n_tokens - 1):
            changed = tokens.clone()
            col = order[:, j]
            rows = torch.arange(8)
            changed[rows, col] = (changed[rows, col] + 1) % tok.sizes[col]
            after = net.all_logits(changed, order)
            earlier = order[:, : j + 1]  # the column at step j itself does not see its own token
            idx = earlier.unsqueeze(-1).expand(-1, -1, base.shape[-1])
            assert torch.equal(base.gather(1, idx), after.gather(1, idx))
            if j < tok.n_tokens - 1:
                later = order[:, j + 1:].unsqueeze(-1).expand(-1, -1, base.shape[-1])
                assert not torch.equal(base.gather(1, later), after.gather(1, later))


def test_loss_is_per_row(model, table):
    x = torch.from_numpy(model.transformer_.transform(table.head(5)))
    tokens = model.tokens_.encode(x)
    order = model._orders(5)
    with torch.no_grad():
        all_rows = model.net_(tokens, order)
        one = model.net_(tokens[2:3], order[2:3])
    assert all_rows.shape == (5,) and torch.allclose(all_rows[2:3], one, atol=1e-5)


@pytest.mark.parametrize("conditions", [
    {"Home": "owner", "Status": "bad"},
    {"Home": "priv", "Marital": "separated", "Job": "partime"},
])
def test_conditions_met_on_every_row_without_rejection(model, conditions, monkeypatch):
    calls = []
    real = ts.TabularAR._generate_chunked
    monkeypatch.setattr(ts.TabularAR, "_generate_chunked",
                        lambda self, n, cond, gen: calls.append(n) or real(self, n, cond, gen))
    syn = model.sample(400, seed=2, conditions=conditions)
    assert len(syn) == 400 and calls == [400]  # one pass of exactly the rows asked for: no rejection
    for col, value in conditions.items():
        assert (syn[col] == value).all()


def test_a_combination_held_by_one_training_row(model, table):
    combos = table.groupby(["Home", "Marital", "Job"]).size()
    home, marital, job = combos[combos == 1].index[0]
    cond = {"Home": home, "Marital": marital, "Job": job}
    syn = model.sample(300, seed=0, conditions=cond, max_tries=1)
    assert len(syn) == 300
    assert ((syn["Home"] == home) & (syn["Marital"] == marital) & (syn["Job"] == job)).all()


def test_any_order_sampling(model):
    """Rows generated along per-row random orders are valid one-hot rows that decode to the schema."""
    gen = torch.Generator().manual_seed(1)
    draws = model._draws(500, None, gen)
    draws["order"] = model._orders(500, gen)
    with torch.no_grad():
        m = model._generate_block(draws)
    for sp in model.layout_.disc_spans:
        block = m[:, sp.start:sp.end]
        assert ((block == 0) | (block == 1)).all() and (block.sum(1) == 1).all()
    assert (m[:, model.layout_.cont_idx].abs() <= 1).all()
    out = model.transformer_.inverse_transform(m.numpy(), rng=np.random.default_rng(0), one_hot=True)
    assert len(out) == 500 and set(out["Home"]) <= set(model.transformer_.encoder_of("Home").categories)


def test_fixed_order_rejects_to_meet_conditions(table):
    m = ts.TabularAR(**{**FAST, "epochs": 1, "order": "fixed"}).fit(table)
    syn = m.sample(100, seed=0, conditions={"Home": "rent", "Status": "good"})
    assert (syn["Home"] == "rent").all() and (syn["Status"] == "good").all()


def test_learns_a_dependency():
    rng = np.random.default_rng(0)
    a = rng.choice(["x", "y"], 2000)
    df = pd.DataFrame({"a": a, "b": np.where(a == "x", "p", "q"), "v": np.where(a == "x", 10.0, 50.0)
                       + rng.normal(0, 1, 2000)})
    m = ts.TabularAR(epochs=15, batch_size=200, seed=0, verbose=False).fit(df)
    syn = m.sample(2000, seed=0)
    assert ((syn["a"] == "x") == (syn["b"] == "p")).mean() > 0.95
    assert (syn.loc[syn["a"] == "y", "v"] > 30).mean() > 0.9


def test_bad_params(table):
    with pytest.raises(ConfigError, match="order must be one of"):
        ts.TabularAR(order="random", verbose=False).fit(table)
    with pytest.raises(ConfigError, match="bins must be"):
        ts.TabularAR(bins=1, verbose=False).fit(table)


def test_no_marginal_release_unless_the_marginal_steps_use_it():
    assert ts.TabularAR(epsilon=1.0).dp_config().marginal_epsilon_share == 0.0
    kept = ts.TabularAR(epsilon=1.0, marginal_weight=1.0, order="any").dp_config().marginal_epsilon_share
    assert kept == ts.DPConfig(epsilon=1.0).marginal_epsilon_share > 0
    assert ts.TabularAR().dp_config() is None


# --- exact values: what the data repeat exactly comes back exactly -----------------------------------

LOG_CODES = np.log(np.arange(1.0, 15.0))  # 14 log-transformed codes at full float precision


@pytest.fixture(scope="module")
def exact_table():
    rng = np.random.default_rng(0)
    n = 1500
    visits = rng.integers(0, 500, n).astype(float)
    visits[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({
        "hours": np.where(rng.random(n) < 0.7, 45.0, rng.uniform(20, 45, n)),  # 70% at its maximum
        "bmi": np.round(rng.normal(27, 5, n), 1),
        "code": rng.choice(LOG_CODES, n),
        "visits": visits,
        "group": rng.choice(["a", "b"], n),
    })


@pytest.fixture(scope="module")
def exact_sample(exact_table):
    md = ts.Metadata.detect(exact_table).with_column("visits", kind="numerical")  # decimals measured, not declared
    m = ts.TabularAR(**{**FAST, "epochs": 8, "batch_size": 150}).fit(exact_table, md)
    return m.sample(3000, seed=0)


def test_point_mass_at_the_maximum_comes_back_exactly(exact_table, exact_sample):
    syn = exact_sample["hours"]
    assert syn.max() == 45.0 and abs((syn == 45.0).mean() - (exact_table["hours"] == 45.0).mean()) < 0.1
    assert ((syn == 45.0) | (syn < 45.0 - 1e-5)).all()  # no value a hair below it


def test_one_decimal_column_comes_back_at_one_decimal(exact_sample):
    syn = exact_sample["bmi"]
    assert np.array_equal(syn.to_numpy(), np.round(syn.to_numpy(), 1)) and syn.nunique() > 50


def test_few_valued_floats_come_back_as_their_values(exact_sample):
    assert set(exact_sample["code"].tolist()) <= set(LOG_CODES.tolist())
    assert exact_sample["code"].nunique() >= 12


def test_integer_valued_floats_come_back_whole(exact_sample):
    syn = exact_sample["visits"]
    assert syn.dtype == np.float64 and syn.isna().any()
    present = syn.dropna().to_numpy()
    assert np.array_equal(present, np.round(present)) and len(np.unique(present)) > 100

