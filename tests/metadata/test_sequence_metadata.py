"""SequenceMetadata: a person table and its event table described together, as JSON and from data."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tabsynth.errors import DataError, MetadataError
from tabsynth.metadata import ColumnSpec, Metadata, SequenceMetadata


@pytest.fixture
def pair() -> tuple[pd.DataFrame, pd.DataFrame]:
    persons = pd.DataFrame({"pid": [1, 2, 3, 4],
                            "enrolled": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-03-01", "2020-04-01"]),
                            "sex": ["f", "m", "f", "m"], "age": [34.0, 51.5, 47.0, 60.0]})
    events = pd.DataFrame({"pid": [1, 1, 2, 3, 3, 3],
                           "visit": pd.to_datetime(["2020-01-05", "2020-02-01", "2020-03-01", "2020-03-02",
                                                    "2020-05-01", "2020-06-01"]),
                           "dose": [1, 2, 1, 3, 2, 2], "lab": [0.5, 0.7, 0.1, 1.2, 0.9, 1.1]})
    return persons, events


def _meta(pair, **kw) -> SequenceMetadata:
    persons, events = pair
    return SequenceMetadata.detect(events, persons, key="pid", **{"order_by": "visit", **kw})


def _raises(exc_type, fn, *args, match=None, **kwargs):
    with pytest.raises(exc_type, match=match) as err:
        fn(*args, **kwargs)
    assert type(err.value) is exc_type, type(err.value)


def test_detect_links_the_tables(pair):
    meta = _meta(pair, order_bounds=("enrolled", None))
    assert meta.key == "pid" and meta.order_by == "visit" and meta.order_kind == "datetime"
    assert meta.order_bounds == ("enrolled", None)
    assert meta.person_columns == ["enrolled", "sex", "age"] and meta.event_columns == ["visit", "dose", "lab"]
    assert meta.persons.columns["pid"].kind == meta.events.columns["pid"].kind == "id"
    assert meta.persons.primary_key == "pid" and meta.events.primary_key is None
    assert meta.events.columns["lab"].kind == "numerical" and meta.persons.columns["sex"].kind == "categorical"
    numeric = SequenceMetadata.detect(pair[1].assign(visit=[3, 30, 1, 2, 60, 90]), pair[0], key="pid",
                                      order_by="visit")
    assert numeric.order_kind == "number"
    alone = SequenceMetadata.detect(pair[1], key="pid")  # events only: persons with no attributes
    assert alone.person_columns == [] and alone.order_by is None and alone.order_kind is None


def test_json_round_trip(pair, tmp_path):
    meta = _meta(pair, order_bounds=("enrolled", None))
    text = meta.to_json(tmp_path / "m.json")
    d = json.loads(text)
    assert (d["key"], d["order_by"], d["order_kind"]) == ("pid", "visit", "datetime")
    assert d["order_bounds"] == {"lower": "enrolled", "upper": None}
    assert d["person_columns"] == ["enrolled", "sex", "age"] and d["event_columns"] == ["visit", "dose", "lab"]
    assert SequenceMetadata.from_json(tmp_path / "m.json") == meta
    assert SequenceMetadata.from_json(str(tmp_path / "m.json")) == meta
    assert SequenceMetadata.from_json(text) == meta
    assert SequenceMetadata.from_dict(meta.to_dict()).to_dict() == meta.to_dict()
    meta.check_frames(pair[1], pair[0])


def test_from_dtypes_and_public_hold_no_value_of_the_rows(pair):
    detected = _meta(pair)
    assert detected.events.columns["lab"].bounds == (0.1, 1.2)  # read off the rows
    for meta in (SequenceMetadata.from_dtypes(pair[1], pair[0], key="pid", order_by="visit"), detected.public()):
        d = meta.to_dict()
        assert all("domain" not in c for t in ("persons", "events") for c in d[t]["columns"].values())
        assert meta.order_kind == "datetime" and meta.persons.primary_key == "pid"
    declared = detected.public().to_dict()
    declared["persons"]["columns"]["sex"]["domain"] = {"source": "public", "categories": ["f", "m", "x"]}
    assert SequenceMetadata.from_dict(declared).public().persons.columns["sex"].categories == ("f", "m", "x")


@pytest.mark.parametrize("change, match", [
    (dict(key="id"), "key 'id' is not a column of the event table"),
    (dict(order_by="when"), "order_by 'when' must be a column of the event table"),
    (dict(order_by="pid"), "other than the key"),
    (dict(order_bounds=("born", None)), "order_bounds names 'born'"),
])
def test_detect_refuses_a_column_that_is_not_there(pair, change, match):
    persons, events = pair
    kw = {"key": "pid", "order_by": "visit", **change}
    _raises(DataError, SequenceMetadata.detect, events, persons, match=match, **kw)


def test_detect_refuses_a_person_table_without_the_key_or_a_non_table(pair):
    persons, events = pair
    _raises(DataError, SequenceMetadata.detect, events, persons.rename(columns={"pid": "id"}), key="pid",
            match="not a column of the person table")
    _raises(DataError, SequenceMetadata.detect, events.to_dict(), persons, key="pid", match="must be a pandas")


def _edit(pair, fn) -> dict:
    d = _meta(pair, order_bounds=("enrolled", None)).to_dict()
    fn(d)
    return d


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(key="id"), "key 'id' is not a column of the person table"),
    (lambda d: d["events"]["columns"].pop("pid"), "key 'pid' is not a column of the event table"),
    (lambda d: d["events"]["columns"]["pid"].update(kind="integer"), "declare its kind 'id' in both tables"),
    (lambda d: d.update(order_by="when"), "order_by 'when' must be a column of the event table"),
    (lambda d: d["events"]["columns"].update(visit={"kind": "categorical"}), "a number or a date"),
    (lambda d: d.update(order_kind="number"), "does not match order_by 'visit', a datetime column"),
    (lambda d: d.update(order_bounds={"lower": "born", "upper": None}), "order_bounds names 'born'"),
    (lambda d: d.update(order_bounds={"lower": "age", "upper": None}), "must be one too"),
    (lambda d: d.update(order_bounds=["enrolled"]), "must be a pair"),
    (lambda d: d.update(order_by=None, order_kind=None), "bound the sequence column"),
    (lambda d: d["events"]["columns"].update(sex={"kind": "categorical"}), "are in both tables"),
    (lambda d: d.update(person_columns=["sex", "age"]), "person_columns"),
    (lambda d: d.update(format="tabsynth-metadata"), "not tabsynth sequence metadata"),
    (lambda d: d.pop("events"), "needs 'events'"),
    (lambda d: d["persons"].pop("primary_key"), "primary key must be the key"),
    (lambda d: d["events"].update(primary_key="pid"), "event table's primary key cannot be the key"),
])
def test_bad_metadata_is_refused_with_what_to_fix(pair, edit, match):
    _raises(MetadataError, SequenceMetadata.from_dict, _edit(pair, edit), match=match)


def test_bad_json_and_mismatched_tables_are_refused(pair, tmp_path):
    _raises(MetadataError, SequenceMetadata.from_json, tmp_path / "missing.json", match="not found")
    _raises(MetadataError, SequenceMetadata.from_json, "{not json", match="not valid JSON")
    _raises(MetadataError, SequenceMetadata.from_dict, ["persons"], match="must be a JSON object")
    meta = _meta(pair)
    _raises(MetadataError, meta.check_frames, pair[1].drop(columns=["lab"]), pair[0], match="not in the table")
    _raises(MetadataError, SequenceMetadata, Metadata([ColumnSpec("pid", "id")], primary_key="pid"), "not metadata",
            "pid", match="events must be a tabsynth Metadata")


def test_non_decreasing_is_declared_checked_and_kept_in_json(pair, tmp_path):
    meta = _meta(pair, non_decreasing=["dose"])
    assert meta.non_decreasing == ("dose",) and meta.public().non_decreasing == ("dose",)
    again = SequenceMetadata.from_json(meta.to_json(tmp_path / "m.json"))
    assert again == meta and json.loads(meta.to_json())["non_decreasing"] == ["dose"]
    for names, match in ((["sex"], "not an event column"), (["visit"], "not an event column"),
                         ("dose", "must be a list")):
        _raises(MetadataError, _meta, pair, non_decreasing=names, match=match)
    persons, events = pair
    text = SequenceMetadata.detect(events.assign(dose=events["dose"].astype(str) + "x"), persons, key="pid")
    _raises(MetadataError, SequenceMetadata, text.persons, text.events, "pid", non_decreasing=("dose",),
            match="declare its kind numerical or integer")
