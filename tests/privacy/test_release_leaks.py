"""What a release publishes beside the synthetic data, tried as an attacker who holds the public
manifests, the code and every row but one: the ledger anchor, the delta check, and Opacus' notices
(docs/privacy.md rules 3, 16 and 17)."""

import hashlib
import json
import sqlite3
import warnings

import numpy as np
import pandas as pd
import pytest

import tabsynth as ts
from tabsynth.errors import PrivacyConfigError, PrivacyWarning
from tabsynth.privacy.ledger import Ledger
from tabsynth.release import fingerprint_table, release


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 240
    return pd.DataFrame({"x": rng.normal(50, 9, n).round(1), "c": rng.choice(["a", "b", "c"], n)})


# --- the ledger anchor in public manifests ---------------------------------------------------------
def _event_hash(seq, time_, kind, dataset_id, payload, prev) -> str:
    """The chain hash as the published code computes it (the attacker has the code)."""
    blob = json.dumps([seq, time_, kind, dataset_id, payload, prev], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _attacker_payloads(first: dict, second: dict, folder: str, guess: pd.DataFrame, stamps: list[str]):
    """The commit event of the first release and the reservation of the second, rebuilt from the two
    public manifests, the first bundle's folder name and a guessed table."""
    commit = {"time": stamps[0], "id": first["ledger"]["reservation_id"], "note": f"bundle written to {folder}",
              **first["budget"]["this_release"]}
    reserve = {"time": stamps[1], "id": second["ledger"]["reservation_id"], "release_id": second["release_id"],
               "mechanism": f"{second['model']['class'].rsplit('.', 1)[-1]} DP-SGD (tabsynth)",
               "params": {"model": second["model"]["name"], "n_rows": None, **second["model"]["settings"]},
               **second["budget"]["reserved"], "fingerprint": fingerprint_table(guess),
               "tabsynth_version": second["versions"]["tabsynth"]}
    return commit, reserve


def _attack(first: dict, second: dict, folder: str, guess: pd.DataFrame, seqs: list[int], stamps: list[str]):
    """The second manifest's anchor recomputed from the first's: equal only if the guess is the table."""
    commit, reserve = _attacker_payloads(first, second, folder, guess, stamps)
    dataset = first["dataset_id"]
    h = _event_hash(seqs[0], stamps[0], "commit", dataset, _canonical(commit), first["ledger"]["reserved_at_event"])
    return _event_hash(seqs[1], stamps[1], "reserve", dataset, _canonical(reserve), h)


def test_two_public_manifests_do_not_let_a_guessed_table_be_tested(table, tmp_path):
    ledger = Ledger(tmp_path / "budget.db")
    ledger.set_budget("d", 2.0, 1e-4)
    kw = dict(dataset_id="d", epochs=1, batch_size=1000, seed=0, report=False, embedding_dim=8, hidden=(8,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        first = release(table, 0.5, ledger, tmp_path / "first", **kw).manifest
        second = release(table, 0.5, ledger, tmp_path / "second", **kw).manifest
    published = second["ledger"]["reserved_at_event"]
    # What the attacker searches offline: the sequence numbers (small integers) and two microsecond
    # stamps about 1 s and 0.02 s after the manifests' second-resolution ones (about 2^41 pairs);
    # the test hands over the true ones.
    with sqlite3.connect(tmp_path / "budget.db") as conn:
        events = conn.execute("SELECT seq, time, kind, payload FROM events ORDER BY seq").fetchall()
    (s1, t1, _, p1), (s2, t2, _, p2) = [e for e in events if (e[2], json.loads(e[3]).get("id")) in (
        ("commit", first["ledger"]["reservation_id"]), ("reserve", second["ledger"]["reservation_id"]))]
    # every field the attacker can rebuild is rebuilt right: only what the ledger keeps secret is missing
    commit, reserve = _attacker_payloads(first, second, "first", table, [t1, t2])
    assert commit.items() <= json.loads(p1).items() and reserve.items() <= json.loads(p2).items()
    guesses = {"D": table, "D minus one row": table.drop(index=17)}
    recomputed = {name: _attack(first, second, "first", df, [s1, s2], [t1, t2]) for name, df in guesses.items()}
    assert recomputed["D"] != published and recomputed["D minus one row"] != published
    public = json.dumps(first) + json.dumps(second)
    assert all(fingerprint_table(df) not in public for df in guesses.values())


# --- the delta of a release ------------------------------------------------------------------------
@pytest.mark.parametrize("delta", [1 / 601, 1 / 600, 2e-5])
def test_a_release_delta_is_refused_or_accepted_whatever_the_exact_row_count(table, tmp_path, delta):
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"x": rng.normal(size=601), "c": rng.choice(["a", "b"], 601)})
    outcomes = []
    for name, df in {"D": d, "D minus one row": d.drop(index=3)}.items():
        ledger = Ledger(tmp_path / f"{name}.db")
        ledger.set_budget("d", 2.0, 1e-3)
        with pytest.raises(PrivacyConfigError) as caught:
            release(df, 0.5, ledger, tmp_path / name, dataset_id="d", delta=delta, report=False)
        message = str(caught.value)
        assert not any(str(n) in message for n in (600, 601)), message
        assert ledger.history() == []  # refused before anything was reserved
        outcomes.append(message)
    assert outcomes[0] == outcomes[1]


def test_a_release_delta_under_the_cap_is_accepted_on_both_neighbours(table, tmp_path):
    for name, df in {"D": table, "D minus one row": table.drop(index=3)}.items():
        ledger = Ledger(tmp_path / f"{name}.db")
        ledger.set_budget("d", 2.0, 1e-3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PrivacyWarning)
            r = release(df, 0.5, ledger, tmp_path / name, dataset_id="d", delta=1e-5, epochs=1, batch_size=1000,
                        report=False, embedding_dim=8, hidden=(8,))
        assert r.privacy.delta <= 1e-5 and ledger.history()[0].reserved_delta == 1e-5


# --- Opacus' notices --------------------------------------------------------------------------------
def test_a_dp_tabularar_fit_prints_no_optimal_order_notice(recwarn):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=100), "c": rng.choice(["a", "b"], 100)})
    # 220 full-batch steps: sigma's search probes noise levels whose best Renyi order is the smallest
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        model = ts.TabularAR(epsilon=8.0, epochs=220, batch_size=1000, seed=0, verbose=False, device="cpu",
                             embedding_dim=4, hidden=(4,)).fit(df)
    assert model.privacy_spent().parts["training"].details["steps"] == 220
    assert [str(w.message) for w in recwarn if "Optimal order" in str(w.message)] == []
