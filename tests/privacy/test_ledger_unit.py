"""The privacy unit in the ledger: a dataset's unit is recorded with its budget in the hash chain, and
a reservation in another unit is refused (docs/privacy.md rule 1)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tabsynth.errors import PrivacyConfigError
from tabsynth.privacy import PrivacySpent
from tabsynth.privacy.ledger import Budget, Ledger, LedgerIntegrityError
from tabsynth.privacy.ledger_store import now

FP = "cd" * 32


def _reserve(ledger: Ledger, eps: float = 0.3, **unit) -> int:
    return ledger.reserve("ds", eps, 1e-6, release_id="r", mechanism="test", params={}, fingerprint=FP, **unit)


@pytest.fixture
def per_person(tmp_path) -> Ledger:
    ledger = Ledger(tmp_path / "budget.db")
    ledger.set_budget("ds", 1.0, 1e-5, unit="person", key="id")
    return ledger


def _old_ledger(path) -> Ledger:
    """A ledger whose budget event has no unit, as every ledger written before units existed."""
    ledger = Ledger(path)
    with ledger._transaction(write=True) as (conn, state):
        t = now()
        ledger._append(conn, state, "budget", "ds", {"time": t, "epsilon": 1.0, "delta": 1e-5})
        conn.execute("INSERT INTO budgets (dataset_id, epsilon, delta, set_at) VALUES (?, ?, ?, ?)",
                     ("ds", 1.0, 1e-5, t))
    return Ledger(path)


def test_a_per_row_release_on_a_per_person_budget_is_refused_and_spends_nothing(per_person):
    head = per_person.head
    with pytest.raises(PrivacyConfigError) as err:
        _reserve(per_person)
    assert type(err.value) is PrivacyConfigError
    msg = str(err.value)
    assert "'ds'" in msg and "per person (key 'id')" in msg and "this release is per row" in msg
    assert "another dataset id" in msg  # says what to do
    with pytest.raises(PrivacyConfigError, match="per person \\(key 'pid'\\)"):
        _reserve(per_person, unit="person", key="pid")  # another key is another notion of person
    assert per_person.history() == [] and per_person.head == head
    assert per_person.remaining("ds").epsilon == 1.0


def test_the_same_unit_is_accepted_and_exposed(per_person):
    rid = _reserve(per_person, unit="person", key="id")
    per_person.commit(rid, epsilon=0.25)
    assert per_person.budget("ds") == Budget(1.0, 1e-5, "person", "id")
    assert per_person.datasets()["ds"].unit == "person" and per_person.datasets()["ds"].key == "id"
    assert per_person.remaining("ds").unit == "person"
    assert str(per_person.budget("ds")).endswith("per person (key 'id')")
    per_person.verify()


def test_a_per_person_unit_needs_its_key_and_a_row_unit_takes_none(tmp_path):
    ledger = Ledger(tmp_path / "b.db")
    for unit, key in (("person", None), ("row", "id"), ("household", "id"), ("person", "")):
        with pytest.raises(PrivacyConfigError):
            ledger.set_budget("ds", 1.0, 1e-5, unit=unit, key=key)
    assert ledger.datasets() == {}


def test_an_old_ledger_without_units_reads_as_per_row_and_still_verifies(tmp_path):
    ledger = _old_ledger(tmp_path / "old.db")
    payload = sqlite3.connect(tmp_path / "old.db").execute(
        "SELECT payload FROM events WHERE kind = 'budget'").fetchone()[0]
    assert "unit" not in json.loads(payload)
    assert ledger.budget("ds") == Budget(1.0, 1e-5, "row", None) and str(ledger.budget("ds")) == \
        "epsilon=1, delta=1e-05"
    ledger.verify()
    with pytest.raises(PrivacyConfigError, match="budget is per row; this release is per person"):
        _reserve(ledger, unit="person", key="id")
    ledger.commit(_reserve(ledger))  # the default unit is the row
    ledger.set_budget("ds", 2.0, 1e-5)  # unset unit: the dataset keeps its own
    assert ledger.budget("ds").unit == "row"
    ledger.verify()


def test_the_unit_cannot_change_under_counted_spends(per_person):
    per_person.set_budget("ds", 2.0, 1e-5)  # unit unset (the CLI's --set-budget): stays per person
    assert per_person.budget("ds") == Budget(2.0, 1e-5, "person", "id")
    rid = _reserve(per_person, unit="person", key="id")
    with pytest.raises(PrivacyConfigError, match="1 counted spends per person"):
        per_person.set_budget("ds", 2.0, 1e-5, unit="row")
    per_person.rollback(rid, touched_data=False)  # freed: nothing counted any more
    assert per_person.set_budget("ds", 2.0, 1e-5, unit="row").unit == "row"
    _reserve(per_person)
    per_person.verify()


def test_the_unit_is_in_the_hash_chain(per_person, tmp_path):
    _reserve(per_person, unit="person", key="id")
    per_person.verify()
    db = sqlite3.connect(tmp_path / "budget.db")
    seq, payload = db.execute("SELECT seq, payload FROM events WHERE kind = 'budget'").fetchone()
    assert json.loads(payload)["unit"] == "person" and json.loads(payload)["key"] == "id"
    reserve = json.loads(db.execute("SELECT payload FROM events WHERE kind = 'reserve'").fetchone()[0])
    assert (reserve["unit"], reserve["key"]) == ("person", "id")
    # a hand edit turning the budget per row is caught
    edited = json.loads(payload)
    del edited["key"]
    edited["unit"] = "row"
    with db:
        db.execute("UPDATE events SET payload = ? WHERE seq = ?", (json.dumps(edited), seq))
    with pytest.raises(LedgerIntegrityError):
        per_person.verify()


def test_privacy_spent_names_its_unit_and_old_statements_read_as_per_row():
    row = PrivacySpent(1.0, 1e-6, accountant="rdp")
    person = PrivacySpent(1.0, 1e-6, accountant="rdp", unit="person", unit_key="id")
    assert (row.to_dict()["unit"], row.to_dict()["unit_key"]) == ("row", None)
    assert person.to_dict()["unit"] == "person" and person.to_dict()["unit_key"] == "id"
    assert PrivacySpent.from_dict(person.to_dict()) == person
    old = {k: v for k, v in row.to_dict().items() if k not in ("unit", "unit_key")}
    assert PrivacySpent.from_dict(old).unit == "row"
    assert "per row" in str(row) and "per person (key 'id')" in str(person)
    assert person.neighbours.endswith("all their events, key 'id')") and row.neighbours.endswith("one row")
    assert (person.epsilon, person.delta) == (row.epsilon, row.delta) == (1.0, 1e-6)
    with pytest.raises(PrivacyConfigError):
        PrivacySpent(1.0, 1e-6, unit="visit")
