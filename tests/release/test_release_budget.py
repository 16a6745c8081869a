"""A release's default delta, the budget given at the first release, and what the budget error says."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from tabsynth.cli import main
from tabsynth.errors import ConfigError, PrivacyBudgetExceeded, PrivacyConfigError, PrivacyError
from tabsynth.privacy.ledger import Budget, Ledger
from tabsynth.release import release
from tabsynth.release.core import default_release_delta

COLUMNS = ["age", "workclass", "sex", "hours-per-week", "income"]


@pytest.fixture(scope="module")
def small(adult) -> pd.DataFrame:
    return adult.sample(300, random_state=3).reset_index(drop=True)[COLUMNS]


def _release(df, ledger, out, **kwargs):
    return release(df, 0.4, ledger, out, dataset_id="ds", epochs=1, batch_size=100, seed=0, report=False, **kwargs)


def test_default_delta_is_the_budgets_share_and_never_depends_on_the_rows():
    # it is published in the manifest: a function of the ledger alone (docs/privacy.md rule 3)
    assert default_release_delta(Budget(1.0, 1e-5), 0.4) == pytest.approx(4e-6)
    assert default_release_delta(Budget(0.5, 1e-5), 2.0) == pytest.approx(1e-5)
    assert default_release_delta(Budget(1.0, 1e-3), 1.0) == pytest.approx(1e-5)  # at most 1e-5
    with pytest.raises(PrivacyConfigError, match="delta above 0"):
        default_release_delta(Budget(1.0, 0.0), 0.4)


def test_four_concurrent_releases_of_0_4_in_a_budget_of_1_two_succeed(small, tmp_path):
    db = tmp_path / "budget.db"
    Ledger(db).set_budget("ds", 1.0, 1e-5)

    def one(i):
        try:
            return _release(small, str(db), tmp_path / f"rel{i}")
        except PrivacyBudgetExceeded as exc:
            return exc

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4)))
    done = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(done) == 2 and len(refused) == 2
    assert all(r.privacy.delta <= 4e-6 * (1 + 1e-9) for r in done)
    for exc in refused:
        text = str(exc)
        assert "epsilon 0.4 asked" in text and "delta" not in text.split("What would fit")[0].split("left")[-1]
        assert "What would fit: epsilon <= 0.2 with delta <= 2e-06" in text
    assert [s.delta for s in Ledger(db).history("ds")] == pytest.approx([4e-6, 4e-6])


def test_the_first_release_creates_the_ledger_from_its_budget(small, tmp_path):
    db = tmp_path / "new.db"
    with pytest.raises(PrivacyError, match="no ledger file"):
        _release(small, db, tmp_path / "r0")
    assert not db.exists()
    r = _release(small, db, tmp_path / "r1", budget=(1.0, 1e-5))
    assert Ledger(db).budget("ds") == Budget(1.0, 1e-5) and 0.6 <= r.remaining.epsilon < 0.61
    with pytest.raises(ConfigError, match="already has a budget"):
        _release(small, db, tmp_path / "r2", budget=(2.0, 1e-5))


@pytest.mark.parametrize("flags", [["--epsilon", "-1"], ["--epsilon", "1", "--delta", "0.5"],
                                   ["--epsilon", "1", "--rows", "0"]])
def test_a_bad_release_writes_no_ledger(small, tmp_path, capsys, flags):
    data, db = tmp_path / "data.csv", tmp_path / "budget.db"
    small.to_csv(data, index=False)
    rc = main(["release", str(data), "--ledger", str(db), "--dataset-id", "ds", "-o", str(tmp_path / "rel"),
               "--budget-epsilon", "1", "--budget-delta", "1e-5", *flags])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and not db.exists()


@pytest.mark.parametrize("quiet", [[], ["-q"]])
def test_a_release_prints_its_privacy_once(small, tmp_path, capsys, quiet):
    data = tmp_path / "data.csv"
    small.to_csv(data, index=False)
    rc = main(["release", str(data), "--epsilon", "0.5", "--ledger", str(tmp_path / "b.db"), "--dataset-id", "ds",
               "-o", str(tmp_path / "rel"), "--budget-epsilon", "1", "--budget-delta", "1e-5", "--epochs", "1",
               "--no-report", *quiet])
    out = capsys.readouterr().out
    assert rc == 0 and out.count("differential privacy (") == 1 and "created a new privacy ledger" in out
