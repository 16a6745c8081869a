"""Contract of TabularAR's two-table mode: a person table and its event table, fitted and sampled together."""

import numpy as np
import pandas as pd
import pytest

import tabsynth as ts
from tabsynth.errors import DataError, InvalidConditionError


def _tables(n=60, max_events=8, seed=0, empty_share=0.0):
    rng = np.random.default_rng(seed)
    persons = pd.DataFrame({"id": np.arange(100, 100 + n), "sex": rng.choice(["f", "m"], n),
                            "age": rng.normal(50, 10, n).round(1)})
    counts = rng.integers(1, max_events + 1, n)
    counts[rng.random(n) < empty_share] = 0
    owner = np.repeat(persons["id"].to_numpy(), counts)
    position = np.concatenate([np.arange(c) for c in counts])
    events = pd.DataFrame({"id": owner, "day": position * 30 + rng.integers(0, 10, len(owner)),
                           "lab": rng.lognormal(1, 0.5, len(owner)).round(2),
                           "stage": np.minimum(1 + position // 3, 4)})
    return persons, events


def _fit(events, persons=None, seed=0, epochs=2, **kw):
    model = ts.TabularAR(epochs=epochs, seed=seed, verbose=False, embedding_dim=32, hidden=(32,))
    return model.fit(events, subjects=persons, key="id", **kw)


@pytest.fixture(scope="module")
def fitted():
    persons, events = _tables()
    return _fit(events, persons, order_by="day"), persons, events


def _ordered(events, key, column):
    return events.groupby(key, sort=False)[column].apply(lambda s: s.is_monotonic_increasing).all()


def test_keys_unique_linked_and_order_holds(fitted):
    model, persons, events = fitted
    subjects, ev = model.sample(n_subjects=80, seed=1)
    assert len(subjects) == 80 and subjects["id"].is_unique and subjects["id"].notna().all()
    assert list(subjects.columns) == list(persons.columns) and list(ev.columns) == list(events.columns)
    assert set(ev["id"]) <= set(subjects["id"])
    assert _ordered(ev, "id", "day")
    assert (ev["day"] >= events["day"].min()).all()
    assert len(ev) > 0 and ev.groupby("id").size().max() <= model.two_tables_.cap


def test_sample_returns_a_named_pair(fitted):
    pair = fitted[0].sample(n_subjects=5, seed=1)
    assert pair.subjects is pair[0] and pair.events is pair[1]
    assert pair.key == "id" and pair.order_by == "day"
    subjects, events = fitted[0].sample(n_subjects=0, seed=1)
    assert len(subjects) == len(events) == 0 and list(events.columns) == list(fitted[2].columns)


def test_person_conditions_are_honoured(fitted):
    subjects, ev = fitted[0].sample(n_subjects=40, seed=2, conditions={"sex": "m"})
    assert len(subjects) == 40 and (subjects["sex"] == "m").all()
    assert set(ev["id"]) <= set(subjects["id"])
    with pytest.raises(InvalidConditionError):
        fitted[0].sample(n_subjects=5, conditions={"lab": 1.0})


def test_events_for_given_subjects(fitted):
    model, persons, _ = fitted
    given = persons.head(10)
    subjects, ev = model.sample(subjects=given, seed=3)
    pd.testing.assert_frame_equal(subjects, given.reset_index(drop=True))
    assert set(ev["id"]) <= set(given["id"]) and _ordered(ev, "id", "day")
    fresh, _ = model.sample(subjects=given.drop(columns=["id"]), seed=3)
    assert fresh["id"].is_unique and len(fresh) == 10
    with pytest.raises(DataError, match="lacks the person columns"):
        model.sample(subjects=given.drop(columns=["age"]))


def test_seeds_reproducible_and_save_load_round_trip(fitted, tmp_path):
    model, persons, events = fitted
    a = model.sample(n_subjects=30, seed=7)
    b = model.sample(n_subjects=30, seed=7)
    pd.testing.assert_frame_equal(a.events, b.events)
    again = _fit(events, persons, order_by="day").sample(n_subjects=30, seed=7)
    pd.testing.assert_frame_equal(a.subjects, again.subjects)
    pd.testing.assert_frame_equal(a.events, again.events)
    loaded = ts.load(model.save(tmp_path / "m.tsyn"))
    c = loaded.sample(n_subjects=30, seed=7)
    pd.testing.assert_frame_equal(a.subjects, c.subjects)
    pd.testing.assert_frame_equal(a.events, c.events)


def test_one_person_and_one_event_per_person():
    persons, events = _tables(n=1, max_events=5)
    subjects, ev = _fit(events, persons, order_by="day").sample(n_subjects=4, seed=0)
    assert len(subjects) == 4 and set(ev["id"]) <= set(subjects["id"])
    persons, events = _tables(n=40, max_events=1)
    model = _fit(events, persons, order_by="day", epochs=3)
    assert model.two_tables_.cap == 1
    subjects, ev = model.sample(n_subjects=50, seed=0)
    assert ev.groupby("id").size().max() == 1


def test_persons_without_events():
    persons, events = _tables(n=80, empty_share=0.5, seed=1)
    assert events["id"].nunique() < len(persons)
    model = _fit(events, persons, order_by="day", epochs=40)
    subjects, ev = model.sample(n_subjects=300, seed=0)
    share = 1 - ev["id"].nunique() / len(subjects)
    assert 0.2 < share < 0.8  # the real share is about one half


def test_events_alone_and_row_order():
    _, events = _tables(n=30)
    model = _fit(events)  # persons without attributes, the row order as the sequence
    subjects, ev = model.sample(n_subjects=10, seed=0)
    assert list(subjects.columns) == ["id"] and set(ev["id"]) <= set(subjects["id"])
    with pytest.raises(InvalidConditionError, match="nothing to condition on"):
        model.sample(n_subjects=3, conditions={"sex": "f"})


def test_dates_as_sequence_column():
    persons, events = _tables(n=30)
    events["day"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(events["day"], unit="D")
    _, ev = _fit(events, persons, order_by="day").sample(n_subjects=20, seed=0)
    assert pd.api.types.is_datetime64_any_dtype(ev["day"]) and _ordered(ev, "id", "day")
    assert (ev["day"] >= events["day"].min()).all()


def test_cap_counts_the_events_cut():
    persons, events = _tables(n=30)
    model = _fit(events, persons, order_by="day", max_events=3)
    over = events.groupby("id").size().sub(3).clip(lower=0)
    assert model.two_tables_.cap == 3 and model.two_tables_.cut_events_ == over.sum()
    assert model.sample(n_subjects=40, seed=0).events.groupby("id").size().max() <= 3


@pytest.mark.parametrize("change, match", [
    (lambda p, e: (p.iloc[1:], e), "not in the person table"),
    (lambda p, e: (p, e.assign(id=e["id"].where(e.index != 3))), "missing values"),
    (lambda p, e: (p.assign(id=p["id"].where(p.index != 0)), e), "missing values"),
    (lambda p, e: (p, e.assign(day=e["day"].astype(object).where(e.index != 2, "soon"))), "mixes types"),
    (lambda p, e: (pd.concat([p, p.head(1)]), e), "several rows for key"),
])
def test_bad_input_refused(change, match):
    persons, events = _tables(n=10)
    persons, events = change(persons, events)
    with pytest.raises(DataError, match=match):
        _fit(events, persons, order_by="day")


def test_sample_to_file_writes_both_tables(fitted, tmp_path):
    model = fitted[0]
    paths = model.sample_to_file(25, tmp_path / "out.csv", batch_rows=10, seed=0)
    subjects, ev = pd.read_csv(paths.subjects), pd.read_csv(paths.events)
    assert paths.subjects.name == "out_subjects.csv" and paths.events.name == "out_events.csv"
    assert len(subjects) == 25 and subjects["id"].is_unique
    assert set(ev["id"]) <= set(subjects["id"]) and _ordered(ev, "id", "day")


def test_one_long_table_with_person_columns():
    persons, events = _tables(n=30)
    long = events.merge(persons, on="id")
    model = _fit(long, order_by="day", subject_columns=["sex", "age"])
    pair = model.sample(n_subjects=20, seed=0)
    assert list(pair.subjects.columns) == ["id", "sex", "age"] and "sex" not in pair.events.columns
    joined = pair.joined()
    assert len(joined) == len(pair.events) and set(joined.columns) == set(long.columns)
    assert (joined.groupby("id")["sex"].nunique() == 1).all()
    auto = _fit(long, order_by="day", subject_columns="auto")
    assert set(auto.two_tables_.person_columns) == {"id", "sex", "age"}
    with pytest.raises(DataError, match="change within a person"):
        _fit(long, order_by="day", subject_columns=["sex", "lab"])


@pytest.mark.slow
def test_docs_page_blocks_run(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "sequences.md").read_text()
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for body in re.findall(r"^```python\n(.*?)^```", text, re.M | re.S):
        exec(compile(body, "docs/sequences.md", "exec"), namespace)  # noqa: S102 - the page's own code
    assert namespace["long_syn"]["id"].isin(namespace["persons_syn"]["id"]).all()


def test_order_bounds_from_person_columns_are_met():
    persons, events = _tables(n=60)
    persons["start"] = np.random.default_rng(0).integers(-20, 0, len(persons))
    persons["end"] = events.groupby("id")["day"].max().reindex(persons["id"]).to_numpy() + 5
    model = _fit(events, persons, order_by="day", order_bounds=("start", "end"))
    subjects, ev = model.sample(n_subjects=200, seed=0)
    both = ev.merge(subjects, on="id")
    assert len(both) and (both["day"] >= both["start"]).all() and (both["day"] <= both["end"]).all()
    assert _ordered(ev, "id", "day")
    late = events.assign(day=events["day"] + 1000)
    with pytest.raises(DataError, match="after their person's 'end'"):
        _fit(late, persons, order_by="day", order_bounds=(None, "end"))
    with pytest.raises(ts.errors.ConfigError, match="not a column of the person table"):
        _fit(events, persons, order_by="day", order_bounds=("birth", None))


def test_a_two_table_file_of_a_family_without_that_mode_is_refused(fitted, tmp_path):
    import json
    import zipfile

    path = fitted[0].save(tmp_path / "m.tsyn")
    with zipfile.ZipFile(path) as zf:
        config, weights = json.loads(zf.read("config.json")), zf.read("weights.pt")
    config["class"] = "CTGAN"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("weights.pt", weights)
    with pytest.raises(ts.errors.ModelFileError, match="no two-table mode"):
        ts.load(path)


def test_a_persons_count_sets_their_number_of_events():
    """The person model learns each person's number of events; the event network then generates
    exactly that many (at most the cap), and the end token decides only where the count is unknown."""
    import torch

    from tabsynth.models.sequence_networks import SequenceNet

    torch.manual_seed(0)
    net = SequenceNet([3], [4, 5], 8, (8,), 6)
    u = torch.rand(4, 7, 3)
    _, lengths = net.generate(torch.zeros(4, 1, dtype=torch.long), u, torch.tensor([0, 3, 6, -1]))
    assert lengths[:3].tolist() == [0, 3, 6] and 0 <= int(lengths[3]) <= 6
    persons, events = _tables(n=40, seed=3)
    model = _fit(events, persons, order_by="day")
    tables = model.two_tables_
    assert tables.count_column == "n_events" and tables.count_column in tables.persons.metadata_.column_names
    drawn = tables.persons.sample(30, seed=0)[tables.count_column].round().clip(0, tables.cap).astype(int)
    subjects, ev = model.sample(subjects=persons.head(30).assign(n_events=drawn.to_numpy()), seed=0)
    got = ev.groupby("id").size().reindex(subjects["id"], fill_value=0).to_numpy()
    assert (got == drawn.to_numpy()).all()
