"""The DP rule book (docs/privacy.md) as tests: canaries, accounting, clipping, sensitivity, refusals."""

import math
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

import tabsynth as ts
from tabsynth.errors import ConfigError, PrivacyBudgetExceeded, PrivacyConfigError
from tabsynth.models.gan_networks import Discriminator, pair_loss
from tabsynth.privacy.accountant import ORDERS, Accountant, gaussian_rdp, rdp_to_dp
from tabsynth.privacy.engine import make_private, validate_module
from tabsynth.privacy.preprocessing import plan, private_transformer
from tabsynth.privacy.randomness import Randomness, reproducible_noise

DP = dict(epochs=1, batch_size=250, seed=0, verbose=False)


@pytest.fixture(scope="module")
def canary_table():
    rng = np.random.default_rng(0)
    n = 2000
    df = pd.DataFrame({
        "x": rng.normal(50, 10, n).round(2),
        "c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
        "flag": rng.choice([True, False], n),
    })
    df.loc[7, "c"] = "UNIQUE_CANARY"
    df.loc[11, "x"] = 1000 * float(np.percentile(df["x"], 99))
    return df


@pytest.fixture(scope="module", params=["ctgan", "tvae", "tabularar"])
def dp_model(request, canary_table):
    cls = {"ctgan": ts.CTGAN, "tvae": ts.TVAE, "tabularar": ts.TabularAR}[request.param]
    extra = {"marginal_weight": 1.0} if cls is ts.TabularAR else {}  # its marginal steps are off by default
    return cls(epsilon=1.0, **DP, **extra).fit(canary_table)


def test_canaries(canary_table, dp_model, tmp_path):
    df, model = canary_table, dp_model
    syn = model.sample(50_000, seed=0)
    assert "UNIQUE_CANARY" not in set(syn["c"])
    assert syn["x"].max() < 2 * np.percentile(df["x"], 99.9)
    # the saved model holds no trace of the canary either (observed domains are dropped under DP)
    path = model.save(tmp_path / "m.tsyn")
    with zipfile.ZipFile(path) as zf:
        assert "UNIQUE_CANARY" not in zf.read("config.json").decode()
    # with the category in public metadata, the model may produce it
    meta = ts.Metadata.detect(df).with_public_domain("c", categories=["a", "b", "c", "UNIQUE_CANARY"])
    acc = Accountant(1.0, 1e-5)
    stats = private_transformer(df, meta, acc, plan(meta, acc, 0.2), n_hat=len(df), max_modes=10, max_categories=100,
                                rng=np.random.default_rng(0), noise_rng=np.random.default_rng(1))
    assert "UNIQUE_CANARY" in stats.transformer.encoder_of("c").categories
    assert "UNIQUE_CANARY" not in model.transformer_.encoder_of("c").categories


def test_reported_epsilon_recomputes_with_opacus(canary_table, dp_model):
    from opacus.accountants import RDPAccountant

    model = dp_model
    spent = model.privacy_spent()
    train = spent.parts["training"]
    d = train.details
    acc = RDPAccountant()
    acc.history = [(d["noise_multiplier"], d["sample_rate"], d["steps"])]
    assert acc.get_epsilon(delta=train.delta, alphas=ORDERS) == pytest.approx(train.epsilon, abs=1e-6)
    # one DP step per update, the count of steps from the noisy row count (never the exact one)
    assert d["steps"] == math.ceil(spent.parts["preprocessing"].details["noisy_row_count"] / 250)
    # the parts compose (RDP) to the total, which stays within the target
    pre = spent.parts["preprocessing"].details
    # marginals are measured only by the fits that read them (not the fixed-order TabularAR)
    measured = model._uses_marginals()
    marg = gaussian_rdp(spent.parts["marginals"].details["noise_multiplier"]) if measured else [0.0] * len(ORDERS)
    rdp = [a + b + c for a, b, c in zip(gaussian_rdp(pre["noise_std"] / pre["l2_sensitivity"]), marg,
                                        gaussian_rdp(d["noise_multiplier"], d["sample_rate"], d["steps"]))]
    assert set(spent.parts) == {"preprocessing", "training", "partition_selection"} | ({"marginals"} if measured else set())
    assert rdp_to_dp(rdp, train.delta) == pytest.approx(spent.epsilon, abs=1e-9)
    assert spent.epsilon <= 1.0 + 1e-9
    assert spent.delta <= 1e-5 and spent.delta == pytest.approx(train.delta + spent.parts["partition_selection"].delta)
    assert model.loss_history_["epsilon"].iloc[-1] == pytest.approx(spent.epsilon)


