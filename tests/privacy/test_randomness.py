"""The DP randomness source: Poisson law at every rate, CSPRNG Gaussians, no dependence on the seed."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from tabsynth.errors import PrivacyConfigError
from tabsynth.privacy.engine import _poisson_sampler_class
from tabsynth.privacy.randomness import Randomness, reproducible_noise

RATES = [0.01, 0.3, 0.5, 0.9, 1.0]


@pytest.mark.parametrize("mode", ["fresh", "secure"])
@pytest.mark.parametrize("q", RATES)
def test_poisson_batches_have_the_poisson_law(mode, q):
    # each row independently with probability q: Binomial(n, q) sizes, inclusion rate q per row,
    # no row twice in a batch (the law must not depend on a drawn size: n = 101 at q = 0.5 caught that)
    n, steps = 101, 4000
    sampler = _poisson_sampler_class()(num_samples=n, sample_rate=q, steps=steps, randomness=Randomness(mode))
    hits = np.zeros((steps, n), dtype=bool)
    for i, batch in enumerate(sampler):
        assert len(set(batch)) == len(batch)
        hits[i, batch] = True
    sizes = hits.sum(1)
    if q == 1.0:
        assert (sizes == n).all()
        return
    sd = math.sqrt(n * q * (1 - q))
    assert abs(sizes.mean() - n * q) < 5 * sd / math.sqrt(steps)
    assert abs(sizes.var() / sd ** 2 - 1) < 0.12
    # P(|S| >= n/2) as the binomial law has it
    assert abs((sizes >= n / 2).mean() - stats.binom.sf(math.ceil(n / 2) - 1, n, q)) < 0.03
    assert np.abs(hits.mean(0) - q).max() < 5 * math.sqrt(q * (1 - q) / steps)


def test_secure_gaussians_have_the_normal_law():
    r = Randomness("secure")
    z = r.normal(0.0, 3.0, size=(200, 250))
    assert z.shape == (200, 250)
    assert stats.kstest(z.ravel() / 3.0, "norm").pvalue > 1e-4
    assert abs(z.mean()) < 5 * 3.0 / math.sqrt(z.size) and abs(z.std() / 3.0 - 1) < 0.02
    t = r.torch_normal(2.0, torch.zeros(50_000, dtype=torch.float32))
    assert t.dtype == torch.float32 and stats.kstest(t.numpy() / 2.0, "norm").pvalue > 1e-4
    assert isinstance(r.normal(1.0, 1.0), float)


def test_fresh_noise_ignores_every_seed_and_reproducible_noise_is_opt_in():
    a, b = Randomness.for_fit(secure=False), Randomness.for_fit(secure=False)
    assert a.mode == "fresh" and not np.allclose(a.normal(0, 1, 8), b.normal(0, 1, 8))
    with reproducible_noise(5):
        c, d = Randomness.for_fit(secure=False), Randomness.for_fit(secure=False)
        assert not c.private and np.allclose(c.normal(0, 1, 8), d.normal(0, 1, 8))
        with pytest.raises(PrivacyConfigError, match="exclude each other"):
            Randomness.for_fit(secure=True)
    assert Randomness.for_fit(secure=False).mode == "fresh"


def test_isolated_block_leaves_the_seeded_stream_alone():
    # draws inside (their number follows a private batch size) never shift the draws after it
    r = Randomness("fresh")
    after = []
    for inside in (3, 3000):
        torch.manual_seed(0)
        with r.isolated(torch.device("cpu")):
            torch.rand(inside)
        after.append(torch.rand(4))
    assert torch.equal(after[0], after[1])


@pytest.mark.parametrize("mode, clipping", [("fresh", "per_sample"), ("secure", "per_sample"), ("fresh", "ghost")])
def test_dp_sgd_step_adds_gaussian_noise_of_sigma_times_c(mode, clipping):
    # the optimizer's noise is ours (from the fit's Randomness): it must be N(0, (sigma C)^2) per
    # coordinate of the clipped sum, whichever source and clipping mode
    from tabsynth.privacy.engine import make_private

    data = torch.randn(64, 50, generator=torch.Generator().manual_seed(0))

    def step_grad(sigma):
        module = torch.nn.Linear(50, 40)
        for p in module.parameters():  # the same weights in both steps: only the noise differs
            torch.nn.init.constant_(p, 0.1)
        dp = make_private(module, torch.optim.SGD(module.parameters(), lr=0.0), data, sample_rate=1.0,
                          steps_per_epoch=1, expected_batch_size=64, noise_multiplier=sigma, max_grad_norm=0.5,
                          randomness=Randomness(mode), clipping=clipping)
        for (batch,) in dp.loader:
            dp.optimizer.zero_grad()
            dp.loss(dp.module(batch).pow(2).sum(1)).backward()
            dp.optimizer.step()
        return torch.cat([p.grad.reshape(-1) for p in module.parameters()])

    noise = (step_grad(2.0) - step_grad(0.0)) * 64  # the scaled-back difference is the noise alone
    n = noise.numel()  # 5 standard errors of the sample std and mean of N(0, 1) draws
    assert abs(noise.std().item() - 2.0 * 0.5) < 5 / math.sqrt(2 * n) and abs(noise.mean().item()) < 5 / math.sqrt(n)
    assert stats.kstest(noise.numpy(), "norm").pvalue > 1e-4
