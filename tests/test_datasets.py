import pytest

import tabsynth as ts


@pytest.mark.parametrize("name, shape", [("adult", (32561, 15)), ("adult_test", (16281, 15)),
                                         ("german_credit", (1000, 21)), ("credit_data", (4454, 14)),
                                         ("flchain", (7874, 11)), ("hmda", (2380, 14)),
                                         ("telco_churn", (7043, 20)), ("nmes1988", (4406, 19)),
                                         ("rotterdam", (2982, 15)), ("nass_cds", (26217, 15)),
                                         ("yrbss", (13583, 13))])
def test_load(name, shape):
    df = ts.datasets.load(name)
    assert df.shape == shape
    assert ts.datasets.TARGETS[name] in df.columns


def test_unknown_name():
    with pytest.raises(ts.errors.InputFileError, match="unknown dataset 'iris'; choose one of"):
        ts.datasets.load("iris")


def test_version_and_errors_are_valueerrors():
    assert ts.__version__
    assert issubclass(ts.errors.TabsynthError, ValueError)
    assert issubclass(ts.errors.NotFittedError, ts.errors.TabsynthError)


@pytest.mark.parametrize("name, persons, events", [("pbcseq", 312, 1945), ("rwm5yr", 6127, 19609),
                                                   ("nlswork", 4711, 28534), ("headache", 133, 4152),
                                                   ("cracker", 136, 3292)])
def test_load_sequences(name, persons, events):
    subjects, ev = ts.datasets.load(name)
    pair = ts.datasets.load(name)
    assert (len(subjects), len(ev)) == (persons, events)
    assert pair.key in subjects.columns and pair.key in ev.columns
    assert subjects[pair.key].is_unique
    assert set(ev[pair.key]) <= set(subjects[pair.key])
    if pair.order_by is not None:
        assert pair.order_by in ev.columns
        ordered = ev.groupby(pair.key, sort=False)[pair.order_by].apply(lambda s: s.is_monotonic_increasing)
        assert ordered.all()
    assert name in ts.datasets.sequence_names() and name not in ts.datasets.names()


def test_sequence_path_needs_a_part():
    with pytest.raises(ts.errors.InputFileError, match="part='subjects'"):
        ts.datasets.path("pbcseq")
    assert ts.datasets.path("pbcseq", "events").name == "pbcseq_events.csv.gz"


def test_sequences_pair_unpacks_and_names_its_parts():
    pair = ts.datasets.load("cracker")
    subjects, events = pair
    assert subjects is pair.subjects and events is pair.events
    assert pair.order_by is None and list(subjects.columns) == ["id"]


def test_the_type_of_load_names_every_sequence_table():
    from typing import get_args

    assert sorted(get_args(ts.datasets.SequenceName)) == ts.datasets.sequence_names()
