"""A persistent privacy-budget ledger: one SQLite file, shared safely by concurrent processes.

>>> ledger = Ledger("budget.db")
>>> ledger.set_budget("adult-2026", epsilon=3.0, delta=1e-5)
>>> rid = ledger.reserve("adult-2026", 1.0, 1e-6, release_id="r1", mechanism="DP-SGD",
...                      params={"epochs": 10}, fingerprint=sha256_of_table)
>>> ...  # train, sample, write
>>> ledger.commit(rid)                     # or ledger.rollback(rid, touched_data=...)
>>> ledger.remaining("adult-2026")         # Budget(epsilon=2.0, delta=9e-06)

Guarantees
----------
* **No overspend.** ``reserve`` checks the remaining budget and records the spend in one
  ``BEGIN IMMEDIATE`` transaction (WAL mode), so concurrent processes serialise on it.
* **Fail closed.** A reservation counts as spent from the moment it is made. A run that fails or
  is killed keeps it (the privacy loss may already have happened); only ``rollback(...,
  touched_data=False)`` frees it, for a run that never read the data.
* **Composition.** Basic (sequential) composition across releases: the epsilons and the deltas of
  every counted spend add up. The rule is stated in the ledger's ``meta`` table.
* **Integrity.** Every change is an event in an append-only SHA-256 hash chain (each event hashes
  its content and the previous event's hash). Every transaction re-verifies the chain, replays it
  and compares the result with the ``budgets`` and ``spends`` tables; ``PRAGMA integrity_check``
  runs on open. A corrupted, truncated or hand-edited file is refused with
  :class:`~tabsynth.errors.PrivacyError`; the ledger is never silently reset. (The chain has no
  secret key: it catches corruption and hand edits, not a forger who recomputes every hash. Each
  release manifest records its ledger event hash as an outside anchor.)

Amounts are added as decimals of their shortest ``repr`` so that e.g. 0.1 + 0.2 fits a 0.3 budget
exactly; no float tolerance is ever granted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import sqlite3
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

from tabsynth.errors import PrivacyBudgetExceeded, PrivacyConfigError, PrivacyError
from tabsynth.privacy.config import check_delta, check_epsilon

__all__ = ["Budget", "Ledger", "LedgerIntegrityError", "Spend", "COMPOSITION"]

FORMAT = "tabsynth-ledger"
SCHEMA_VERSION = 1
APPLICATION_ID = 0x54535944  # "TSYD" in the SQLite header: marks the file as a tabsynth ledger
COMPOSITION = ("basic composition: the epsilons and the deltas of every counted spend (status reserved, "
               "committed or failed) on a dataset add up, and their sums may not exceed the dataset's budget")
GENESIS = "0" * 64
COUNTED = ("reserved", "committed", "failed")
STATUSES = COUNTED + ("rolled_back",)
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL, dataset_id TEXT,
    payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS budgets (
    dataset_id TEXT PRIMARY KEY, epsilon REAL NOT NULL, delta REAL NOT NULL, set_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spends (
    id INTEGER PRIMARY KEY, dataset_id TEXT NOT NULL, release_id TEXT NOT NULL, time TEXT NOT NULL,
    mechanism TEXT NOT NULL, params TEXT NOT NULL, epsilon REAL NOT NULL, delta REAL NOT NULL,
    reserved_epsilon REAL NOT NULL, reserved_delta REAL NOT NULL, fingerprint TEXT NOT NULL,
    tabsynth_version TEXT NOT NULL, status TEXT NOT NULL, updated_at TEXT NOT NULL, note TEXT);
CREATE INDEX IF NOT EXISTS spends_dataset ON spends (dataset_id);
"""
_SPEND_COLUMNS = ("id", "dataset_id", "release_id", "time", "mechanism", "params", "epsilon", "delta",
                  "reserved_epsilon", "reserved_delta", "fingerprint", "tabsynth_version", "status",
                  "updated_at", "note")


class LedgerIntegrityError(PrivacyError):
    """The ledger file is corrupted, hand-edited or not a tabsynth ledger."""