def _critic(in_dim: int = 6) -> torch.nn.Module:
    torch.manual_seed(0)
    return Discriminator(in_dim, (16, 16), pac=1, dropout=0.0)


def _summed_grad(pairs: torch.Tensor, clip: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
    critic = _critic(pairs.shape[-1])
    opt = torch.optim.SGD(critic.parameters(), lr=0.1)
    dp = make_private(critic, opt, pairs[:, 0], sample_rate=1.0, steps_per_epoch=1, expected_batch_size=len(pairs),
                      noise_multiplier=0.0, max_grad_norm=clip, randomness=Randomness("reproducible", 0))
    gsm, dp_opt = dp.module, dp.optimizer
    dp_opt.zero_grad()
    pair_loss(gsm, pairs).mean().backward()
    samples = [p.grad_sample for p in critic.parameters()]
    dp_opt.pre_step()  # clips and sums; noise_multiplier 0 adds nothing
    summed = torch.cat([p.summed_grad.reshape(-1) for p in critic.parameters()])
    return summed, samples


def test_every_critic_parameter_is_clipped_per_sample():
    pairs = torch.randn(32, 2, 6) * 5
    summed, samples = _summed_grad(pairs, clip=0.5)
    assert all(g is not None and g.shape[0] == 32 for g in samples)
    norms = torch.sqrt(sum((g.reshape(32, -1) ** 2).sum(1) for g in samples))
    assert (norms > 0.5).any()  # the test data does need clipping
    assert summed.norm() <= 32 * 0.5 + 1e-4


def test_leave_one_out_sensitivity_of_one_critic_step():
    torch.manual_seed(1)
    pairs = torch.randn(40, 2, 6) * 10
    full, _ = _summed_grad(pairs, clip=1.0)
    without, _ = _summed_grad(pairs[1:], clip=1.0)
    assert (full - without).norm() <= 1.0 + 1e-5


def test_no_batchnorm_in_dp_modules(dp_model):
    module = dp_model.discriminator_ if isinstance(dp_model, ts.CTGAN) else dp_model.net_
    assert not [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with pytest.raises(PrivacyConfigError, match="BatchNorm"):
        validate_module(torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3)))


def test_refusals(canary_table):
    with pytest.raises(PrivacyConfigError, match="pac=10 .*use pac=1"):
        ts.CTGAN(epsilon=1.0, pac=10, **DP).fit(canary_table)
    with pytest.raises(PrivacyConfigError, match="use loss='bce'"):
        ts.CTGAN(epsilon=1.0, loss="wgan-gp", **DP).fit(canary_table)
    with pytest.raises(PrivacyConfigError, match=r"delta=0.001 is not below 1/n"):
        ts.TVAE(epsilon=1.0, delta=1e-3, **DP).fit(canary_table)
    with pytest.raises(ConfigError, match="epsilon must be a finite number greater than 0"):
        ts.TVAE(epsilon=-1.0, **DP).fit(canary_table)


def test_budget_too_small_fails_before_training():
    df = ts.datasets.load("adult").head(500)
    model = ts.TVAE(epsilon=0.01, epochs=30, batch_size=100, verbose=False)
    with pytest.raises(PrivacyBudgetExceeded, match=r"epsilon=0.01 is too small to train.*epsilon >= "):
        model.fit(df)
    assert not hasattr(model, "transformer_")


