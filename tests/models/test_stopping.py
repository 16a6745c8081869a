"""Early stopping on a validation split: the split, the stopping rule, the best weights kept, and
that DP fits never use it."""

import pandas as pd
import pytest
import torch
from torch import nn

import tabsynth as ts
from tabsynth.distributed.runtime import Runtime
from tabsynth.errors import ConfigError, PrivacyConfigError
from tabsynth.models.stopping import MIN_VALIDATION_ROWS, EarlyStopping, split_validation


def test_split_holds_out_a_tenth_and_keeps_every_row():
    data = torch.arange(1000, dtype=torch.float32).reshape(-1, 1)
    torch.manual_seed(0)
    train, valid = split_validation(data, len(data))
    assert len(valid) == 100 and len(train) == 900
    assert sorted(torch.cat([train, valid]).flatten().tolist()) == data.flatten().tolist()
    small = data[: 10 * MIN_VALIDATION_ROWS - 1]
    assert split_validation(small, len(small))[1] is None
    # under torchrun the decision follows every rank's rows, so all ranks take it alike
    assert split_validation(small, 10 * len(small))[1] is not None


def test_stops_after_patience_keeps_the_best_weights_and_lowers_the_rate():
    net = nn.Linear(2, 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    stopper = EarlyStopping(net, opt, Runtime(), patience=3, plateau=1)
    losses = [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 3.4]
    stops, best_weight = [], None
    for epoch, loss in enumerate(losses):
        with torch.no_grad():
            net.weight.fill_(float(epoch))
        if epoch == 2:
            best_weight = net.weight.clone()
        stops.append(stopper.step(epoch, loss * 10, 10))
    assert stops == [False] * 6 + [True]  # the fourth epoch without a new best stops
    assert stopper.best_epoch == 2 and stopper.best == pytest.approx(3.0)
    assert opt.param_groups[0]["lr"] < 1e-2
    stopper.restore()
    assert torch.equal(net.weight, best_weight)


@pytest.fixture(scope="module")
def table():
    return ts.datasets.load("credit_data").sample(1200, random_state=0).reset_index(drop=True)


def test_tabularar_stops_on_its_validation_loss(table):
    model = ts.TabularAR(epochs=80, seed=0, verbose=False, lr=1e-2).fit(table)  # overfits within 80 epochs
    hist = model.loss_history_
    assert "val_loss" in hist and hist["val_loss"].notna().all()
    best = int(hist["val_loss"].idxmin())
    assert len(hist) < 80 and len(hist) == best + 6  # stopped five epochs after its best
    params = model.resolved_params()
    assert params["batch_size"] == 32 and params["early_stopping"] is None  # 1,200 rows: 32 rows per step
    off = ts.TabularAR(epochs=3, seed=0, verbose=False, embedding_dim=32, hidden=(32,), early_stopping=False)
    assert "val_loss" not in off.fit(table).loss_history_


@pytest.mark.slow
def test_dp_fits_never_stop_early(table):
    with pytest.raises(PrivacyConfigError, match="early_stopping=True under DP"):
        ts.TabularAR(epsilon=1.0, early_stopping=True).fit(table)
    with pytest.raises(ConfigError, match="early_stopping must be"):
        ts.TabularAR(early_stopping="yes").fit(table)
    model = ts.TabularAR(epsilon=1.0, seed=0, verbose=False, embedding_dim=32, hidden=(32,)).fit(table)
    assert "val_loss" not in model.loss_history_
    assert isinstance(model.loss_history_, pd.DataFrame)
