"""Declared rules and metadata of TabularAR's two-table mode: a column that never falls within a
person, and SequenceMetadata declaring the link and both tables' columns (with and without DP)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import tabsynth as ts
from tabsynth.errors import ConfigError, DataError, PrivacyWarning
from tabsynth.models.sequence_rises import from_rises, to_rises

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")


def _tables(n=60, seed=0):
    rng = np.random.default_rng(seed)
    persons = pd.DataFrame({"id": np.arange(n), "sex": rng.choice(["f", "m"], n), "age": rng.normal(50, 10, n).round(1)})
    counts = rng.integers(1, 9, n)
    owner = np.repeat(persons["id"].to_numpy(), counts)
    position = np.concatenate([np.arange(c) for c in counts])
    events = pd.DataFrame({"id": owner, "day": position * 30 + rng.integers(0, 10, len(owner)),
                           "lab": rng.lognormal(1, 0.5, len(owner)).round(2),
                           "stage": np.minimum(1 + position // 3 + rng.integers(0, 2, len(owner)) * (position > 0), 4)})
    events["stage"] = events.groupby("id")["stage"].cummax()
    return persons, events


def _model(**kw):
    return ts.TabularAR(epochs=2, seed=0, verbose=False, embedding_dim=32, hidden=(32,), **kw)


def _never_falls(events, column):
    steps = events.groupby("id", sort=False)[column].diff()
    return bool((steps.dropna() >= 0).all())


@pytest.fixture(scope="module")
def rising():
    persons, events = _tables()
    model = _model().fit(events, subjects=persons, key="id", order_by="day", non_decreasing=["stage"])
    return model, persons, events


def test_a_non_decreasing_column_never_falls_and_stays_in_its_range(rising):
    model, _, events = rising
    _, ev = model.sample(n_subjects=150, seed=1)
    assert _never_falls(ev, "stage") and ev["stage"].dtype == events["stage"].dtype
    assert ev["stage"].between(events["stage"].min(), events["stage"].max()).all()
    assert ev.groupby("id")["stage"].nunique().max() > 1  # it does rise within persons


def test_turned_off_the_same_model_lets_the_column_fall():
    persons, events = _tables()
    model = _model().fit(events, subjects=persons, key="id", order_by="day", non_decreasing=[])
    assert model.two_tables_.rising == {}
    _, ev = model.sample(n_subjects=150, seed=1)
    assert not _never_falls(ev, "stage")


def test_outside_dp_a_column_that_never_falls_in_the_data_is_found():
    persons, events = _tables()
    events["count"] = events.groupby("id").cumcount()
    model = _model().fit(events, subjects=persons, key="id", order_by="day")
    assert sorted(model.two_tables_.rising) == ["count", "stage"]  # lab falls; day is the sequence column
    shuffled = events.sample(frac=1.0, random_state=0)  # found in sequence order, not row order
    assert sorted(_model().fit(shuffled, subjects=persons, key="id", order_by="day").two_tables_.rising) == [
        "count", "stage"]


def test_under_dp_nothing_is_found_from_the_values():
    persons, events = _tables(40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        model = ts.TabularAR(epsilon=1.0, epochs=1, verbose=False, embedding_dim=16, hidden=(16,)).fit(
            events, subjects=persons, key="id", order_by="day")
    assert model.two_tables_.rising == {}


def test_the_rule_survives_save_and_load(rising, tmp_path):
    model = rising[0]
    model.save(tmp_path / "m.tsm")
    again = ts.load(tmp_path / "m.tsm")
    assert again.two_tables_.rising == model.two_tables_.rising
    assert again.sample(n_subjects=30, seed=4)[1].equals(model.sample(n_subjects=30, seed=4)[1])


def test_rises_round_trip_with_missing_values():
    frame = pd.DataFrame({"x": [2.0, np.nan, 3.5, 3.5, 1.0, 4.0]})
    person = np.array([0, 0, 0, 0, 1, 1])
    rises = to_rises(frame, person, ["x"], private=False)
    assert rises["x"].tolist()[:1] == [2.0] and np.isnan(rises["x"][1]) and rises["x"].tolist()[2:] == [1.5, 0.0, 1.0, 3.0]
    back = from_rises(rises, person, {"x": None})
    assert back["x"].equals(frame["x"])


def test_a_fall_in_the_data_is_refused_outside_dp_and_cut_under_dp():
    frame = pd.DataFrame({"x": [3, 2, 5]})
    person = np.array([0, 0, 0])
    with pytest.raises(DataError, match="1 events have 'x' below their person's previous value"):
        to_rises(frame, person, ["x"], private=False)
    assert to_rises(frame, person, ["x"], private=True)["x"].tolist() == [3, 0, 3]


@pytest.mark.parametrize("names, match", [(["sex"], "not an event column"), (["day"], "not an event column"),
                                          (["lab_text"], "not numeric")])
def test_a_bad_non_decreasing_column_is_refused(names, match):
    persons, events = _tables(20)
    events["lab_text"] = events["lab"].astype(str)
    with pytest.raises(ConfigError, match=match):
        _model().fit(events, subjects=persons, key="id", order_by="day", non_decreasing=names)


def test_sequence_metadata_declares_the_link_and_the_kinds():
    persons, events = _tables()
    meta = ts.SequenceMetadata.from_dtypes(events, persons, key="id", order_by="day", non_decreasing=["stage"])
    meta = ts.SequenceMetadata(meta.persons.with_column("age", kind="categorical", dtype="float64"), meta.events,
                               "id", "day", non_decreasing=("stage",))
    model = _model().fit(events, meta, subjects=persons)
    tables = model.two_tables_
    assert (tables.key, tables.column.name, list(tables.rising)) == ("id", "day", ["stage"])
    assert tables.persons.metadata_.columns["age"].kind == "categorical"
    _, ev = model.sample(n_subjects=40, seed=2)
    assert _never_falls(ev, "stage") and _never_falls(ev, "day")


def test_a_long_table_with_metadata_is_split_by_its_person_columns():
    persons, events = _tables(30)
    meta = ts.SequenceMetadata.from_dtypes(events, persons, key="id", order_by="day")
    model = _model().fit(events.merge(persons, on="id"), meta)
    assert model.two_tables_.person_columns == list(persons.columns)
    assert model.two_tables_.event_columns == list(events.columns)


def test_metadata_that_disagrees_or_is_one_table_is_refused():
    persons, events = _tables(20)
    meta = ts.SequenceMetadata.from_dtypes(events, persons, key="id", order_by="day")
    with pytest.raises(ConfigError, match="order_by='lab' disagrees with the metadata's 'day'"):
        _model().fit(events, meta, subjects=persons, order_by="lab")
    with pytest.raises(ConfigError, match="take ts.SequenceMetadata"):
        _model().fit(events, ts.Metadata.from_dtypes(events), subjects=persons, key="id")


def test_under_dp_declared_public_bounds_reach_both_models_and_the_rule_holds():
    persons, events = _tables(80)
    meta = ts.SequenceMetadata.from_dtypes(events, persons, key="id", order_by="day", non_decreasing=["stage"])
    events_meta = meta.events.with_column("stage", bounds=(1, 4), domain_source="public").with_column(
        "day", bounds=(0, 400), domain_source="public")
    meta = ts.SequenceMetadata(meta.persons, events_meta, "id", "day", non_decreasing=("stage",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        model = ts.TabularAR(epsilon=1.0, epochs=1, verbose=False, embedding_dim=16, hidden=(16,)).fit(
            events, meta, subjects=persons)
    tables = model.two_tables_
    assert tables.rising == {"stage": (1.0, 4.0)}
    encoders = {enc.column: enc for enc in tables.transformer.encoders_}
    assert (encoders["day"].lower, encoders["day"].upper) == (0.0, 400.0)  # gaps within the declared range
    assert (encoders["stage"].lower, encoders["stage"].upper) == (0.0, 4.0)  # a first value or a rise
    assert tables.persons.metadata_.columns["day_first"].bounds == (0, 400)
    _, ev = model.sample(n_subjects=60)
    assert _never_falls(ev, "stage") and ev["stage"].between(1, 4).all()
