"""A persistent privacy-budget ledger: one SQLite file, shared safely by concurrent processes.

>>> ledger = Ledger("budget.db")
>>> ledger.set_budget("adult-2026", epsilon=3.0, delta=1e-5)   # per row; unit="person", key="id": per person
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
* **One unit per dataset.** A budget is recorded with its privacy unit (``"row"``, or
  ``"person"`` with the person key column: :mod:`tabsynth.privacy.unit`), and a reservation with
  another unit is refused, since spends per row and per person do not add up. A ledger written
  before units existed reads as per row.
* **Integrity.** Every change is an event in an append-only SHA-256 hash chain (each event hashes
  its content and the previous event's hash). Every transaction re-verifies the chain, replays it
  and compares the result with the ``budgets`` and ``spends`` tables; ``PRAGMA integrity_check``
  runs on open. A corrupted, truncated or hand-edited file is refused with
  :class:`~tabsynth.errors.PrivacyError`; the ledger is never silently reset. (The chain has no
  secret key: it catches corruption and hand edits, not a forger who recomputes every hash. Each
  release manifest records its ledger event hash as an outside anchor.)
* **Nothing to test a table against.** A reservation records the plain SHA-256 of the source
  table, so every event also holds a secret random nonce kept only in the ledger: an event hash
  quoted in a public manifest cannot be recomputed from guessed contents (docs/privacy.md rule 17).

Amounts are added as decimals of their shortest ``repr`` so that e.g. 0.1 + 0.2 fits a 0.3 budget
exactly; no float tolerance is ever granted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from tabsynth.errors import PrivacyBudgetExceeded, PrivacyConfigError, PrivacyError
from tabsynth.privacy.config import check_delta, check_epsilon
from tabsynth.privacy.ledger_store import (
    COMPOSITION,
    SPEND_COLUMNS,
    ChainState,
    LedgerFile,
    LedgerIntegrityError,
    canonical,
    now,
    tabsynth_version,
)
from tabsynth.privacy.unit import check_unit, unit_change, unit_label, unit_mismatch

__all__ = ["Budget", "Ledger", "LedgerIntegrityError", "Spend", "COMPOSITION"]

COUNTED = ("reserved", "committed", "failed")
STATUSES = COUNTED + ("rolled_back",)


@dataclass(frozen=True)
class Budget:
    """An (epsilon, delta) pair: a dataset's total, spent or remaining budget, per ``unit`` ("row" or "person")."""

    epsilon: float
    delta: float
    unit: str = "row"
    key: str | None = None

    def __iter__(self) -> Iterator[float]:  # so ``eps, delta = ledger.remaining(...)`` works
        return iter((self.epsilon, self.delta))

    def __str__(self) -> str:
        text = f"epsilon={self.epsilon:.6g}, delta={self.delta:.6g}"
        return text if self.unit == "row" else f"{text} {unit_label(self.unit, self.key)}"


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


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def _check_text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PrivacyConfigError(f"{name} must be a non-empty string, got {value!r}")
    return value


