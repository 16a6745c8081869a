"""The privacy unit in a release: the ledger check before anything is reserved, the statement after the
fit, and the words the model card, the report's formal guarantee and the ledger command use."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import tabsynth.release.core as core
from tabsynth.cli import main
from tabsynth.errors import PrivacyConfigError, PrivacyError, PrivacyWarning
from tabsynth.metadata import ColumnSpec, Metadata
from tabsynth.privacy import PrivacyPart, PrivacySpent
from tabsynth.privacy.ledger import Ledger
from tabsynth.release import release
from tabsynth.release.card import model_card
from tabsynth.release.checks import check_unit
from tabsynth.report.formal import formal_privacy_section, formal_section

PERSON = "Neighbouring data sets differ by one person (their row in the person table and all their events, key 'id')"
ROW = "Neighbouring data sets differ by one row"
TINY = dict(epochs=1, batch_size=1000, seed=0, report=False, embedding_dim=8, hidden=(8,))


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    n = 240
    return pd.DataFrame({"id": rng.integers(0, 80, n), "x": rng.normal(50, 9, n).round(1),
                         "c": rng.choice(["a", "b", "c"], n)})


def _spent(**unit) -> PrivacySpent:
    return PrivacySpent(0.9, 1e-6, parts={"training": PrivacyPart("training", 0.9, 1e-6, "DP-SGD")},
                        accountant="rdp", composition="Renyi DP", **unit)


def _manifest(spent: PrivacySpent) -> dict:
    return {"release_id": "rel-1", "dataset_id": "ds", "created_at": "2026-12-07T00:00:00+00:00",
            "versions": {"tabsynth": "0"}, "source_fingerprint": None, "internal_files": [],
            "model": {"name": "tabularar", "class": "tabsynth.TabularAR", "settings": {}},
            "privacy": {**spent.to_dict(), "statement": str(spent)}}


def test_the_model_card_names_the_unit():
    synthetic = pd.DataFrame({"x": [1.0, 2.0]})
    person = model_card(_manifest(_spent(unit="person", unit_key="id")), synthetic)
    row = model_card(_manifest(_spent()), synthetic)
    assert PERSON in person and "differential privacy per person (key 'id')**" in person
    assert "protected together" in person and "The guarantee is per row" not in person and ROW not in person
    assert ROW + ": one is the other with one row added or removed" in row
    assert "differential privacy per row**" in row and "The guarantee is per row" in row and "one person" not in row


def test_the_reports_formal_guarantee_names_the_unit():
    meta = Metadata([ColumnSpec("x", "numerical")])
    person = formal_section(_spent(unit="person", unit_key="id"), meta)
    row = formal_section(_spent(), meta)
    assert person["unit"] == "person" and person["unit_key"] == "id" and row["unit"] == "row"
    assert person["meaning"].startswith("(0.9, 1e-06)-differential privacy per person (key 'id'). " + PERSON)
    assert "adding or removing any one person" in person["meaning"]
    assert ROW in row["meaning"] and "any one training row" in row["meaning"]
    assert any("two keys" in x for x in person["not_covered"]) and not any("per row" in x for x in person["not_covered"])
    assert any("k times epsilon" in x for x in row["not_covered"])
    assert "Differential privacy per person (key 'id'): epsilon = " in formal_privacy_section(person).explanation
    assert "Differential privacy per row: epsilon = " in formal_privacy_section(row).explanation


def test_a_plain_release_is_per_row_and_says_so(table, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        r = release(table, 0.5, tmp_path / "b.db", tmp_path / "out", dataset_id="ds", budget=(1.0, 1e-5), **TINY)
    assert (r.manifest["privacy"]["unit"], r.manifest["privacy"]["unit_key"]) == ("row", None)
    assert r.privacy.unit == "row" and Ledger(tmp_path / "b.db").budget("ds").unit == "row"
    assert ROW in r.model_card_path.read_text()


def test_a_per_row_release_on_a_per_person_budget_is_refused_before_anything(table, tmp_path):
    ledger = Ledger(tmp_path / "b.db")
    ledger.set_budget("ds", 1.0, 1e-5, unit="person", key="id")
    with pytest.raises(PrivacyConfigError, match="budget is per person \\(key 'id'\\); this release is per row"):
        release(table, 0.5, ledger, tmp_path / "out", dataset_id="ds", **TINY)
    with pytest.raises(PrivacyConfigError, match="this release is per row"):
        check_unit(ledger, "ds", "row")
    check_unit(ledger, "ds", "person", "id")
    assert ledger.history() == [] and not (tmp_path / "out").exists()


def test_a_per_row_fit_reserved_per_person_is_refused_and_stays_counted(table, tmp_path):
    ledger = Ledger(tmp_path / "b.db")
    ledger.set_budget("ds", 1.0, 1e-5, unit="person", key="id")
    job = core._prepare(table, 0.5, ledger, tmp_path / "out", "tabularar", dataset_id="ds", delta=None, n_rows=None,
                        epochs=1, seed=0, holdout=None, target=None, metadata=None, report=False, verbose=False,
                        budget=None, model_params={"batch_size": 1000, "embedding_dim": 8, "hidden": (8,)},
                        unit="person", key="id")
    with warnings.catch_warnings(), pytest.raises(PrivacyError, match="guarantee is per row, but the release was "
                                                                      "reserved per person \\(key 'id'\\)"):
        warnings.simplefilter("ignore", PrivacyWarning)
        core._run(job)
    [spend] = ledger.history()
    assert spend.status == "failed" and not (tmp_path / "out").exists()


def test_the_ledger_command_shows_and_sets_the_unit(tmp_path, capsys):
    db = tmp_path / "b.db"
    Ledger(db).set_budget("rows", 1.0, 1e-5)
    assert main(["ledger", str(db), "--dataset-id", "persons", "--set-budget", "2", "1e-5", "--person-key", "id"]) == 0
    out = capsys.readouterr().out
    assert "per person (key 'id')" in out and Ledger(db).budget("persons").key == "id"
    assert main(["ledger", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("rows") and "per row" in line for line in lines)
    assert any(line.startswith("persons") and "per person (key 'id')" in line for line in lines)
    assert main(["ledger", str(db), "--person-key", "id"]) != 0
