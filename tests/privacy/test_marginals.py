"""DP marginals (issue 7 item 4): accounting, sensitivity, canaries, post-processing only."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import tabsynth as ts
from tabsynth.errors import ConfigError
from tabsynth.privacy.accountant import ORDERS, Accountant, gaussian_rdp, rdp_to_dp
from tabsynth.privacy.marginals import exact_tables, group_codes, marginal_loss, plan_marginals, select_tables

DP = dict(epochs=1, batch_size=250, seed=0, verbose=False, dp=ts.DPConfig(epsilon=1.0, marginal_epsilon_share=0.2))


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    n = 2000
    c = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    df = pd.DataFrame({
        "x": (rng.normal(50, 10, n) + 20 * (c == "a")).round(2),
        "c": c,
        "flag": rng.choice([True, False], n),
    })
    df.loc[7, "c"] = "UNIQUE_CANARY"
    df.loc[11, "x"] = 1000 * float(np.percentile(df["x"], 99))
    return df


@pytest.fixture(scope="module", params=["ctgan", "tvae", "tabularar"])
def model(request, table):
    cls = {"ctgan": ts.CTGAN, "tvae": ts.TVAE, "tabularar": ts.TabularAR}[request.param]
    # its marginal steps are off by default, and they need the any-order model
    extra = {"marginal_weight": 1.0, "order": "any"} if cls is ts.TabularAR else {}
    return cls(**DP, **extra).fit(table)


def test_marginal_release_is_accounted(model):
    spent = model.privacy_spent()
    part = spent.parts["marginals"]
    d = part.details
    # the release alone is its share of epsilon, at the accountant's RDP delta
    assert part.epsilon == pytest.approx(0.2, abs=1e-3)
    assert part.epsilon == pytest.approx(rdp_to_dp(gaussian_rdp(d["noise_multiplier"]), part.delta), abs=1e-9)
    assert d["tables"] == d["one_way"] + d["two_way"] > 0
    assert d["noise_std"] == pytest.approx(d["noise_multiplier"] * math.sqrt(d["tables"]))
    assert d["l2_sensitivity"] == pytest.approx(math.sqrt(d["tables"]))
    # every Gaussian part composes (RDP) to the total, which stays within the target
    pre, train = spent.parts["preprocessing"].details, spent.parts["training"].details
    rdp = [a + b + c for a, b, c in zip(gaussian_rdp(pre["noise_std"] / pre["l2_sensitivity"]),
                                        gaussian_rdp(d["noise_multiplier"]),
                                        gaussian_rdp(train["noise_multiplier"], train["sample_rate"], train["steps"]))]
    assert rdp_to_dp(rdp, part.delta) == pytest.approx(spent.epsilon, abs=1e-9)
    assert spent.epsilon <= 1.0 + 1e-9
    assert "marginal_loss" in model.loss_history_


def test_marginals_cost_training_noise():
    """Spending a share on marginals leaves less for DP-SGD: a larger training noise multiplier."""
    q, steps = 0.1, 50
    plain = Accountant(1.0, 1e-5)
    with_m = Accountant(1.0, 1e-5)
    release = plan_marginals(with_m, 0.3)
    assert release.name == "marginals" and plan_marginals(Accountant(1.0, 1e-5), 0.0) is None
    assert rdp_to_dp(release.rdp(), with_m.delta_rdp) == pytest.approx(0.3, abs=1e-3)
    assert with_m.training_noise(q, steps) > plain.training_noise(q, steps)
    assert len(ORDERS) == len(release.rdp())


def test_leave_one_out_sensitivity_of_the_tables(model, table):
    """Removing any one row moves each measured table by exactly one cell: L2 distance sqrt(tables)."""
    lay = model.layout_
    data = torch.from_numpy(model.transformer_.transform(table))
    codes = group_codes(data, lay)
    singles, pairs = select_tables(lay)
    sizes = [s.size for s in lay.disc_spans]
    full = exact_tables(codes, sizes, singles, pairs)
    for drop in (0, 7, 11, len(table) - 1):
        rest = exact_tables(np.delete(codes, drop, axis=0), sizes, singles, pairs)
        sq = sum(float(((a - b) ** 2).sum()) for a, b in zip(full, rest))
        assert math.sqrt(sq) == pytest.approx(math.sqrt(len(singles) + len(pairs)))


def test_tables_come_from_the_layout_only(model):
    """Which tables are measured depends on the (DP) layout, never on the rows; no pair within a column."""
    singles, pairs = select_tables(model.layout_)
    spans = model.layout_.disc_spans
    assert all(spans[g].column != spans[h].column for g, h in pairs)
    assert all(spans[g].size * spans[h].size <= 256 for g, h in pairs)
    assert select_tables(model.layout_) == (singles, pairs)


def test_canaries_with_marginals(model, table):
    syn = model.sample(20_000, seed=0)
    assert "UNIQUE_CANARY" not in set(syn["c"])
    assert syn["x"].max() < 2 * np.percentile(table["x"], 99.9)


def test_marginal_loss_is_non_negative_and_differentiable(model):
    lay, marg = model.layout_, model._dp_marginals
    logits = torch.zeros(64, lay.dim, requires_grad=True)
    loss = marginal_loss(logits, lay, marg)
    loss.backward()
    assert loss.item() >= 0 and logits.grad is not None and torch.isfinite(logits.grad).all()
    for t in [*marg.one_way, *marg.two_way]:
        assert float(t.sum()) == pytest.approx(1.0, abs=1e-5) and float(t.min()) >= 0


def test_share_refusals(table):
    with pytest.raises(ConfigError, match="marginal_epsilon_share"):
        ts.TVAE(dp=ts.DPConfig(epsilon=1.0, marginal_epsilon_share=1.0), verbose=False).fit(table)
    with pytest.raises(ConfigError, match="below 1"):
        ts.CTGAN(dp=ts.DPConfig(epsilon=1.0, preprocessing_epsilon_share=0.5, marginal_epsilon_share=0.5),
                 verbose=False).fit(table)
    with pytest.raises(ConfigError, match="marginal_weight"):
        ts.TVAE(epsilon=1.0, marginal_weight=-1.0, verbose=False).fit(table)


def test_packed_loss_equals_the_sum_over_tables(model):
    """The one-matmul loss equals the per-table KL divergences averaged over the tables."""
    lay, marg = model.layout_, model._dp_marginals
    logits = torch.randn(128, lay.dim, generator=torch.Generator().manual_seed(0))
    probs = [torch.softmax(logits[:, s.start:s.end], 1) for s in lay.disc_spans]

    def kl(t, m):
        keep = t > 0
        return float((t[keep] * (t[keep] / m[keep]).log()).sum())

    total = sum(kl(t, probs[g].mean(0)) for g, t in zip(marg.singles, marg.one_way))
    total += sum(kl(t, probs[g].T @ probs[h] / len(logits)) for (g, h), t in zip(marg.pairs, marg.two_way))
    assert float(marginal_loss(logits, lay, marg)) == pytest.approx(total / marg.n_tables, rel=1e-4)


@pytest.mark.parametrize("model, measured", [
    (ts.CTGAN(epsilon=1.0), True), (ts.CTGAN(epsilon=1.0, marginal_weight=0.0), False),
    (ts.TVAE(epsilon=1.0), True), (ts.TVAE(epsilon=1.0, marginal_weight=0), False),
    (ts.TabularAR(epsilon=1.0), False), (ts.TabularAR(epsilon=1.0, marginal_weight=1.0, order="any"), True),
    (ts.TabularAR(epsilon=1.0, marginal_weight=1.0), False),  # fixed order under DP: no marginal steps
])
def test_marginals_are_measured_only_when_the_fit_reads_them(model, measured):
    share = model.dp_config().marginal_epsilon_share
    assert (share > 0) == measured  # unread marginals would spend epsilon on nothing: their share trains
