"""The ledger's storage: the SQLite file, its locking, the SHA-256 hash chain and the HMAC key.

:class:`LedgerFile` creates and checks the file, runs every read or write in one SQLite transaction
(``BEGIN IMMEDIATE`` for writes, WAL mode, so concurrent processes serialise), appends events to the
hash chain and, in every transaction, replays the chain and compares the result with the
``budgets`` and ``spends`` tables. :class:`tabsynth.privacy.ledger.Ledger` states the budget rules
on top of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from tabsynth.errors import PrivacyError
from tabsynth.privacy.unit import check_unit

__all__ = ["COMPOSITION", "SPEND_COLUMNS", "ChainState", "LedgerFile", "LedgerIntegrityError", "canonical", "now",
           "tabsynth_version"]

FORMAT = "tabsynth-ledger"
SCHEMA_VERSION = 1
APPLICATION_ID = 0x54535944  # "TSYD" in the SQLite header: marks the file as a tabsynth ledger
COMPOSITION = ("basic composition: the epsilons and the deltas of every counted spend (status reserved, "
               "committed or failed) on a dataset add up, and their sums may not exceed the dataset's budget")
GENESIS = "0" * 64
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
SPEND_COLUMNS = ("id", "dataset_id", "release_id", "time", "mechanism", "params", "epsilon", "delta",
                 "reserved_epsilon", "reserved_delta", "fingerprint", "tabsynth_version", "status",
                 "updated_at", "note")


class LedgerIntegrityError(PrivacyError):
    """The ledger file is corrupted, hand-edited or not a tabsynth ledger."""


@dataclass
class ChainState:
    """What replaying the hash chain yields: meta, budgets, units, spends, the head hash and the event count.

    ``units``: each dataset's privacy unit and person key, recorded in its budget events only (a
    budget event without one, from a ledger written before units existed, is per row)."""

    meta: dict[str, Any] = field(default_factory=dict)
    budgets: dict[str, tuple[float, float, str]] = field(default_factory=dict)
    units: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    spends: dict[int, dict[str, Any]] = field(default_factory=dict)
    head: str = GENESIS
    count: int = 0


def now() -> str:
    """The current UTC time, as every event and spend records it."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def tabsynth_version() -> str:
    """The running tabsynth version ("unknown" while the package is only partly imported)."""
    try:
        from tabsynth.version import __version__
        return __version__
    except Exception:  # noqa: BLE001 - a partially imported package during start-up
        return "unknown"