@pytest.mark.slow
def test_wide_messy_table_trains_at_epsilon_one():
    rng = np.random.default_rng(0)
    n = 2000
    cols = {f"num{i}": rng.lognormal(3 + i % 5, 1, n) * (1 if i % 3 else -1) for i in range(42)}
    cols.update({f"cat{i}": rng.choice(list("abcdef"[: 2 + i]), n) for i in range(7)})
    cols["free_text"] = rng.choice([f"note {i}" for i in range(3000)], n)
    df = pd.DataFrame(cols)
    for i in range(0, 42, 3):
        df.loc[rng.random(n) < 0.3, f"num{i}"] = np.nan
    assert df.shape[1] == 50 and df["free_text"].nunique() > 1000
    model = ts.CTGAN(epsilon=1.0, epochs=1, batch_size=500, seed=0, verbose=False).fit(df)
    syn = model.sample(2000, seed=0)
    assert list(syn.columns) == list(df.columns)
    empty = [c for c in df.columns if c.startswith("num") and syn[c].isna().all()]
    assert not empty
    spent = model.privacy_spent()
    assert spent.epsilon <= 1.0 + 1e-9
    assert set(spent.parts["preprocessing"].details["columns"]) == set(df.columns) - {"free_text"} | {"free_text"}


def test_dp_model_round_trips_through_save(dp_model, tmp_path):
    model = dp_model
    again = ts.load(model.save(tmp_path / "dp.tsyn"))
    assert again.privacy_spent() == model.privacy_spent()
    pd.testing.assert_frame_equal(again.sample(100, seed=2), model.sample(100, seed=2))


def test_physical_batches_give_the_same_step_as_one_logical_batch():
    # a Poisson batch split into physical ones clips and sums the same
    pairs = torch.randn(32, 2, 6) * 5

    def one_step(limit):
        critic = _critic(6)
        opt = torch.optim.SGD(critic.parameters(), lr=0.1)
        dp = make_private(critic, opt, pairs[:, 0], sample_rate=1.0, steps_per_epoch=1, expected_batch_size=32,
                          noise_multiplier=0.0, max_grad_norm=0.5, randomness=Randomness("reproducible", 0),
                          max_physical_batch_size=limit)
        sizes = []
        for (batch,) in dp.loader:
            sizes.append(len(batch))
            dp.optimizer.zero_grad()
            idx = torch.cat([torch.nonzero((pairs[:, 0] == row).all(1))[0] for row in batch])
            pair_loss(dp.module, pairs[idx]).mean().backward()
            dp.optimizer.step()
            assert dp.completes == (sum(sizes) == 32)  # only the last physical batch ends the logical one
        return sizes, torch.cat([p.detach().reshape(-1) for p in critic.parameters()])

    whole_sizes, whole = one_step(None)
    split_sizes, split = one_step(10)
    assert whole_sizes == [32] and split_sizes == [8, 8, 8, 8]  # at most 10 rows each
    assert torch.allclose(whole, split, atol=1e-6)


def test_ghost_clipping_gives_the_per_sample_clipped_step():
    # Opacus' fast gradient clipping: same clipped sum as materialised per-sample gradients
    pairs = torch.randn(24, 2, 6) * 5

    def one_step(clipping):
        critic = _critic(6)
        opt = torch.optim.SGD(critic.parameters(), lr=0.1)
        dp = make_private(critic, opt, pairs[:, 0], sample_rate=1.0, steps_per_epoch=1, expected_batch_size=24,
                          noise_multiplier=0.0, max_grad_norm=0.5, randomness=Randomness("reproducible", 0), clipping=clipping)
        for (batch,) in dp.loader:
            dp.optimizer.zero_grad()
            dp.loss(pair_loss(dp.module, pairs)).backward()
            dp.optimizer.step()
        return torch.cat([p.detach().reshape(-1) for p in critic.parameters()])

    before = torch.cat([p.detach().reshape(-1) for p in _critic(6).parameters()])
    hooks, ghost = one_step("per_sample"), one_step("ghost")
    assert not torch.allclose(hooks, before)
    assert torch.allclose(hooks, ghost, atol=1e-5)


