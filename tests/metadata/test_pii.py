"""Free text and personal identifiers: flagged by detection, declared as kind 'pii', never copied."""

import json

import numpy as np
import pandas as pd
import pytest

import tabsynth as ts
from tabsynth.errors import ConfigError, DataWarning, MetadataError
from tabsynth.metadata.text import suggest_pii_type
from tabsynth.transform import PiiEncoder, TableTransformer


def clinical_notes(n: int, distinct: int = 1300, seed: int = 0) -> pd.Series:
    """``n`` notes: ``distinct`` different clinical-note strings, the other rows mostly missing."""
    rng = np.random.default_rng(seed)
    cond = ["MGUS", "CKD stage 3", "anemia", "smoldering myeloma", "AL amyloidosis", "hypertension"]
    doctors = ["Jones", "Smith", "Lee", "Khan", "Ruiz", "Berg", "Wu"]
    texts = pd.unique(np.array([f"history of {rng.choice(cond)}; seen by Dr {rng.choice(doctors)} on visit "
                                f"{rng.integers(1, 400)}" for _ in range(distinct * 3)], dtype=object))[:distinct]
    assert len(texts) == distinct
    rest = np.where(rng.random(n - distinct) < 0.8, None, rng.choice(texts, n - distinct))
    notes = np.concatenate([texts, rest])[rng.permutation(n)]
    return pd.Series(notes, dtype=object, name="notes")


@pytest.fixture(scope="module")
def with_notes() -> pd.DataFrame:
    df = ts.datasets.load("flchain").head(1800).reset_index(drop=True)
    return df.assign(notes=clinical_notes(len(df)))


def test_notes_are_flagged_with_a_warning_and_become_pii(with_notes):
    assert with_notes["notes"].nunique() == 1300
    with pytest.warns(DataWarning, match=r"'notes' \(text\) look like free text.*with_pii\('notes'"):
        meta = ts.Metadata.detect(with_notes)
    assert meta.columns["notes"].kind == "pii" and meta.columns["notes"].pii_type == "text"
    assert {s.kind for n, s in meta.columns.items() if n != "notes"} <= {"integer", "numerical",
                                                                      "categorical", "boolean"}


@pytest.mark.parametrize("dp", [False, True])
def test_no_synthetic_note_is_a_real_one(with_notes, dp, tmp_path):
    with pytest.warns(DataWarning, match="notes"):
        meta = ts.Metadata.detect(with_notes)
    kw = {"epsilon": 1.0, "delta": 1e-5} if dp else {}
    model = ts.TVAE(epochs=1, seed=0, verbose=False, **kw).fit(with_notes, meta)
    out = model.sample(2000, seed=1)
    notes = out["notes"].dropna()
    assert len(notes) > 500 and notes.nunique() > 100
    assert not set(notes) & set(with_notes["notes"].dropna())
    if not dp:  # the missing share is learned outside DP only
        assert abs(out["notes"].isna().mean() - with_notes["notes"].isna().mean()) < 0.05
    again = ts.load(model.save(tmp_path / "m.tsyn")).sample(2000, seed=1)
    pd.testing.assert_series_equal(again["notes"], out["notes"])


def test_choices_drop_and_categorical(with_notes):
    with pytest.warns(DataWarning, match="generated as all missing"):
        dropped = ts.Metadata.detect(with_notes, text="drop")
    assert dropped.columns["notes"].pii_type == "empty"
    tt = TableTransformer().fit(with_notes, dropped)
    back = tt.inverse_transform(tt.transform(with_notes))
    assert back["notes"].isna().all() and back["age"].equals(with_notes["age"])
    with pytest.warns(DataWarning, match="REAL VALUES ARE COPIED"):
        kept = ts.Metadata.detect(with_notes, text="categorical")
    assert kept.columns["notes"].kind == "categorical"
    with pytest.raises(ConfigError, match="text='keep'"):
        ts.Metadata.detect(with_notes, text="keep")