@dataclass(frozen=True)
class Budget:
    """An (epsilon, delta) pair: a dataset's total, spent or remaining budget."""

    epsilon: float
    delta: float

    def __iter__(self) -> Iterator[float]:  # so ``eps, delta = ledger.remaining(...)`` works
        return iter((self.epsilon, self.delta))

    def __str__(self) -> str:
        return f"epsilon={self.epsilon:.6g}, delta={self.delta:.6g}"


@dataclass(frozen=True)
class Spend:
    """One reservation in the ledger and what became of it."""

    id: int
    dataset_id: str
    release_id: str
    time: str
    mechanism: str
    params: dict[str, Any]
    epsilon: float
    delta: float
    reserved_epsilon: float
    reserved_delta: float
    fingerprint: str
    tabsynth_version: str
    status: str
    updated_at: str
    note: str | None = None

    @property
    def counted(self) -> bool:
        return self.status in COUNTED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _State:
    meta: dict[str, str] = field(default_factory=dict)
    budgets: dict[str, tuple[float, float, str]] = field(default_factory=dict)
    spends: dict[int, dict[str, Any]] = field(default_factory=dict)
    head: str = GENESIS
    count: int = 0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def _version() -> str:
    try:
        from tabsynth.version import __version__
        return __version__
    except Exception:  # noqa: BLE001 - a partially imported package during start-up
        return "unknown"


def _event_hash(seq: int, time_: str, kind: str, dataset_id: str | None, payload: str, prev: str) -> str:
    blob = json.dumps([seq, time_, kind, dataset_id, payload, prev], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)




def _check_text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PrivacyConfigError(f"{name} must be a non-empty string, got {value!r}")
    return value


