"""The privacy-budget ledger: no overspend under concurrency, kills, corruption and bad input."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import sqlite3

import pytest

from tabsynth.errors import PrivacyBudgetExceeded, PrivacyConfigError, PrivacyError
from tabsynth.privacy.ledger import COMPOSITION, Budget, Ledger, LedgerIntegrityError

import ledger_workers

FP = "ab" * 32


def _reserve(ledger: Ledger, eps: float, delta: float = 0.0, release_id: str = "r") -> int:
    return ledger.reserve("ds", eps, delta, release_id=release_id, mechanism="test", params={"k": 1},
                          fingerprint=FP)


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    led = Ledger(tmp_path / "budget.db")
    led.set_budget("ds", 1.0, 1e-5)
    return led


def _kill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL


# --- basics -----------------------------------------------------------------------------------
def test_budget_reserve_commit_and_history(ledger, tmp_path):
    assert ledger.remaining("ds") == Budget(1.0, 1e-5)
    rid = _reserve(ledger, 0.5, 2e-6, "r1")
    assert ledger.remaining("ds") == Budget(0.5, 8e-6)
    spend = ledger.commit(rid, epsilon=0.45, delta=2e-6)  # the run spent less than reserved
    assert spend.status == "committed" and spend.reserved_epsilon == 0.5
    eps, delta = ledger.remaining("ds")
    assert math.isclose(eps, 0.55) and math.isclose(delta, 8e-6)
    [h] = ledger.history("ds")
    assert (h.release_id, h.mechanism, h.params, h.fingerprint, h.status) == ("r1", "test", {"k": 1}, FP, "committed")
    assert h.epsilon == 0.45 and h.tabsynth_version and h.time <= h.updated_at
    # the composition rule is stated in the file itself
    meta = dict(sqlite3.connect(tmp_path / "budget.db").execute("SELECT key, value FROM meta").fetchall())
    assert meta["composition"] == COMPOSITION == ledger.composition
    assert "basic" in COMPOSITION
    assert sqlite3.connect(tmp_path / "budget.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert Ledger(tmp_path / "budget.db").remaining("ds") == ledger.remaining("ds")  # reopened


def test_decimal_sums_do_not_refuse_exact_fits(tmp_path):
    led = Ledger(tmp_path / "b.db")
    led.set_budget("ds", 0.3, 0.0)
    _reserve(led, 0.1)
    _reserve(led, 0.2)  # 0.1 + 0.2 > 0.3 in floats; exact in the ledger
    assert led.remaining("ds").epsilon == 0.0
    with pytest.raises(PrivacyBudgetExceeded):
        _reserve(led, 1e-12)


def test_rollback_frees_only_untouched_runs(ledger):
    a = _reserve(ledger, 0.3)
    b = _reserve(ledger, 0.3)
    assert ledger.rollback(a, touched_data=False).status == "rolled_back"
    assert ledger.rollback(b, touched_data=True, note="crashed in epoch 3").status == "failed"
    assert math.isclose(ledger.remaining("ds").epsilon, 0.7)  # the failed run stays counted
    assert [s.status for s in ledger.history("ds")] == ["rolled_back", "failed"]
    with pytest.raises(PrivacyError, match="already failed"):
        ledger.commit(b)
    c = _reserve(ledger, 0.1)
    with pytest.raises(PrivacyError, match="more than the reserved"):
        ledger.commit(c, epsilon=0.2)
    assert ledger.get(c).status == "reserved"


def test_set_budget_rules(ledger):
    _reserve(ledger, 0.6)
    with pytest.raises(PrivacyConfigError, match="already spent"):
        ledger.set_budget("ds", 0.5, 1e-5)
    assert ledger.set_budget("ds", 9.0, 1e-3, only_if_new=True) == Budget(1.0, 1e-5)  # kept
    assert ledger.set_budget("ds", 2.0, 1e-5) == Budget(2.0, 1e-5)  # a deliberate raise is recorded
    assert math.isclose(ledger.remaining("ds").epsilon, 1.4)
    assert set(ledger.datasets()) == {"ds"}


# --- errors that must spend nothing -----------------------------------------------------------
def test_over_budget_is_refused_with_the_numbers(ledger):
    _reserve(ledger, 0.7)
    with pytest.raises(PrivacyBudgetExceeded, match=r"epsilon 0\.5 asked, 0\.3 of 1 left.*Nothing was spent"):
        _reserve(ledger, 0.5)
    with pytest.raises(PrivacyBudgetExceeded, match="delta"):
        _reserve(ledger, 0.1, 2e-5)
    assert len(ledger.history("ds")) == 1


@pytest.mark.parametrize("eps", [0, 0.0, -1.0, float("nan"), float("inf"), "1", None, True])
def test_bad_epsilon_is_refused(ledger, eps):
    with pytest.raises(PrivacyConfigError, match="epsilon"):
        _reserve(ledger, eps)
    assert ledger.history("ds") == []


@pytest.mark.parametrize("delta", [-1e-9, 1.0, 2.0, float("nan")])
def test_bad_delta_is_refused(ledger, delta):
    with pytest.raises(PrivacyConfigError, match="delta"):
        _reserve(ledger, 0.1, delta)
    assert ledger.history("ds") == []


def test_unknown_dataset_needs_set_budget(ledger):
    with pytest.raises(PrivacyBudgetExceeded, match="set_budget"):
        ledger.reserve("other", 0.1, 0.0, release_id="r", mechanism="m", params={}, fingerprint=FP)
    assert ledger.history() == []


def test_missing_ledger_with_create_false(tmp_path):
    with pytest.raises(PrivacyError, match="no ledger file"):
        Ledger(tmp_path / "typo.db", create=False)
    assert not (tmp_path / "typo.db").exists()


# --- concurrency and kills ----------------------------------------------------------------------
def test_concurrent_reservations_never_overspend(ledger):
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=ledger_workers.reserve, args=(str(ledger.path), barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    kinds = sorted(o[0] for o in outcomes)
    assert kinds == ["exceeded", "exceeded", "ok", "ok"], outcomes
    hist = ledger.history("ds")
    assert len(hist) == 2 and all(s.status == "reserved" for s in hist)
    assert math.isclose(ledger.spent("ds").epsilon, 0.8)
    assert math.isclose(ledger.remaining("ds").epsilon, 0.2)


def test_process_killed_after_reserving_keeps_the_spend(ledger):
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=ledger_workers.reserve_then_hang, args=(str(ledger.path), ready))
    proc.start()
    assert ready.wait(120)
    _kill(proc)
    reopened = Ledger(ledger.path)  # consistent: integrity and chain checks pass
    [s] = reopened.history("ds")
    assert (s.release_id, s.status, s.epsilon) == ("killed", "reserved", 0.6)
    assert math.isclose(reopened.remaining("ds").epsilon, 0.4)
    with pytest.raises(PrivacyBudgetExceeded):
        _reserve(reopened, 0.5)
    _reserve(reopened, 0.4)
    assert reopened.remaining("ds").epsilon == 0.0


def test_process_killed_inside_a_write_transaction(ledger):
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=ledger_workers.hold_write_lock, args=(str(ledger.path), ready))
    proc.start()
    assert ready.wait(120)
    _kill(proc)
    led = Ledger(ledger.path)  # the half transaction is gone and the lock is released
    _reserve(led, 0.2)
    assert math.isclose(led.remaining("ds").epsilon, 0.8)
    meta = dict(sqlite3.connect(ledger.path).execute("SELECT key, value FROM meta").fetchall())
    assert "half-written" not in meta


# --- integrity --------------------------------------------------------------------------------
def _assert_refused(path, before: bytes | None = None) -> None:
    with pytest.raises(PrivacyError, match="failed its integrity check.*restore it from a backup"):
        Ledger(path)
    if before is not None:
        assert path.read_bytes() == before  # never reset


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "budget.db"
    path.write_bytes(os.urandom(8192))
    _assert_refused(path, path.read_bytes())


def test_corrupted_pages_are_refused(ledger):
    for i in range(5):
        _reserve(ledger, 0.01, release_id=f"r{i}")
    conn = sqlite3.connect(ledger.path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(ledger.path.read_bytes())
    data[100:] = os.urandom(len(data) - 100)  # keep only the SQLite header
    ledger.path.write_bytes(bytes(data))
    _assert_refused(ledger.path, bytes(data))


def test_empty_and_foreign_files_are_refused(tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    _assert_refused(empty, b"")
    foreign = tmp_path / "other.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)")
    with pytest.raises(LedgerIntegrityError, match="not a tabsynth ledger"):
        Ledger(foreign)


@pytest.mark.parametrize("sql", [
    "UPDATE spends SET epsilon = 0.01 WHERE id = 1",
    "UPDATE spends SET status = 'rolled_back' WHERE id = 1",
    "DELETE FROM spends WHERE id = 1",
    "UPDATE budgets SET epsilon = 100",
    "UPDATE events SET payload = replace(payload, '0.5', '0.01') WHERE kind = 'reserve'",
    "DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)",
    "UPDATE meta SET value = 'anything goes' WHERE key = 'composition'",
])
def test_hand_edits_are_refused(ledger, sql):
    _reserve(ledger, 0.5)
    conn = sqlite3.connect(ledger.path, isolation_level=None)
    conn.execute(sql)
    conn.close()
    _assert_refused(ledger.path)
    with pytest.raises(LedgerIntegrityError):  # also refused by an already open Ledger object
        ledger.remaining("ds")


def test_backup_restores_a_refused_ledger(ledger, tmp_path):
    _reserve(ledger, 0.25)
    copy = ledger.backup(tmp_path / "backup.db")
    with pytest.raises(PrivacyConfigError, match="already exists"):
        ledger.backup(copy)
    conn = sqlite3.connect(ledger.path, isolation_level=None)
    conn.execute("UPDATE spends SET epsilon = 0")
    conn.close()
    _assert_refused(ledger.path)
    os.replace(copy, ledger.path)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(str(ledger.path) + suffix):
            os.unlink(str(ledger.path) + suffix)
    assert Ledger(ledger.path).remaining("ds").epsilon == 0.75