def repeated_notes(n: int = 1500, distinct: int = 400, seed: int = 1) -> pd.Series:
    """Clinical-style notes of about 55 characters, each repeated on a few of ``n`` rows."""
    rng = np.random.default_rng(seed)
    reasons = ["chest pain on exertion", "follow up of type 2 diabetes", "persistent dry cough at night",
               "lower back pain after a fall", "routine check of blood pressure", "rash on both forearms"]
    advice = ["review in two weeks", "refer to cardiology", "repeat the blood test", "start physiotherapy"]
    texts = pd.unique(np.array([f"{rng.choice(reasons)}, {rng.choice(advice)} (visit {rng.integers(1, 99)})"
                                for _ in range(distinct * 4)], dtype=object))[:distinct]
    assert len(texts) == distinct
    return pd.Series(rng.choice(texts, n), dtype=object, name="notes")


def test_repeated_free_text_is_flagged_and_never_copied():
    notes = repeated_notes()
    assert notes.nunique() / len(notes) < 0.3 and 45 < notes.str.len().mean() < 65
    df = ts.datasets.load("flchain").head(len(notes)).reset_index(drop=True).assign(notes=notes)
    with pytest.warns(DataWarning, match=r"'notes' \(text\) look like free text.*with_pii\('notes'"):
        meta = ts.Metadata.detect(df)
    assert meta.columns["notes"].kind == "pii" and meta.columns["notes"].pii_type == "text"
    out = ts.CTGAN(epochs=1, seed=0, verbose=False).fit(df, meta).sample(500, seed=1)
    assert out["notes"].notna().all() and not set(out["notes"]) & set(notes)


@pytest.mark.parametrize("values, expected", [
    ([f"user{i}@mail{i % 7}.example.org" for i in range(300)], "email"),
    ([f"+1 (555) {i:03d}-{(i * 37) % 10000:04d}" for i in range(300)], "phone"),
    ([f"{a} {b}" for a in ["Anna", "Bob", "Carla", "Dmitri", "Eve", "Farah", "Gus", "Hanne", "Ivo", "Jun"]
      for b in ["Smith", "Jones", "Khan", "Lee", "Ruiz", "Berg", "Okafor", "Nguyen", "Rossi", "Silva"]] * 3, None),
    ([f"{a} {b}" for a in ["Anna", "Bob", "Carla", "Dmitri", "Eve", "Farah", "Gus", "Hanne", "Ivo", "Jun"]
      for b in ["Smith", "Jones", "Khan", "Lee", "Ruiz", "Berg", "Okafor", "Nguyen", "Rossi", "Silva"]], "name"),
    (["all credits at this bank paid back duly", "critical account/ other credits existing"] * 150, None),
    ([f"{i:08x}-aa" for i in range(300)], None),
    ([f"Z{i % 40}" for i in range(300)], None),
])
def test_suggestions(values, expected):
    assert suggest_pii_type(pd.Series(values, dtype=object)) == expected


def test_declared_in_metadata_json_and_validated(with_notes):
    meta = ts.Metadata.detect(with_notes[["age", "sex"]].assign(who=["Ann Lee"] * len(with_notes)))
    meta = meta.with_pii("who", pii_type="name", locale="de_DE")
    again = ts.Metadata.from_json(meta.to_json())
    assert again == meta and json.loads(meta.to_json())["columns"]["who"]["pii_type"] == "name"
    frame = with_notes[["age", "sex"]].assign(who="Ann Lee")
    tt = TableTransformer().fit(frame, meta)
    assert tt.encoder_of("who").locale == "de_DE"
    assert not set(tt.inverse_transform(tt.transform(frame), rng=0)["who"]) & {"Ann Lee"}
    with pytest.raises(MetadataError, match="pii_type only applies to kind 'pii'"):
        ts.Metadata([ts.ColumnSpec(name="x", kind="categorical", pii_type="name")])
    with pytest.raises(ConfigError, match="neither one of"):
        PiiEncoder("who", "no_such_provider")


def test_encoder_is_vectorised_reproducible_and_serialises():
    enc = PiiEncoder.fit("who", pd.Series(["x", None] * 10), "name")
    a = enc.inverse_transform(np.zeros((100_000, 0)), np.random.default_rng(3))
    names = a.dropna()
    assert 0.45 < a.isna().mean() < 0.55 and names.nunique() > 5000
    assert names.str.match(r"^[A-Z][\w.'\-]+( [\w.'\-]+)+$").mean() > 0.95
    b = PiiEncoder.from_dict(json.loads(json.dumps(enc.to_dict()))).inverse_transform(
        np.zeros((1000, 0)), np.random.default_rng(3))
    pd.testing.assert_series_equal(b, enc.inverse_transform(np.zeros((1000, 0)), np.random.default_rng(3)))
