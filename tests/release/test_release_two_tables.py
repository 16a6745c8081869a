"""release() of a person table and its event table: per person, both tables, the metadata JSON, the
manifest, the model card and the ledger's unit; the CLI; what differs between neighbouring bundles."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from tabsynth.cli import main
from tabsynth.errors import ConfigError, PrivacyConfigError, PrivacyWarning
from tabsynth.metadata import SequenceMetadata
from tabsynth.privacy.ledger import Ledger
from tabsynth.release import release, verify
from tabsynth.release.sequences import declare_order

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")

SMALL = dict(embedding_dim=16, hidden=(16,), epochs=1, report=False)
TWO = dict(key="id", order_by="day")


def _pair(n: int = 150, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    persons = pd.DataFrame({"id": np.arange(n), "sex": rng.choice(["f", "m"], n), "age": rng.normal(50, 10, n).round(1)})
    counts = rng.integers(1, 6, n)
    owner = np.repeat(persons["id"].to_numpy(), counts)
    position = np.concatenate([np.arange(c) for c in counts])
    events = pd.DataFrame({"id": owner, "day": position * 30 + rng.integers(0, 10, len(owner)),
                           "lab": rng.choice(["lo", "mid", "hi"], len(owner))})
    return persons, events


def _release(events, persons, tmp_path, name, ledger=None, **kw):
    ledger = ledger if ledger is not None else Ledger(tmp_path / f"{name}.db")
    if "ds" not in ledger.datasets():
        ledger.set_budget("ds", 2.0, 1e-5, unit="person", key="id")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        return release(events, 1.0, ledger, tmp_path / name, dataset_id="ds", subjects=persons,
                       **{**SMALL, **TWO, **kw})


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two")
    persons, events = _pair()
    ledger = Ledger(tmp / "b.db")
    return _release(events, persons, tmp, "rel", ledger=ledger), ledger, persons, events


def test_both_tables_are_written_linked_by_keys_with_the_order_held(done):
    r, _, persons, events = done
    subjects, ev = pd.read_parquet(r.subjects_path), pd.read_parquet(r.events_path)
    assert list(subjects.columns) == list(persons.columns) and list(ev.columns) == list(events.columns)
    assert subjects["id"].is_unique and set(ev["id"]) <= set(subjects["id"])
    assert ev.groupby("id", sort=False)["day"].apply(lambda s: s.is_monotonic_increasing).all()
    # as many persons as the noisy count, never the exact one by construction
    n_hat = r.privacy.parts["preprocessing_persons"].details["noisy_row_count"]
    assert len(subjects) == n_hat
    csv = pd.read_csv(r.public_dir / "data_events.csv.gz")
    assert len(csv) == len(ev) and list(csv.columns) == list(ev.columns)
    assert sorted(p.name for p in r.public_dir.iterdir()) == sorted([
        "data_subjects.parquet", "data_subjects.csv.gz", "data_events.parquet", "data_events.csv.gz",
        "metadata.json", "manifest.json", "model_card.md"])
    assert verify(r.path) == []


def test_the_metadata_json_declares_the_link_and_holds_no_value_of_the_rows(done):
    r, _, persons, events = done
    d = json.loads(r.metadata_path.read_text())
    assert (d["key"], d["order_by"], d["order_kind"]) == ("id", "day", "number")
    assert d["person_columns"] == ["sex", "age"] and d["event_columns"] == ["day", "lab"]
    for table in ("persons", "events"):
        for spec in d[table]["columns"].values():
            assert set(spec) <= {"kind", "dtype", "nullable"}, spec  # no categories, bounds or formats
    meta = SequenceMetadata.from_json(r.metadata_path)
    assert meta.persons.primary_key == "id" and meta.events.columns["id"].kind == "id"
    text = r.metadata_path.read_text()
    assert '"lo"' not in text and '"mid"' not in text and f": {events['day'].max()}" not in text


def test_the_manifest_card_and_ledger_say_per_person_with_the_key(done):
    r, ledger, _, _ = done
    m = r.manifest
    assert (m["privacy"]["unit"], m["privacy"]["unit_key"]) == ("person", "id")
    s = m["synthetic"]
    assert (s["unit"], s["key"], s["order_by"], s["metadata"]) == ("person", "id", "day", "metadata.json")
    assert s["subjects"]["rows"] == len(pd.read_parquet(r.subjects_path))
    assert s["events"]["files"] == ["data_events.parquet", "data_events.csv.gz"]
    card = r.model_card_path.read_text()
    assert "differential privacy per person (key 'id')**" in card
    assert "synthetic person table of" in card and "### Event table" in card and "`metadata.json` declares" in card
    budget = ledger.budget("ds")
    assert (budget.unit, budget.key) == ("person", "id")
    [spend] = ledger.history()
    assert spend.status == "committed" and spend.epsilon == pytest.approx(r.privacy.epsilon)


def test_a_per_row_release_of_the_same_dataset_is_refused_before_reserving(done, tmp_path):
    r, ledger, persons, events = done
    before = len(ledger.history())
    with pytest.raises(PrivacyConfigError, match="budget is per person \\(key 'id'\\); this release is per row"):
        release(events, 0.5, ledger, tmp_path / "rows", dataset_id="ds", **SMALL)
    assert len(ledger.history()) == before and not (tmp_path / "rows").exists()


def test_a_family_without_the_two_table_mode_and_misplaced_arguments_are_refused(tmp_path):
    persons, events = _pair(20)
    ledger = Ledger(tmp_path / "b.db")
    ledger.set_budget("ds", 2.0, 1e-5, unit="person", key="id")
    with pytest.raises(ConfigError, match="only TabularAR has the two-table mode"):
        release(events, 0.5, ledger, tmp_path / "a", "ctgan", dataset_id="ds", subjects=persons, **TWO)
    with pytest.raises(ConfigError, match="name its person id column with key"):
        release(events, 0.5, ledger, tmp_path / "b", dataset_id="ds", subjects=persons, order_by="day")
    with pytest.raises(ConfigError, match="give n_subjects"):
        release(events, 0.5, ledger, tmp_path / "c", dataset_id="ds", subjects=persons, n_rows=10, **TWO)
    text = events.astype(str)  # a CSV read under DP: the sequence column is text, its kind is declared
    with pytest.raises(ConfigError, match="order_kind='number' or order_kind='datetime'"):
        release(text, 0.5, ledger, tmp_path / "d", dataset_id="ds", subjects=persons, **TWO)
    assert ledger.history() == []


def test_neighbouring_bundles_differ_only_in_dp_outputs(tmp_path):
    persons, events = _pair(120, seed=3)
    extra = pd.DataFrame({"id": [7] * 6, "day": np.arange(200, 206), "lab": ["zz9canary"] * 6})
    plus = pd.concat([events, extra], ignore_index=True)
    a = _release(events, persons, tmp_path, "a", n_subjects=40)
    b = _release(plus, persons, tmp_path, "b", n_subjects=40)
    assert a.metadata_path.read_bytes() == b.metadata_path.read_bytes()
    for side in ("subjects", "events"):
        assert a.manifest["synthetic"][side]["columns"] == b.manifest["synthetic"][side]["columns"]
    assert a.manifest["synthetic"]["subjects"]["rows"] == b.manifest["synthetic"]["subjects"]["rows"] == 40
    assert a.manifest["model"]["settings"] == b.manifest["model"]["settings"]
    assert _paths(a.manifest) == _paths(b.manifest)  # the same fields: only DP outputs and stamps differ
    public = [b.metadata_path, b.model_card_path, b.manifest_path]
    assert not any("zz9canary" in p.read_text() for p in public)
    assert "zz9canary" not in set(pd.read_parquet(b.events_path)["lab"])  # one person's category: never released


def _paths(obj, path=""):
    if isinstance(obj, dict):
        return {q for k, v in obj.items() for q in _paths(v, f"{path}.{k}" if k not in ("files",) else f"{path}.files")}
    return {path}


def test_the_cli_releases_two_csv_tables_with_a_declared_order_kind(tmp_path, capsys):
    persons, events = _pair(150, seed=1)
    persons.to_csv(tmp_path / "persons.csv", index=False)
    events.to_csv(tmp_path / "events.csv", index=False)
    out = tmp_path / "rel"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        code = main(["release", str(tmp_path / "events.csv"), "--subjects", str(tmp_path / "persons.csv"),
                     "--key", "id", "--order-by", "day", "--order-kind", "number", "--epsilon", "1",
                     "--ledger", str(tmp_path / "b.db"), "--dataset-id", "ds", "--budget-epsilon", "2",
                     "--budget-delta", "1e-5", "-o", str(out), "--epochs", "1", "--no-report", "-q"])
    assert code == 0, capsys.readouterr().err
    assert Ledger(tmp_path / "b.db").budget("ds").unit == "person"
    meta = json.loads((out / "public" / "metadata.json").read_text())
    assert meta["order_kind"] == "number" and meta["events"]["columns"]["day"]["kind"] == "numerical"
    assert (out / "public" / "data_events.csv.gz").exists() and verify(out) == []


def test_the_cli_fits_two_csv_tables_under_dp_with_the_order_read_as_declared(tmp_path, capsys):
    persons, events = _pair(150, seed=2)
    persons.to_csv(tmp_path / "persons.csv", index=False)
    events.to_csv(tmp_path / "events.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        code = main(["fit", str(tmp_path / "events.csv"), "--subjects", str(tmp_path / "persons.csv"), "--key", "id",
                     "--order-by", "day", "--epsilon", "1", "-o", str(tmp_path / "m.tsyn"), "--epochs", "1", "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "persons (noisy count)" in captured.out and "per person (key 'id')" in captured.out
    assert main(["sample", str(tmp_path / "m.tsyn"), "-n", "5", "-o", str(tmp_path / "s.csv")]) == 0
    ev = pd.read_csv(tmp_path / "s_events.csv")
    assert ev.groupby("id", sort=False)["day"].apply(lambda s: s.is_monotonic_increasing).all()


def test_a_per_person_release_on_a_per_row_budget_is_refused_before_reserving(tmp_path):
    persons, events = _pair(20)
    ledger = Ledger(tmp_path / "b.db")
    ledger.set_budget("ds", 2.0, 1e-5)
    with pytest.raises(PrivacyConfigError, match="budget is per row; this release is per person \\(key 'id'\\)"):
        release(events, 0.5, ledger, tmp_path / "out", dataset_id="ds", subjects=persons, **TWO)
    assert ledger.history() == [] and not (tmp_path / "out").exists()


def test_text_sequence_and_bound_columns_are_read_as_the_declared_kind_one_cell_at_a_time():
    events = pd.DataFrame({"id": ["1", "1", "2"], "day": ["3", "x", "2.5"], "when": ["2020-01-02", "soon", None]})
    subjects = pd.DataFrame({"id": ["1", "2"], "end": ["9", "?"]})
    ev, sub = declare_order(events, subjects, "day", (None, "end"), "number")
    assert ev["day"].dtype == "float64" and ev["day"].isna().tolist() == [False, True, False]
    assert sub["end"].tolist()[0] == 9.0 and np.isnan(sub["end"].tolist()[1]) and ev["id"].dtype == object
    dates, _ = declare_order(events, None, "when", None, "datetime")
    assert pd.api.types.is_datetime64_any_dtype(dates["when"]) and dates["when"].isna().tolist() == [False, True, True]
    typed = events.assign(day=[3.0, 1.0, 2.5])
    assert declare_order(typed, None, "day", None, None)[0] is typed  # typed columns are left as they are
    with pytest.raises(ConfigError, match="order_kind must be 'number' or 'datetime'"):
        declare_order(events, None, "day", None, "date")


def test_an_event_table_alone_is_released_with_persons_of_no_attributes(tmp_path):
    _, events = _pair(150, seed=4)
    ledger = Ledger(tmp_path / "b.db")
    ledger.set_budget("ds", 2.0, 1e-5, unit="person", key="id")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        r = release(events, 1.0, ledger, tmp_path / "rel", dataset_id="ds", **SMALL, **TWO)
    subjects, ev = pd.read_parquet(r.subjects_path), pd.read_parquet(r.events_path)
    assert list(subjects.columns) == ["id"] and set(ev["id"]) <= set(subjects["id"])
    assert json.loads(r.metadata_path.read_text())["person_columns"] == [] and verify(r.path) == []


def _rising(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, SequenceMetadata]:
    """The pair with a stage that never falls, and metadata declaring it, the kinds and public domains."""
    persons, events = _pair(n, seed)
    events["stage"] = np.minimum(1 + events.groupby("id").cumcount() // 2, 4)
    meta = SequenceMetadata.from_dtypes(events, persons, key="id", order_by="day", non_decreasing=["stage"])
    ev_meta = meta.events.with_column("stage", kind="integer", dtype="int64", bounds=(1, 4), domain_source="public")
    ev_meta = ev_meta.with_column("lab", categories=("lo", "mid", "hi"), domain_source="public")
    return persons, events, SequenceMetadata(meta.persons, ev_meta, "id", "day", non_decreasing=("stage",))


def test_a_release_with_declared_sequence_metadata_keeps_its_rules_and_public_domains(tmp_path):
    persons, events, meta = _rising(150, 3)
    r = _release(events, persons, tmp_path, "declared", metadata=meta, key=None, order_by=None)
    d = json.loads(r.metadata_path.read_text())
    columns = d["events"]["columns"]
    assert d["non_decreasing"] == ["stage"] and columns["stage"]["domain"] == {"source": "public", "bounds": [1, 4]}
    assert columns["lab"]["domain"]["categories"] == ["lo", "mid", "hi"]
    ev = pd.read_parquet(r.events_path)
    assert ev.groupby("id", sort=False)["stage"].apply(lambda s: s.is_monotonic_increasing).all()
    assert ev["stage"].between(1, 4).all()


def test_the_cli_fits_with_a_sequence_metadata_json_and_a_non_decreasing_column(tmp_path, capsys):
    persons, events, meta = _rising(100, 4)
    persons.to_csv(tmp_path / "persons.csv", index=False)
    events.to_csv(tmp_path / "events.csv", index=False)
    meta.to_json(tmp_path / "meta.json")
    args = ["fit", str(tmp_path / "events.csv"), "--subjects", str(tmp_path / "persons.csv"), "--key", "id",
            "--metadata", str(tmp_path / "meta.json"), "-o", str(tmp_path / "m.tsyn"), "--epochs", "1", "-q"]
    assert main(args) == 0, capsys.readouterr().err
    assert main(["sample", str(tmp_path / "m.tsyn"), "-n", "30", "-o", str(tmp_path / "s.csv")]) == 0
    ev = pd.read_csv(tmp_path / "s_events.csv")
    assert ev.groupby("id", sort=False)["stage"].apply(lambda s: s.is_monotonic_increasing).all()
    assert main(["pid" if a == "id" else a for a in args]) == 2
    assert "disagrees with the metadata's 'id'" in capsys.readouterr().err
