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