class Ledger:
    """The privacy-budget ledger stored in the SQLite file ``path`` (created when missing).

    ``create=False`` refuses a missing file instead of creating an empty ledger (for read-only
    tools, where a typo should not create a new ledger). Objects are cheap and picklable: every
    call opens its own connection, so one ledger file can be used from many processes at once.
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise PrivacyError(f"{self.path}: no ledger file there; check the path (a new ledger is created "
                                   "only by Ledger(path) or `tabsynth release ... --budget-epsilon`)")
            self._create()
        self._check_file()
        with self._transaction(write=False) as (conn, _):
            try:
                rows = conn.execute("PRAGMA integrity_check").fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._integrity_error(f"SQLite integrity check could not run ({exc})") from exc
            if [tuple(r) for r in rows] != [("ok",)]:
                raise self._integrity_error("SQLite integrity check failed: "
                                            + "; ".join(str(r[0]) for r in rows[:3]))

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    # --- file handling ------------------------------------------------------------------------
    def _integrity_error(self, why: str) -> LedgerIntegrityError:
        return LedgerIntegrityError(
            f"privacy ledger {self.path} failed its integrity check ({why}). It is corrupted or was edited "
            "outside tabsynth, so its spends cannot be trusted: restore it from a backup. Do not delete or "
            "reset it; that would forget the privacy already spent.")

    def _create(self) -> None:
        """Build a complete ledger in a temporary file, then link it into place atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".new", dir=self.path.parent)
        os.close(fd)
        os.unlink(tmp)  # sqlite creates it
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("BEGIN IMMEDIATE")
                for stmt in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(stmt)
                key = secrets.token_hex(32)
                meta = {"format": FORMAT, "schema_version": str(SCHEMA_VERSION), "composition": COMPOSITION,
                        "created_at": _now(), "created_by": f"tabsynth {_version()}",
                        "integrity": "sha256 hash chain over events; tables are replayed from it",
                        "fingerprint_key": key}
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", sorted(meta.items()))
                init = {k: v for k, v in meta.items() if k != "fingerprint_key"}
                init["fingerprint_key_sha256"] = hashlib.sha256(key.encode()).hexdigest()
                self._append(conn, _State(), "init", None, init)
                conn.execute("COMMIT")
            finally:
                conn.close()
            try:
                os.link(tmp, self.path)  # atomic; fails if another process created the ledger first
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links
                if not self.path.exists():
                    os.replace(tmp, self.path)
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                try:
                    os.unlink(tmp + suffix)
                except FileNotFoundError:
                    pass

    def _check_file(self) -> None:
        if self.path.is_dir():
            raise PrivacyError(f"{self.path}: is a directory; give the ledger's file name (e.g. budget.db)")
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(100)
        except OSError as exc:
            raise PrivacyError(f"{self.path}: cannot read the ledger ({exc})") from exc
        if not head:
            raise self._integrity_error("the file is empty")
        if not head.startswith(_SQLITE_MAGIC):
            raise self._integrity_error("the file is not an SQLite database")
        if len(head) >= 72 and int.from_bytes(head[68:72], "big") != APPLICATION_ID:
            raise self._integrity_error("the SQLite file is not a tabsynth ledger (wrong application id)")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        return conn

    def _translate(self, exc: sqlite3.Error) -> PrivacyError:
        text = str(exc).lower()
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return PrivacyError(f"privacy ledger {self.path} stayed locked by another process for "
                                f"{_BUSY_TIMEOUT_S:.0f} s; try again ({exc})")
        if isinstance(exc, sqlite3.OperationalError) and ("readonly" in text or "unable to open" in text):
            return PrivacyError(f"privacy ledger {self.path} cannot be written ({exc}); check its permissions")
        return self._integrity_error(f"SQLite: {exc}")

    class _Tx:
        def __init__(self, ledger: "Ledger", write: bool) -> None:
            self.ledger, self.write, self.conn = ledger, write, None

        def __enter__(self) -> tuple[sqlite3.Connection, _State]:
            try:
                self.conn = self.ledger._connect()
                self.conn.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")
                state = self.ledger._verified_state(self.conn)
            except sqlite3.Error as exc:
                self._close()
                raise self.ledger._translate(exc) from exc
            except BaseException:
                self._close()
                raise
            return self.conn, state

        def __exit__(self, exc_type, exc, tb) -> bool:
            try:
                if exc_type is None:
                    self.conn.execute("COMMIT")
                else:
                    self.conn.execute("ROLLBACK")
            except sqlite3.Error as err:
                if exc_type is None:
                    raise self.ledger._translate(err) from err
            finally:
                self._close()
            if isinstance(exc, sqlite3.Error):
                raise self.ledger._translate(exc) from exc
            return False

        def _close(self) -> None:
            if self.conn is not None:
                self.conn.close()
                self.conn = None

    def _transaction(self, write: bool) -> "Ledger._Tx":
        return Ledger._Tx(self, write)

    # --- the hash chain -----------------------------------------------------------------------
    def _append(self, conn: sqlite3.Connection, state: _State, kind: str, dataset_id: str | None,
                payload: dict[str, Any]) -> str:
        seq = state.count + 1
        t = payload.get("time") or _now()
        body = _canonical(payload)
        h = _event_hash(seq, t, kind, dataset_id, body, state.head)
        conn.execute("INSERT INTO events (seq, time, kind, dataset_id, payload, prev_hash, hash) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", (seq, t, kind, dataset_id, body, state.head, h))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('chain_head', ?)", (h,))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('event_count', ?)", (str(seq),))
        state.head, state.count = h, seq
        return h

    def _verified_state(self, conn: sqlite3.Connection) -> _State:
        """Check the chain, replay it, and compare with the tables; raise on any difference."""
        fail = self._integrity_error
        state = _State()
        state.meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        prev, expected_seq = GENESIS, 1
        for seq, t, kind, ds, payload, prev_hash, h in conn.execute(
                "SELECT seq, time, kind, dataset_id, payload, prev_hash, hash FROM events ORDER BY seq"):
            if seq != expected_seq or prev_hash != prev or _event_hash(seq, t, kind, ds, payload, prev) != h:
                raise fail(f"event {seq} does not match the hash chain")
            try:
                p = json.loads(payload)
            except ValueError as exc:
                raise fail(f"event {seq} holds unreadable JSON") from exc
            self._replay(state, seq, t, kind, ds, p)
            prev, expected_seq = h, expected_seq + 1
        state.head, state.count = prev, expected_seq - 1
        if state.count == 0:
            raise fail("it holds no events (not even its creation)")
        m = state.meta
        if (m.get("chain_head") != state.head or m.get("event_count") != str(state.count)
                or hashlib.sha256(m.get("fingerprint_key", "").encode()).hexdigest()
                != state.meta.get("_init_key_sha256")):
            raise fail("the chain head, event count or key in the meta table does not match the events")
        budgets = {r[0]: (r[1], r[2], r[3]) for r in conn.execute(
            "SELECT dataset_id, epsilon, delta, set_at FROM budgets")}
        if budgets != state.budgets:
            raise fail("the budgets table differs from the recorded history")
        spends = {r[0]: dict(zip(_SPEND_COLUMNS, r)) for r in conn.execute(
            f"SELECT {', '.join(_SPEND_COLUMNS)} FROM spends")}
        if spends != state.spends:
            raise fail("the spends table differs from the recorded history")
        return state

    def _replay(self, state: _State, seq: int, t: str, kind: str, ds: str | None, p: dict[str, Any]) -> None:
        fail = self._integrity_error
        try:
            if kind == "init":
                if seq != 1 or p.get("format") != FORMAT:
                    raise fail("the first event is not a tabsynth ledger creation")
                if int(p.get("schema_version", 0)) > SCHEMA_VERSION:
                    raise PrivacyError(f"privacy ledger {self.path} was written by a newer tabsynth (schema "
                                       f"{p['schema_version']}); upgrade tabsynth to use it")
                for key in ("format", "schema_version", "composition"):
                    if state.meta.get(key) != p.get(key):
                        raise fail(f"meta {key!r} differs from the recorded history")
                state.meta["_init_key_sha256"] = p.get("fingerprint_key_sha256")
            elif seq == 1:
                raise fail("the first event is not a tabsynth ledger creation")
            elif kind == "budget":
                state.budgets[ds] = (float(p["epsilon"]), float(p["delta"]), t)
            elif kind == "reserve":
                sid = int(p["id"])
                if sid in state.spends or ds not in state.budgets:
                    raise fail(f"event {seq} reserves an impossible spend")
                state.spends[sid] = {
                    "id": sid, "dataset_id": ds, "release_id": p["release_id"], "time": t,
                    "mechanism": p["mechanism"], "params": _canonical(p["params"]),
                    "epsilon": float(p["epsilon"]), "delta": float(p["delta"]),
                    "reserved_epsilon": float(p["epsilon"]), "reserved_delta": float(p["delta"]),
                    "fingerprint": p["fingerprint"], "tabsynth_version": p["tabsynth_version"],
                    "status": "reserved", "updated_at": t, "note": None}
            elif kind in ("commit", "fail", "rollback"):
                s = state.spends.get(int(p["id"]))
                if s is None or s["status"] != "reserved" or s["dataset_id"] != ds:
                    raise fail(f"event {seq} closes a spend that is not open")
                s["status"] = {"commit": "committed", "fail": "failed", "rollback": "rolled_back"}[kind]
                s["updated_at"] = t
                s["note"] = p.get("note")
                if kind == "commit":
                    s["epsilon"], s["delta"] = float(p["epsilon"]), float(p["delta"])
            else:
                raise fail(f"event {seq} has unknown kind {kind!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise fail(f"event {seq} is malformed ({exc})") from exc

    # --- reading ------------------------------------------------------------------------------
    @staticmethod
    def _spent(state: _State, dataset_id: str) -> tuple[Decimal, Decimal]:
        eps = delta = Decimal(0)
        for s in state.spends.values():
            if s["dataset_id"] == dataset_id and s["status"] in COUNTED:
                eps += _dec(s["epsilon"])
                delta += _dec(s["delta"])
        return eps, delta

    def _remaining(self, state: _State, dataset_id: str) -> tuple[Decimal, Decimal]:
        if dataset_id not in state.budgets:
            raise PrivacyBudgetExceeded(
                f"dataset {dataset_id!r} has no privacy budget in ledger {self.path}; set one first with "
                f"Ledger(...).set_budget({dataset_id!r}, epsilon, delta) (CLI: --budget-epsilon/--budget-delta)")
        eps_b, delta_b, _ = state.budgets[dataset_id]
        eps_s, delta_s = self._spent(state, dataset_id)
        return _dec(eps_b) - eps_s, _dec(delta_b) - delta_s

    def datasets(self) -> dict[str, Budget]:
        """Every dataset id with its total budget."""
        with self._transaction(write=False) as (_, state):
            return {k: Budget(v[0], v[1]) for k, v in sorted(state.budgets.items())}

    def budget(self, dataset_id: str) -> Budget:
        """The total budget of ``dataset_id``."""
        with self._transaction(write=False) as (_, state):
            self._remaining(state, dataset_id)
            eps, delta, _ = state.budgets[dataset_id]
            return Budget(eps, delta)

    def spent(self, dataset_id: str) -> Budget:
        """The counted spend (reserved, committed and failed) on ``dataset_id``, by basic composition."""
        with self._transaction(write=False) as (_, state):
            self._remaining(state, dataset_id)
            eps, delta = self._spent(state, dataset_id)
            return Budget(float(eps), float(delta))

    def remaining(self, dataset_id: str) -> Budget:
        """What ``dataset_id`` can still spend; raises :class:`PrivacyBudgetExceeded` if it has no budget."""
        with self._transaction(write=False) as (_, state):
            eps, delta = self._remaining(state, dataset_id)
            return Budget(float(eps), float(delta))

    def history(self, dataset_id: str | None = None) -> list[Spend]:
        """Every spend (all datasets when ``dataset_id`` is None), oldest first."""
        with self._transaction(write=False) as (_, state):
            if dataset_id is not None and dataset_id not in state.budgets:
                raise PrivacyError(f"dataset {dataset_id!r} is not in ledger {self.path} "
                                   f"(known: {', '.join(sorted(state.budgets)) or 'none'})")
            return [Spend(**{**s, "params": json.loads(s["params"])}) for _, s in sorted(state.spends.items())
                    if dataset_id is None or s["dataset_id"] == dataset_id]

    def get(self, reservation: int) -> Spend:
        """The spend recorded for ``reservation``."""
        with self._transaction(write=False) as (_, state):
            s = self._open_spend(state, reservation, any_status=True)
            return Spend(**{**s, "params": json.loads(s["params"])})

    @property
    def composition(self) -> str:
        """How spends on one dataset compose (stated in the ledger's meta table)."""
        with self._transaction(write=False) as (_, state):
            return state.meta["composition"]

    def verify(self) -> str:
        """Re-check the whole ledger; returns the chain head hash or raises :class:`LedgerIntegrityError`."""
        with self._transaction(write=False) as (conn, state):
            rows = conn.execute("PRAGMA integrity_check").fetchall()
            if [tuple(r) for r in rows] != [("ok",)]:
                raise self._integrity_error("SQLite integrity check failed")
            return state.head

    def backup(self, dest: str | os.PathLike) -> Path:
        """Copy the verified ledger to ``dest`` (SQLite online backup: safe while others use it)."""
        dest = Path(dest)
        if dest.exists():
            raise PrivacyConfigError(f"{dest}: already exists; a backup never overwrites a file")
        with self._transaction(write=False) as (conn, _):
            target = sqlite3.connect(str(dest))
            try:
                conn.backup(target)
            finally:
                target.close()
        Ledger(dest, create=False)  # the copy passes the same checks
        return dest

    def keyed_fingerprint(self, fingerprint: str) -> str:
        """HMAC-SHA256 of a table fingerprint under this ledger's secret key.

        A plain SHA-256 of the source table must not be published: whoever knows all rows but one
        could test candidates for the last row against it. The keyed form identifies the source for
        the custodian (who holds the ledger) and tells nobody else anything.
        """
        with self._transaction(write=False) as (_, state):
            key = bytes.fromhex(state.meta["fingerprint_key"])
        return "hmac-sha256:" + hmac.new(key, fingerprint.encode("ascii"), hashlib.sha256).hexdigest()

    # --- writing ------------------------------------------------------------------------------
    def set_budget(self, dataset_id: str, epsilon: float, delta: float, *, only_if_new: bool = False) -> Budget:
        """Set (or change) the total budget of ``dataset_id``; returns the budget now in force.

        With ``only_if_new=True`` an existing budget is kept and returned unchanged (atomically, so
        concurrent first releases agree). A new total below what is already spent is refused.
        """
        _check_text(dataset_id, "dataset_id")
        epsilon, delta = check_epsilon(epsilon, "budget epsilon"), check_delta(delta, "budget delta")
        with self._transaction(write=True) as (conn, state):
            if dataset_id in state.budgets:
                if only_if_new:
                    eps, dlt, _ = state.budgets[dataset_id]
                    return Budget(eps, dlt)
                eps_s, delta_s = self._spent(state, dataset_id)
                if _dec(epsilon) < eps_s or _dec(delta) < delta_s:
                    raise PrivacyConfigError(
                        f"dataset {dataset_id!r} has already spent epsilon={float(eps_s):.6g}, "
                        f"delta={float(delta_s):.6g}; a budget of epsilon={epsilon:.6g}, delta={delta:.6g} is below "
                        "that. Spent privacy cannot be taken back.")
            t = _now()
            self._append(conn, state, "budget", dataset_id, {"time": t, "epsilon": epsilon, "delta": delta})
            conn.execute("INSERT OR REPLACE INTO budgets (dataset_id, epsilon, delta, set_at) VALUES (?, ?, ?, ?)",
                         (dataset_id, epsilon, delta, t))
            return Budget(epsilon, delta)

    def reserve(self, dataset_id: str, epsilon: float, delta: float, release_id: str, mechanism: str,
                params: dict[str, Any] | None, fingerprint: str) -> int:
        """Reserve (epsilon, delta) for a release in one transaction; returns the reservation id.

        Raises :class:`PrivacyBudgetExceeded` (with the numbers) when it does not fit in the
        remaining budget or the dataset has no budget, :class:`PrivacyConfigError` for an epsilon
        <= 0 or a delta outside [0, 1). Nothing is recorded when it raises.
        """
        _check_text(dataset_id, "dataset_id")
        epsilon, delta = check_epsilon(epsilon), check_delta(delta)
        _check_text(release_id, "release_id")
        _check_text(mechanism, "mechanism")
        _check_text(fingerprint, "fingerprint")
        params = dict(params or {})
        try:
            params = json.loads(_canonical(params))
        except (TypeError, ValueError) as exc:
            raise PrivacyConfigError(f"params must be JSON-serialisable (no NaN), got {params!r} ({exc})") from exc
        with self._transaction(write=True) as (conn, state):
            eps_r, delta_r = self._remaining(state, dataset_id)
            if _dec(epsilon) > eps_r or _dec(delta) > delta_r:
                eps_b, delta_b, _ = state.budgets[dataset_id]
                what = []
                if _dec(epsilon) > eps_r:
                    what.append(f"epsilon {epsilon:.6g} asked, {float(eps_r):.6g} of {eps_b:.6g} left")
                if _dec(delta) > delta_r:
                    what.append(f"delta {delta:.6g} asked, {float(delta_r):.6g} of {delta_b:.6g} left")
                counted = sum(1 for s in state.spends.values()
                              if s["dataset_id"] == dataset_id and s["status"] in COUNTED)
                raise PrivacyBudgetExceeded(
                    f"dataset {dataset_id!r}: the release does not fit in its privacy budget ({'; '.join(what)}; "
                    f"basic composition over {counted} counted spends). Nothing was spent. What would fit: "
                    f"epsilon <= {max(float(eps_r), 0.0):.6g} with delta <= {max(float(delta_r), 0.0):.3g}; ask "
                    "for that much or less, or have the custodian decide on the budget.")
            sid = max(state.spends, default=0) + 1
            t = _now()
            payload = {"time": t, "id": sid, "release_id": release_id, "mechanism": mechanism, "params": params,
                       "epsilon": epsilon, "delta": delta, "fingerprint": fingerprint,
                       "tabsynth_version": _version()}
            self._append(conn, state, "reserve", dataset_id, payload)
            conn.execute(
                f"INSERT INTO spends ({', '.join(_SPEND_COLUMNS)}) VALUES ({', '.join('?' * len(_SPEND_COLUMNS))})",
                (sid, dataset_id, release_id, t, mechanism, _canonical(params), epsilon, delta, epsilon, delta,
                 fingerprint, _version(), "reserved", t, None))
            return sid

    def _open_spend(self, state: _State, reservation: Any, any_status: bool = False) -> dict[str, Any]:
        rid = getattr(reservation, "id", reservation)
        if isinstance(rid, bool) or not isinstance(rid, int):
            raise PrivacyConfigError(f"reservation must be the id returned by reserve(), got {reservation!r}")
        s = state.spends.get(rid)
        if s is None:
            raise PrivacyError(f"ledger {self.path} has no reservation {rid}")
        if not any_status and s["status"] != "reserved":
            raise PrivacyError(f"reservation {rid} is already {s['status']}; it can be closed only once")
        return s

    def _close(self, reservation: Any, kind: str, status: str, note: str | None,
               epsilon: float | None = None, delta: float | None = None) -> Spend:
        with self._transaction(write=True) as (conn, state):
            s = self._open_spend(state, reservation)
            t = _now()
            payload: dict[str, Any] = {"time": t, "id": s["id"], "note": note}
            eps, dlt = s["epsilon"], s["delta"]
            if kind == "commit":
                eps = s["epsilon"] if epsilon is None else check_epsilon(epsilon, "spent epsilon")
                dlt = s["delta"] if delta is None else check_delta(delta, "spent delta")
                if _dec(eps) > _dec(s["reserved_epsilon"]) or _dec(dlt) > _dec(s["reserved_delta"]):
                    raise PrivacyError(
                        f"reservation {s['id']}: the run spent epsilon={eps:.6g}, delta={dlt:.6g}, more than the "
                        f"reserved epsilon={s['reserved_epsilon']:.6g}, delta={s['reserved_delta']:.6g}; the "
                        "reservation stays counted as reserved. This is a bug: report it.")
                payload.update(epsilon=eps, delta=dlt)
            self._append(conn, state, kind, s["dataset_id"], payload)
            conn.execute("UPDATE spends SET status = ?, updated_at = ?, note = ?, epsilon = ?, delta = ? WHERE id = ?",
                         (status, t, note, eps, dlt, s["id"]))
            return Spend(**{**s, "status": status, "updated_at": t, "note": note, "epsilon": eps, "delta": dlt,
                            "params": json.loads(s["params"])})

    def commit(self, reservation: int, epsilon: float | None = None, delta: float | None = None,
               note: str | None = None) -> Spend:
        """Mark a reservation as a completed release.

        ``epsilon``/``delta``: what the run actually spent, when less than reserved (it may never be
        more); the difference goes back to the budget. Returns the closed spend.
        """
        return self._close(reservation, "commit", "committed", note, epsilon, delta)

    def rollback(self, reservation: int, touched_data: bool, note: str | None = None) -> Spend:
        """Close a reservation whose run failed.

        ``touched_data=False`` (the run never read the private rows): the reservation is freed
        (status ``rolled_back``). ``touched_data=True``: the privacy loss may have happened, so it
        stays counted (status ``failed``).
        """
        if not isinstance(touched_data, bool):
            raise PrivacyConfigError(f"touched_data must be True or False, got {touched_data!r}")
        if touched_data:
            return self._close(reservation, "fail", "failed", note)
        return self._close(reservation, "rollback", "rolled_back", note)

    @property
    def head(self) -> str:
        """The hash of the latest event (an anchor to quote outside the ledger)."""
        with self._transaction(write=False) as (_, state):
            return state.head

    def event_hash(self, reservation: int) -> str:
        """Hash of the latest event that touched ``reservation`` (quoted in release manifests)."""
        with self._transaction(write=False) as (conn, state):
            s = self._open_spend(state, reservation, any_status=True)
            for h, payload in conn.execute("SELECT hash, payload FROM events WHERE dataset_id = ? ORDER BY seq DESC",
                                           (s["dataset_id"],)):
                if json.loads(payload).get("id") == s["id"]:
                    return h
        raise self._integrity_error(f"no event for reservation {reservation}")  # pragma: no cover
