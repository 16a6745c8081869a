"""TabularAR's two-table mode under differential privacy per person: the unit, the per-person
gradients, the releases of both tables in one accountant, person canaries and what a model file holds."""

import json
import math
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

import tabsynth as ts
from tabsynth.errors import DataError, PrivacyWarning
from tabsynth.models.sequence_networks import LinearGRU, SequenceNet
from tabsynth.models.sequence_private import PersonsAndEvents
from tabsynth.privacy.accountant import ORDERS, gaussian_rdp, rdp_to_dp
from tabsynth.privacy.randomness import reproducible_noise

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")

SMALL = dict(embedding_dim=16, hidden=(16,), verbose=False)


def _tables(n=80, max_events=6, seed=0):
    rng = np.random.default_rng(seed)
    persons = pd.DataFrame({"id": np.arange(n), "sex": rng.choice(["f", "m"], n),
                            "age": rng.normal(50, 10, n).round(1)})
    counts = rng.integers(1, max_events + 1, n)
    owner = np.repeat(persons["id"].to_numpy(), counts)
    position = np.concatenate([np.arange(c) for c in counts])
    events = pd.DataFrame({"id": owner, "day": (position * 30 + rng.integers(0, 10, len(owner))).astype(float),
                           "lab": rng.choice(["lo", "mid", "hi"], len(owner))})
    return persons, events


