import json

import pytest

import tabsynth as ts
from tabsynth.errors import MetadataError
from tabsynth.metadata import ColumnSpec


def test_json_round_trip(tmp_path, mixed_df):
    meta = ts.Metadata.detect(mixed_df)
    path = tmp_path / "meta.json"
    meta.to_json(path)
    again = ts.Metadata.from_json(path)
    assert again == meta
    assert again.columns["admitted"].timezone == "Europe/Berlin"
    assert ts.Metadata.from_json(str(path)) == meta


def test_immutable(adult_small):
    meta = ts.Metadata.detect(adult_small)
    with pytest.raises(AttributeError):
        meta.primary_key = "age"
    with pytest.raises(TypeError):
        meta.columns["age"] = None
    with pytest.raises(Exception):
        meta.columns["age"].kind = "categorical"


def test_public_domain_only_by_user(adult_small):
    meta = ts.Metadata.detect(adult_small)
    pub = meta.with_public_domain("age", bounds=(0, 120)).with_public_domain("sex", categories=["Female", "Male"])
    assert pub.columns["age"].is_public and pub.columns["age"].bounds == (0, 120)
    assert pub.columns["sex"].categories == ("Female", "Male")
    assert not meta.columns["age"].is_public  # the original is unchanged
    assert ts.Metadata.from_json(pub.to_json()).columns["age"].is_public
    with pytest.raises(MetadataError, match="give categories, not bounds"):
        meta.with_public_domain("sex", bounds=(0, 1))


def test_validation_reports_every_problem():
    with pytest.raises(MetadataError, match=r"invalid metadata \(3 problems\)") as info:
        ts.Metadata([
            ColumnSpec("a", "numbery"),
            ColumnSpec("b", "integer", bounds=(5, 1), domain_source="public"),
            ColumnSpec("b", "categorical"),
        ])
    msg = str(info.value)
    assert "kind 'numbery'" in msg and "lower bound 5 is above upper bound 1" in msg and "described twice" in msg


def test_from_dict_errors():
    with pytest.raises(MetadataError, match="'columns' object"):
        ts.Metadata.from_dict({"foo": 1})
    with pytest.raises(MetadataError, match="not valid JSON"):
        ts.Metadata.from_json("{nope")
    with pytest.raises(MetadataError, match="not found"):
        ts.Metadata.from_json("does/not/exist.json")


def test_reads_sdv_single_table_metadata(tmp_path):
    sdv = {
        "METADATA_SPEC_VERSION": "SINGLE_TABLE_V1",
        "primary_key": "user_id",
        "columns": {
            "user_id": {"sdtype": "id", "regex_format": "U_[0-9]{4}"},
            "age": {"sdtype": "numerical", "computer_representation": "Int64"},
            "income": {"sdtype": "numerical", "computer_representation": "Float"},
            "plan": {"sdtype": "categorical"},
            "active": {"sdtype": "boolean"},
            "signup": {"sdtype": "datetime", "datetime_format": "%Y-%m-%d"},
            "email": {"sdtype": "email", "pii": True},
        },
    }
    path = tmp_path / "sdv.json"
    path.write_text(json.dumps(sdv))
    meta = ts.Metadata.from_json(path)
    assert {n: s.kind for n, s in meta.columns.items()} == {
        "user_id": "id", "age": "integer", "income": "numerical", "plan": "categorical",
        "active": "boolean", "signup": "datetime", "email": "pii"}
    assert meta.columns["email"].pii_type == "email"
    assert meta.primary_key == "user_id"
    assert meta.columns["signup"].datetime_format == "%Y-%m-%d"


def test_check_frame_names_missing_and_extra(adult_small):
    meta = ts.Metadata.detect(adult_small)
    with pytest.raises(MetadataError, match=r"not in the table: \['age'\].*not in the metadata: \['x'\]"):
        meta.check_frame(adult_small.drop(columns=["age"]).assign(x=1))