def _event_hash(seq: int, time_: str, kind: str, dataset_id: str | None, payload: str, prev: str) -> str:
    """The chain hash of one event: its fields and the previous event's hash."""
    blob = json.dumps([seq, time_, kind, dataset_id, payload, prev], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


def canonical(obj: Any) -> str:
    """The one JSON text of ``obj`` that events and the spends table store (sorted keys, no NaN)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


class _Transaction:
    """One SQLite transaction on a verified ledger: yields ``(connection, replayed state)``."""

    def __init__(self, ledger: LedgerFile, write: bool) -> None:
        self.ledger, self.write = ledger, write
        self.conn: sqlite3.Connection | None = None

    def __enter__(self) -> tuple[sqlite3.Connection, ChainState]:
        try:
            self.conn = conn = self.ledger._connect()
            conn.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")
            state = self.ledger._verified_state(conn)
        except sqlite3.Error as exc:
            self._close()
            raise self.ledger._translate(exc) from exc
        except BaseException:
            self._close()
            raise
        return conn, state

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        conn = self.conn
        assert conn is not None, "__exit__ without a successful __enter__"
        try:
            if exc_type is None:
                conn.execute("COMMIT")
            else:
                conn.execute("ROLLBACK")
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


class LedgerFile:
    """The SQLite file ``path`` of a ledger (created when missing unless ``create=False``), checked on open."""

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

    # --- file handling ------------------------------------------------------------------------
    def _integrity_error(self, why: str) -> LedgerIntegrityError:
        """The error for a ledger that cannot be trusted, with what to do (restore, never reset)."""
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
                self._initialise(conn)
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

    def _initialise(self, conn: sqlite3.Connection) -> None:
        """Write the schema, the meta table (with a fresh HMAC key) and the chain's first event."""
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        for stmt in filter(str.strip, _SCHEMA.split(";")):
            conn.execute(stmt)
        key = secrets.token_hex(32)
        meta = {"format": FORMAT, "schema_version": str(SCHEMA_VERSION), "composition": COMPOSITION,
                "created_at": now(), "created_by": f"tabsynth {tabsynth_version()}",
                "integrity": "sha256 hash chain over events, each with a secret nonce; tables are replayed from it",
                "fingerprint_key": key}
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", sorted(meta.items()))
        init = {k: v for k, v in meta.items() if k != "fingerprint_key"}
        init["fingerprint_key_sha256"] = hashlib.sha256(key.encode()).hexdigest()
        self._append(conn, ChainState(), "init", None, init)
        conn.execute("COMMIT")

    def _check_file(self) -> None:
        """Refuse a folder, an unreadable or empty file, or an SQLite file that is not a tabsynth ledger."""
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
        """A new connection that waits up to the busy timeout for another process's lock."""
        conn = sqlite3.connect(str(self.path), timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        return conn

    def _translate(self, exc: sqlite3.Error) -> PrivacyError:
        """An SQLite error as the tabsynth error a user can act on (locked, read-only or corrupted)."""
        text = str(exc).lower()
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return PrivacyError(f"privacy ledger {self.path} stayed locked by another process for "
                                f"{_BUSY_TIMEOUT_S:.0f} s; try again ({exc})")
        if isinstance(exc, sqlite3.OperationalError) and ("readonly" in text or "unable to open" in text):
            return PrivacyError(f"privacy ledger {self.path} cannot be written ({exc}); check its permissions")
        return self._integrity_error(f"SQLite: {exc}")

    def _transaction(self, write: bool) -> _Transaction:
        """A read (``write=False``) or write transaction on the verified ledger."""
        return _Transaction(self, write)

    # --- the hash chain -----------------------------------------------------------------------
    def _append(self, conn: sqlite3.Connection, state: ChainState, kind: str, dataset_id: str | None,
                payload: dict[str, Any]) -> str:
        """Add one event to the chain (and the head and count to meta); returns its hash.

        Each event carries a secret nonce: its hash, quoted in public manifests, then tells nobody
        without the ledger anything about its payload (which holds the plain table fingerprint).
        """
        seq = state.count + 1
        t = payload.get("time") or now()
        body = canonical({**payload, "nonce": secrets.token_hex(16)})
        h = _event_hash(seq, t, kind, dataset_id, body, state.head)
        conn.execute("INSERT INTO events (seq, time, kind, dataset_id, payload, prev_hash, hash) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", (seq, t, kind, dataset_id, body, state.head, h))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('chain_head', ?)", (h,))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('event_count', ?)", (str(seq),))
        state.head, state.count = h, seq
        return h

    def _verified_state(self, conn: sqlite3.Connection) -> ChainState:
        """Check the chain, replay it, and compare with the tables; raise on any difference."""
        fail = self._integrity_error
        state = ChainState()
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
        spends = {r[0]: dict(zip(SPEND_COLUMNS, r)) for r in conn.execute(
            f"SELECT {', '.join(SPEND_COLUMNS)} FROM spends")}
        if spends != state.spends:
            raise fail("the spends table differs from the recorded history")
        return state

    def _replay(self, state: ChainState, seq: int, t: str, kind: str, ds: str | None, p: dict[str, Any]) -> None:
        """Apply event ``seq`` to ``state``; raise on an event the history cannot hold."""
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
                if ds is None:
                    raise fail(f"event {seq} sets a budget for no dataset")
                state.budgets[ds] = (float(p["epsilon"]), float(p["delta"]), t)
                state.units[ds] = self._replay_unit(state, seq, ds, p)
            elif kind == "reserve":
                sid = int(p["id"])
                if sid in state.spends or ds not in state.budgets or (
                        "unit" in p and (p["unit"], p.get("key")) != state.units[ds]):
                    raise fail(f"event {seq} reserves an impossible spend")
                state.spends[sid] = {
                    "id": sid, "dataset_id": ds, "release_id": p["release_id"], "time": t,
                    "mechanism": p["mechanism"], "params": canonical(p["params"]),
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

    def _replay_unit(self, state: ChainState, seq: int, ds: str, p: dict[str, Any]) -> tuple[str, str | None]:
        """The unit a budget event sets; a change of unit under counted spends is impossible history."""
        try:
            unit = check_unit(p.get("unit", "row"), p.get("key"), need_key=True)
        except PrivacyError as exc:
            raise self._integrity_error(f"event {seq} records an impossible privacy unit ({exc})") from exc
        if ds in state.units and unit != state.units[ds] and any(
                s["dataset_id"] == ds and s["status"] != "rolled_back" for s in state.spends.values()):
            raise self._integrity_error(f"event {seq} changes the privacy unit of a dataset with counted spends")
        return unit
