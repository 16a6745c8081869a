"""The generator's weight average (tabsynth.models.averaging) and CTGAN's use of it."""

import pytest
import torch
from torch import nn

import tabsynth as ts
from tabsynth.models.averaging import WeightAverage


def test_average_follows_the_warmed_up_decay_on_parameters_and_float_buffers():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        for t in (*net.parameters(), net[1].running_mean):
            t.fill_(0.0)
    avg = WeightAverage(net, decay=0.9)
    expected = 0.0
    for step, value in enumerate([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 20.0, 30.0], start=1):
        with torch.no_grad():
            for t in (*net.parameters(), net[1].running_mean):
                t.fill_(value)
        net[1].num_batches_tracked.fill_(step)
        avg.update()
        decay = min(0.9, (1 + step) / (10 + step))
        expected = decay * expected + (1 - decay) * value
    avg.copy_to_module()
    for t in (*net.parameters(), net[1].running_mean):
        assert torch.allclose(t, torch.full_like(t, expected))
    assert int(net[1].num_batches_tracked) == 12  # integer buffers are left as they are


def test_ctgan_samples_from_the_averaged_generator():
    df = ts.datasets.load("credit_data").sample(400, random_state=0).reset_index(drop=True)
    kw = dict(epochs=2, batch_size=100, generator_dim=(32,), discriminator_dim=(32,), seed=0, verbose=False)
    last = ts.CTGAN(generator_average=0, **kw).fit(df)
    averaged = ts.CTGAN(**kw).fit(df)
    assert averaged.generator_average == pytest.approx(0.99)
    # same training run (the average never feeds back), different weights at the end
    assert last.loss_history_.equals(averaged.loss_history_)
    w_last, w_avg = last.generator_.net[0].fc.weight, averaged.generator_.net[0].fc.weight
    assert not torch.equal(w_last, w_avg)
    assert (w_last - w_avg).abs().max() < 0.05  # an average of nearby weights, not something else
    assert not last.sample(50, seed=1).equals(averaged.sample(50, seed=1))