@pytest.mark.parametrize("cls", [pytest.param(ts.TVAE, marks=pytest.mark.slow),
                                 pytest.param(ts.CTGAN, marks=pytest.mark.slow), ts.TabularAR])
def test_ghost_clipping_trains_the_same_model(cls):
    df = ts.datasets.load("adult").head(400)
    fits = []
    for mode in ("hooks", "ghost"):
        with reproducible_noise(0):
            fits.append(cls(epochs=1, batch_size=100, seed=0, verbose=False, device="cpu",
                            dp=ts.DPConfig(epsilon=4.0, grad_sample_mode=mode)).fit(df))
    pd.testing.assert_frame_equal(fits[0].loss_history_, fits[1].loss_history_, rtol=1e-4)
    assert fits[1].privacy_spent().parts["training"].details["grad_sample_mode"] == "ghost"
    with pytest.raises(ConfigError, match="grad_sample_mode"):
        cls(dp=ts.DPConfig(epsilon=1.0, grad_sample_mode="fast"), verbose=False).fit(df)


def test_ctgan_dp_defaults_apply_only_when_left_unset():
    dp, plain = ts.CTGAN(epsilon=1.0), ts.CTGAN()
    assert dp._resolved("discriminator_dim") == (64, 64) and plain._resolved("discriminator_dim") == (256, 256)
    assert dp._resolved("generator_lr") == 2e-3 and plain._resolved("discriminator_lr") == 2e-4
    assert dp._resolved("marginal_weight") == 5.0
    assert dp._resolved("batch_size") is None and dp._DP_STEPS.batch == 500 and ts.TVAE._DP_STEPS.batch == 2000
    assert ts.CTGAN(epsilon=1.0, discriminator_dim=(32,), generator_lr=1e-3)._resolved("generator_lr") == 1e-3
    assert ts.CTGAN(epsilon=1.0, discriminator_dim=(32,))._resolved("discriminator_dim") == (32,)


@pytest.mark.parametrize("n, batch, epochs", [(300, 30, 40), (2_000, 200, 40), (40_000, 2_000, 20), (200_000, 2_000, 10)])
def test_dp_step_rule_sizes_small_tables_for_enough_steps(n, batch, epochs):
    from tabsynth.privacy.trainer import StepRule

    rule = StepRule(batch=2000)
    assert rule.batch_for(n) == batch and rule.epochs_for(n, batch) == epochs
    assert epochs * -(-n // batch) >= rule.min_steps  # at least 400 steps, whatever the size
    assert StepRule(batch=500).batch_for(40) == 16 and StepRule(batch=500).batch_for(10) == 10


@pytest.mark.parametrize("cls", [pytest.param(ts.TVAE, marks=pytest.mark.slow),
                                 pytest.param(ts.CTGAN, marks=pytest.mark.slow), ts.TabularAR])
def test_dp_fit_applies_the_step_rule_to_what_is_left_unset(cls):
    df = ts.datasets.load("adult").head(600)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with reproducible_noise(0):
            auto = cls(epsilon=1.0, seed=0, verbose=False, device="cpu").fit(df)
            given = cls(epsilon=1.0, epochs=2, batch_size=300, seed=0, verbose=False, device="cpu").fit(df)
    n_hat = auto.n_rows_
    train = auto.privacy_spent().parts["training"].details
    rule = cls._DP_STEPS
    assert train["expected_batch_size"] == rule.batch_for(n_hat)
    assert train["epochs"] == rule.epochs_for(n_hat, rule.batch_for(n_hat))
    assert auto.privacy_spent().parts["training"].details["steps"] >= rule.min_steps
    assert auto.privacy_spent().parts["training"].epsilon <= 1.0
    assert given.privacy_spent().parts["training"].details["epochs"] == 2
    assert given.privacy_spent().parts["training"].details["expected_batch_size"] == 300
    assert cls(epsilon=1.0).resolved_params()["epochs"].startswith("auto") and ts.TVAE().resolved_params()["epochs"] == 300
    assert auto.resolved_params()["epochs"] == train["epochs"]  # once fitted, the value used
