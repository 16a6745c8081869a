"""A small empirical membership-inference audit (benchmarks/privacy_audit.py has the full one)."""

import importlib.util
from pathlib import Path

import pytest


def _audit_module():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "privacy_audit.py"
    spec = importlib.util.spec_from_file_location("privacy_audit", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tvae", "ctgan", "tabularar"])
def test_canary_audit_lower_bound_stays_below_claimed_epsilon(model):
    audit = _audit_module()
    result = audit.run_audit(runs=4, epsilon=1.0, model=model, rows=300, epochs=1, batch_size=100,
                             synth_rows=1000, seed=0)
    assert result["epsilon_spent_max"] <= 1.0 + 1e-9
    assert result["eps_lb"] <= result["epsilon_spent_max"]
    assert result["passed"] is True


def test_person_canary_combination_is_new_but_each_value_common():
    audit = _audit_module()
    persons, events = audit.person_tables()
    canary, canary_events = audit.canary_person(persons, events, 30)
    match = list(audit.PERSON_MATCH)
    values = [audit.PERSON_CANARY_EVENT[c] for c in match]
    assert audit.person_statistic(events) == 0.0
    assert len(canary) == 1 and canary["id"].iloc[0] not in set(persons["id"])
    assert len(canary_events) == 30 and audit.person_statistic(canary_events) == 1.0
    assert list(canary_events.columns) == list(events.columns)
    assert (canary_events.dtypes == events.dtypes).all()
    # each value alone is held by a large share of persons, above the DP selection threshold
    weight = 1.0 / events.groupby("id")["id"].transform("size")
    for c, v in zip(match, values):
        assert weight[events[c] == v].sum() / len(persons) > 0.4, c


def test_person_audit_scores_held_out_runs():
    audit = _audit_module()
    held, optimistic = audit.score([0.9, 0.8, 0.9, 0.85], [0.1, 0.2, 0.1, 0.3], 1e-5, 0.05)
    assert held["tpr"] == 1.0 and held["fpr"] == 0.0
    assert optimistic["eps_lb"] >= held["eps_lb"] >= 0.0


@pytest.mark.slow
def test_person_canary_audit_lower_bound_stays_below_claimed_epsilon():
    audit = _audit_module()
    result = audit.run_person_audit(runs=2, epsilon=1.0, epochs=1, synth_persons=200, seed=0)
    assert result["epsilon_spent_max"] <= 1.0 + 1e-9
    assert result["eps_lb"] <= result["epsilon_spent_max"]
    assert len(result["stats_in"]) == len(result["stats_out"]) == 2
    assert all(0.0 <= v <= 1.0 for v in result["stats_in"] + result["stats_out"])
