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