def _dp_fit(events, persons, epsilon=4.0, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        return ts.TabularAR(epsilon=epsilon, **SMALL, **kw).fit(events, subjects=persons, key="id", order_by="day")


@pytest.fixture(scope="module")
def private():
    persons, events = _tables()
    with reproducible_noise(0):
        return _dp_fit(events, persons), persons, events


def test_the_unit_is_the_person_and_every_release_is_in_one_accountant(private):
    model = private[0]
    spent = model.privacy_spent()
    assert spent.is_dp and spent.epsilon <= 4.0 + 1e-9
    assert {"preprocessing_persons", "preprocessing_events", "events_per_person", "training"} <= set(spent.parts)
    assert "person" in spent.composition and "one-row" not in spent.composition
    training = spent.parts["training"]
    assert "per person" in training.mechanism
    assert spent.unit == "person" and spent.unit_key == "id"
    # the epsilon recomputed from the published parameters of every part is the one stated
    rdp = [0.0] * len(ORDERS)
    for name, part in spent.parts.items():
        if name != "partition_selection":
            d = part.details
            rdp = [a + b for a, b in zip(rdp, gaussian_rdp(d["noise_multiplier"], d["sample_rate"], d["steps"]))]
    train = spent.parts["training"]
    assert rdp_to_dp(rdp, train.delta) == pytest.approx(spent.epsilon, abs=1e-9)
    assert spent.delta == pytest.approx(train.delta + spent.parts["partition_selection"].delta)
    # DP-SGD steps are planned from the noisy person count
    n_hat = spent.parts["preprocessing_persons"].details["noisy_row_count"]
    assert n_hat == model.n_subjects_
    assert train.details["sample_rate"] == pytest.approx(1 / math.ceil(n_hat / train.details["expected_batch_size"]))


def test_samples_keep_order_keys_and_columns(private):
    model, persons, events = private
    subjects, ev = model.sample(n_subjects=50, seed=3)
    assert list(subjects.columns) == list(persons.columns) and list(ev.columns) == list(events.columns)
    assert subjects["id"].is_unique and set(ev["id"]) <= set(subjects["id"])
    assert ev.groupby("id")["day"].apply(lambda s: s.is_monotonic_increasing).all()
    assert ev.groupby("id").size().max() <= model.two_tables_.cap
    given = model.sample(subjects=persons.drop(columns=["id"]).head(7), seed=4)
    assert len(given.subjects) == 7 and set(given.events["id"]) <= set(given.subjects["id"])


def test_the_number_of_events_follows_the_law_of_the_noisy_histogram(private, tmp_path):
    model = private[0]
    tables = model.two_tables_
    law = np.asarray(tables.count_law)
    assert len(law) == tables.cap + 1 and np.isclose(law.sum(), 1.0) and (law >= 0).all()
    saved = list(law)
    try:
        tables.count_law = [0.0] * (tables.cap + 1)
        tables.count_law[3] = 1.0  # every person has exactly three events
        subjects, ev = model.sample(n_subjects=40, seed=5)
        assert (ev.groupby("id").size().reindex(subjects["id"], fill_value=0) == 3).all()
    finally:
        tables.count_law = saved
    model.save(tmp_path / "m.tsyn")
    assert ts.load(tmp_path / "m.tsyn").two_tables_.count_law == saved


def test_no_exact_count_seed_or_real_loss_leaves_the_model(private, tmp_path):
    model, persons, events = private
    assert model.n_subjects_ != len(persons) or model.n_rows_ != len(events)
    assert model.two_tables_.cut_events_ is None and model.two_tables_.cut_persons_ is None
    assert set(model.loss_history_.columns) <= {"epoch", "epsilon"}
    path = model.save(tmp_path / "m.tsm")
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
    two = config["two_tables"]
    assert config["params"]["seed"] is None
    assert two["cut_events"] is None and two["cut_persons"] is None
    assert set(two["loss_history"]) <= {"epoch", "epsilon"}
    assert two["n_subjects"] == model.n_subjects_ and two["privacy"]["epsilon"] == model.privacy_spent().epsilon
    loaded = ts.load(path)
    assert loaded.privacy_spent().epsilon == model.privacy_spent().epsilon
    a, b = model.sample(n_subjects=20, seed=9), loaded.sample(n_subjects=20, seed=9)
    pd.testing.assert_frame_equal(a.events, b.events)


def test_keys_are_generic_under_dp(private):
    subjects, _ = private[0].sample(n_subjects=5, seed=0)
    assert list(subjects["id"]) == [0, 1, 2, 3, 4]  # integers counting up, never the real ids' pattern


# --- per-person gradients ------------------------------------------------------------------------
def _net(rnn="linear"):
    torch.manual_seed(0)
    return SequenceNet([2, 3], [4, 5], 8, (8,), 6, rnn=rnn)


def _batch(b=5, t=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    person = torch.stack([torch.randint(0, 2, (b,), generator=g), torch.randint(0, 3, (b,), generator=g)], 1)
    tokens = torch.stack([torch.randint(0, 4, (b, t), generator=g), torch.randint(0, 5, (b, t), generator=g)], -1)
    lengths = torch.tensor([0, 1, 3, 6, 2][:b])
    return person, tokens, lengths


def test_linear_gru_is_the_gru_cell():
    gru, lin = torch.nn.GRU(8, 8, batch_first=True), LinearGRU(8)
    with torch.no_grad():
        lin.ih.weight.copy_(gru.weight_ih_l0), lin.ih.bias.copy_(gru.bias_ih_l0)
        lin.hh.weight.copy_(gru.weight_hh_l0), lin.hh.bias.copy_(gru.bias_hh_l0)
    x, h0 = torch.randn(3, 5, 8), torch.randn(1, 3, 8)
    (a, ha), (b, hb) = gru(x, h0), lin(x, h0)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(ha, hb, atol=1e-5)


def test_the_padded_loss_is_the_packed_loss():
    net = _net("gru")
    person, tokens, lengths = _batch()
    assert torch.allclose(net(person, tokens, lengths), net.forward_padded(person, tokens, lengths), atol=1e-4)


def test_opacus_gradients_are_per_person():
    """Each person's gradient from Opacus' hooks is the gradient of that person's loss alone (their
    row and all their events): clipping it bounds what one person moves the clipped sum by."""
    from opacus import GradSampleModule

    module = PersonsAndEvents(None, _net())
    person, tokens, lengths = _batch()
    gsm = GradSampleModule(module, batch_first=True, loss_reduction="sum")
    gsm(person, None, tokens, lengths).sum().backward()
    params = [p for p in module.parameters() if p.requires_grad]
    per_person = [p.grad_sample.clone() for p in params]
    gsm._close()  # the hooks off: plain autograd below
    for i in range(len(lengths)):
        loss = module(person[i:i + 1], None, tokens[i:i + 1], lengths[i:i + 1]).sum()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for p, sample, g in zip(params, per_person, grads):
            expected = torch.zeros_like(p) if g is None else g
            assert torch.allclose(sample[i], expected, atol=1e-5), (i, p.shape)


def test_removing_one_person_moves_the_clipped_sum_by_at_most_c():
    from opacus import GradSampleModule

    c = 0.5
    module = PersonsAndEvents(None, _net())
    person, tokens, lengths = _batch()

    def clipped_sum(keep):
        gsm = GradSampleModule(module, batch_first=True, loss_reduction="sum")
        gsm(person[keep], None, tokens[keep], lengths[keep]).sum().backward()
        params = [p for p in module.parameters() if p.requires_grad]
        flat = torch.cat([p.grad_sample.reshape(len(keep), -1) for p in params], 1)
        total = (flat * (c / flat.norm(dim=1).clamp_min(c))[:, None]).sum(0)
        for p in params:
            p.grad_sample = None
            p.grad = None
        gsm._close()
        return total

    full = clipped_sum(torch.arange(5))
    for person_i in (1, 3):  # one event, and the most events
        without = clipped_sum(torch.tensor([i for i in range(5) if i != person_i]))
        assert float((full - without).norm()) <= c + 1e-5


# --- person canaries -----------------------------------------------------------------------------
def _canary(spread):
    """300 persons with 1-3 events of a, b, c, plus one person with 30 events of ZZ (or 30 persons
    with one ZZ event each)."""
    rng = np.random.default_rng(0)
    n = 330 if spread else 301
    persons = pd.DataFrame({"id": np.arange(n), "sex": rng.choice(["f", "m"], n)})
    sizes = rng.integers(1, 4, 300)
    base = pd.DataFrame({"id": np.repeat(np.arange(300), sizes), "c": rng.choice(list("abc"), sizes.sum())})
    canary = pd.DataFrame({"id": np.arange(300, 330) if spread else np.full(30, 300), "c": "ZZ"})
    events = pd.concat([base, canary], ignore_index=True)
    events["day"] = events.groupby("id").cumcount().astype(float)
    return persons, events


@pytest.mark.parametrize("spread", [False, True], ids=["one person, 30 events", "30 persons, one event each"])
def test_a_category_is_selected_per_person_never_per_event(spread):
    persons, events = _canary(spread)
    with reproducible_noise(1):
        model = _dp_fit(events, persons, epsilon=10.0, epochs=1)
    categories = model.two_tables_.transformer.encoder_of("c").categories
    assert {"a", "b", "c"} <= set(categories)
    assert ("ZZ" in categories) == spread
    if not spread:
        assert "ZZ" not in set(model.sample(n_subjects=300, seed=0).events["c"])


# --- input under DP ------------------------------------------------------------------------------
def test_errors_under_dp_name_no_value():
    persons, events = _tables(n=20)
    events.loc[3, "id"] = 999_999
    with pytest.raises(DataError) as err:
        _dp_fit(events, persons)
    assert "999999" not in str(err.value) and "999_999" not in str(err.value)
    persons, events = _tables(n=20)
    events["day"] = events["day"].astype(str)
    with pytest.raises(DataError, match="dtype"):
        _dp_fit(events, persons)


def test_a_flat_dp_fit_of_an_event_table_states_a_row():
    """Without the two-table mode the unit is the row, and the statement says so: it never calls
    itself per person, however many rows share a key."""
    _, events = _tables(n=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        spent = ts.TabularAR(epsilon=4.0, epochs=1, **SMALL).fit(events).privacy_spent()
    assert "one-row" in spent.composition and "person" not in spent.composition


def test_the_event_estimate_reads_the_noisy_histogram_above_its_noise():
    from tabsynth.models.sequence_private import expected_events
    from tabsynth.privacy.persons import count_grid, events_histogram

    counts = np.r_[np.full(300, 2), np.full(100, 5)]
    rng = np.random.default_rng(0)
    noisy = events_histogram(counts) + rng.normal(0, 30, len(count_grid()))
    estimate = expected_events(noisy, 30.0, 400, 8)
    assert 0.7 * counts.sum() < estimate < 1.4 * counts.sum()


def test_events_alone_without_a_sequence_column_under_dp():
    """A person table of keys alone and the row order as the sequence: only the event network
    trains (the person embedding has no tokens and no per-person gradient)."""
    _, events = _tables(n=150, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        model = ts.TabularAR(epsilon=4.0, **SMALL).fit(events.drop(columns=["day"]), key="id")
    assert model.two_tables_.persons is None and model.privacy_spent().unit == "person"
    subjects, ev = model.sample(n_subjects=40, seed=0)
    assert list(subjects.columns) == ["id"] and set(ev["id"]) <= set(subjects["id"]) and len(ev) > 0