class Ledger(LedgerFile):
    """The privacy-budget ledger stored in the SQLite file ``path`` (created when missing).

    ``create=False`` refuses a missing file instead of creating an empty ledger (for read-only
    tools, where a typo should not create a new ledger). Objects are cheap and picklable: every
    call opens its own connection, so one ledger file can be used from many processes at once.
    """

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    # --- reading ------------------------------------------------------------------------------
    @staticmethod
    def _spent(state: ChainState, dataset_id: str) -> tuple[Decimal, Decimal]:
        eps = delta = Decimal(0)
        for s in state.spends.values():
            if s["dataset_id"] == dataset_id and s["status"] in COUNTED:
                eps += _dec(s["epsilon"])
                delta += _dec(s["delta"])
        return eps, delta

    @staticmethod
    def _counted(state: ChainState, dataset_id: str) -> int:
        """How many spends on ``dataset_id`` count (reserved, committed or failed)."""
        return sum(1 for s in state.spends.values() if s["dataset_id"] == dataset_id and s["status"] in COUNTED)

    def _remaining(self, state: ChainState, dataset_id: str) -> tuple[Decimal, Decimal]:
        if dataset_id not in state.budgets:
            raise PrivacyBudgetExceeded(
                f"dataset {dataset_id!r} has no privacy budget in ledger {self.path}; set one first with "
                f"Ledger(...).set_budget({dataset_id!r}, epsilon, delta) (CLI: --budget-epsilon/--budget-delta)")
        eps_b, delta_b, _ = state.budgets[dataset_id]
        eps_s, delta_s = self._spent(state, dataset_id)
        return _dec(eps_b) - eps_s, _dec(delta_b) - delta_s

    @staticmethod
    def _budget(state: ChainState, dataset_id: str, eps: Any, delta: Any) -> Budget:
        """``(eps, delta)`` as a :class:`Budget` in the unit of ``dataset_id``."""
        return Budget(float(eps), float(delta), *state.units.get(dataset_id, ("row", None)))

    def datasets(self) -> dict[str, Budget]:
        """Every dataset id with its total budget (and its privacy unit)."""
        with self._transaction(write=False) as (_, state):
            return {k: self._budget(state, k, v[0], v[1]) for k, v in sorted(state.budgets.items())}

    def budget(self, dataset_id: str) -> Budget:
        """The total budget of ``dataset_id``, with its privacy unit (``.unit``, ``.key``)."""
        with self._transaction(write=False) as (_, state):
            self._remaining(state, dataset_id)
            eps, delta, _ = state.budgets[dataset_id]
            return self._budget(state, dataset_id, eps, delta)

    def spent(self, dataset_id: str) -> Budget:
        """The counted spend (reserved, committed and failed) on ``dataset_id``, by basic composition."""
        with self._transaction(write=False) as (_, state):
            self._remaining(state, dataset_id)
            return self._budget(state, dataset_id, *self._spent(state, dataset_id))

    def remaining(self, dataset_id: str) -> Budget:
        """What ``dataset_id`` can still spend; raises :class:`PrivacyBudgetExceeded` if it has no budget."""
        with self._transaction(write=False) as (_, state):
            return self._budget(state, dataset_id, *self._remaining(state, dataset_id))

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
    def set_budget(self, dataset_id: str, epsilon: float, delta: float, *, unit: str | None = None,
                   key: str | None = None, only_if_new: bool = False) -> Budget:
        """Set (or change) the total budget of ``dataset_id``; returns the budget now in force.

        ``unit``: the privacy unit, "row" or "person" (``key``: the person key column); None keeps the
        dataset's ("row" when new); it cannot change under counted spends. With ``only_if_new=True`` an
        existing budget is kept and returned unchanged (atomically, so concurrent first releases
        agree). A new total below what is already spent is refused.
        """
        _check_text(dataset_id, "dataset_id")
        epsilon, delta = check_epsilon(epsilon, "budget epsilon"), check_delta(delta, "budget delta")
        if unit is not None or key is not None:
            unit, key = check_unit(unit, key, need_key=True)
        with self._transaction(write=True) as (conn, state):
            if dataset_id in state.budgets:
                if only_if_new:
                    eps, dlt, _ = state.budgets[dataset_id]
                    return self._budget(state, dataset_id, eps, dlt)
                have = state.units[dataset_id]
                if unit is not None and (unit, key) != have and self._counted(state, dataset_id):
                    raise unit_change(dataset_id, have, (unit, key), self._counted(state, dataset_id))
                eps_s, delta_s = self._spent(state, dataset_id)
                if _dec(epsilon) < eps_s or _dec(delta) < delta_s:
                    raise PrivacyConfigError(
                        f"dataset {dataset_id!r} has already spent epsilon={float(eps_s):.6g}, "
                        f"delta={float(delta_s):.6g}; a budget of epsilon={epsilon:.6g}, delta={delta:.6g} is below "
                        "that. Spent privacy cannot be taken back.")
            if unit is None:
                unit, key = state.units.get(dataset_id, ("row", None))
            t = now()
            payload = {"time": t, "epsilon": epsilon, "delta": delta, "unit": unit, **({"key": key} if key else {})}
            self._append(conn, state, "budget", dataset_id, payload)
            conn.execute("INSERT OR REPLACE INTO budgets (dataset_id, epsilon, delta, set_at) VALUES (?, ?, ?, ?)",
                         (dataset_id, epsilon, delta, t))
            return Budget(epsilon, delta, unit, key)

    def reserve(self, dataset_id: str, epsilon: float, delta: float, release_id: str, mechanism: str,
                params: dict[str, Any] | None, fingerprint: str, *, unit: str = "row", key: str | None = None) -> int:
        """Reserve (epsilon, delta) for a release in one transaction; returns the reservation id.

        ``unit``/``key``: the release's privacy unit, which must be the dataset's. Raises
        :class:`PrivacyBudgetExceeded` (with the numbers) when it does not fit in the remaining
        budget or the dataset has no budget, :class:`PrivacyConfigError` for another unit, an
        epsilon <= 0 or a delta outside [0, 1). Nothing is recorded when it raises.
        """
        _check_text(dataset_id, "dataset_id")
        unit, key = check_unit(unit, key, need_key=True)
        epsilon, delta = check_epsilon(epsilon), check_delta(delta)
        _check_text(release_id, "release_id")
        _check_text(mechanism, "mechanism")
        _check_text(fingerprint, "fingerprint")
        params = dict(params or {})
        try:
            params = json.loads(canonical(params))
        except (TypeError, ValueError) as exc:
            raise PrivacyConfigError(f"params must be JSON-serialisable (no NaN), got {params!r} ({exc})") from exc
        with self._transaction(write=True) as (conn, state):
            eps_r, delta_r = self._remaining(state, dataset_id)
            if state.units[dataset_id] != (unit, key):
                raise unit_mismatch(dataset_id, state.units[dataset_id], (unit, key))
            if _dec(epsilon) > eps_r or _dec(delta) > delta_r:
                eps_b, delta_b, _ = state.budgets[dataset_id]
                what = []
                if _dec(epsilon) > eps_r:
                    what.append(f"epsilon {epsilon:.6g} asked, {float(eps_r):.6g} of {eps_b:.6g} left")
                if _dec(delta) > delta_r:
                    what.append(f"delta {delta:.6g} asked, {float(delta_r):.6g} of {delta_b:.6g} left")
                counted = self._counted(state, dataset_id)
                raise PrivacyBudgetExceeded(
                    f"dataset {dataset_id!r}: the release does not fit in its privacy budget ({'; '.join(what)}; "
                    f"basic composition over {counted} counted spends). Nothing was spent. What would fit: "
                    f"epsilon <= {max(float(eps_r), 0.0):.6g} with delta <= {max(float(delta_r), 0.0):.3g}; ask "
                    "for that much or less, or have the custodian decide on the budget.")
            sid = max(state.spends, default=0) + 1
            t = now()
            payload = {"time": t, "id": sid, "release_id": release_id, "mechanism": mechanism, "params": params,
                       "epsilon": epsilon, "delta": delta, "fingerprint": fingerprint,
                       "tabsynth_version": tabsynth_version(), "unit": unit, **({"key": key} if key else {})}
            self._append(conn, state, "reserve", dataset_id, payload)
            conn.execute(
                f"INSERT INTO spends ({', '.join(SPEND_COLUMNS)}) VALUES ({', '.join('?' * len(SPEND_COLUMNS))})",
                (sid, dataset_id, release_id, t, mechanism, canonical(params), epsilon, delta, epsilon, delta,
                 fingerprint, tabsynth_version(), "reserved", t, None))
            return sid

    def _open_spend(self, state: ChainState, reservation: Any, any_status: bool = False) -> dict[str, Any]:
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
            t = now()
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
