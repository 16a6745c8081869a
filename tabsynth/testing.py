"""The model-family contract as a check anyone can run: ``check_synthesizer(MyFamily)``.

Every registered family passes it (the test suite runs it over the registry); a third-party family
runs it in its own tests. It fits small tables for one or two epochs, so it takes seconds. Each
check is one sentence of the contract; a failure names every check that failed and why.
"""

from __future__ import annotations

import inspect
import io
import math
import pickle
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabsynth.errors import InvalidConditionError, ModelFileError, NotFittedError
from tabsynth.models.persistence import load
from tabsynth.models.registry import MODELS

#: Constructor arguments every family takes, after its own hyperparameters.
SHARED_PARAMS = ("seed", "verbose", "epsilon", "delta", "max_grad_norm", "dp")


def contract_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """A small table of every common kind, with missing values in a number and a category."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "income": rng.lognormal(10, 0.5, n).round(2),
        "city": rng.choice(["Oslo", "Lima", "Pune", "Kyiv"], n, p=[0.4, 0.3, 0.2, 0.1]),
        "smoker": rng.choice([True, False], n),
        "visit": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
    })
    df.loc[rng.choice(n, n // 10, replace=False), "income"] = np.nan
    df.loc[rng.choice(n, n // 20, replace=False), "city"] = None
    return df


class _Contract:
    """The checks, sharing one plain and one DP fit of the family."""

    def __init__(self, cls: type, params: dict[str, Any]) -> None:
        self.cls, self.params = cls, {"seed": 0, "verbose": False, **params}
        self.table = contract_table()
        self._fitted: Any = None

    def make(self, **extra: Any) -> Any:
        return self.cls(**{**self.params, **extra})

    @property
    def fitted(self) -> Any:
        if self._fitted is None:
            self._fitted = self.make()
            assert self._fitted.fit(self.table) is self._fitted, "fit must return self"
        return self._fitted

    def check_registered(self) -> None:
        assert self.cls in MODELS.values(), ("declare the family in one line: an entry point of the group "
                                             "'tabsynth.families', or register('NAME', cls)")

    def check_constructor_stores_parameters(self) -> None:
        names = [p for p in inspect.signature(self.cls).parameters if p != "self"]
        missing = [p for p in SHARED_PARAMS if p not in names]
        assert not missing, f"the constructor must take {', '.join(missing)}"
        model = self.make()
        assert list(model.get_params(deep=False)) == names, "get_params must list every constructor argument"
        assert not [a for a in vars(model) if a.endswith("_")], "the constructor must not set fitted attributes"

    def check_clone(self) -> None:
        from sklearn.base import clone

        model = self.make()
        assert clone(model).get_params(deep=False) == model.get_params(deep=False)
        assert model.set_params(seed=5) is model and model.seed == 5

    def check_unfitted_refuses_to_sample(self) -> None:
        try:
            self.make().sample(3)
        except NotFittedError:
            return
        raise AssertionError("sample before fit must raise NotFittedError")

    def check_sample_schema(self) -> None:
        syn = self.fitted.sample(200, seed=1)
        assert list(syn.columns) == list(self.table.columns) and len(syn) == 200
        assert syn.dtypes.equals(self.table.dtypes), f"dtypes {dict(syn.dtypes)} differ from the table's"
        assert set(syn["city"].dropna()) <= set(self.table["city"].dropna()), "a category never seen"
        assert syn["smoker"].notna().all() and syn["age"].notna().all(), "missing values where the table has none"
        assert self.fitted.sample(0).empty

    def check_seeds(self) -> None:
        pd.testing.assert_frame_equal(self.fitted.sample(50, seed=2), self.fitted.sample(50, seed=2))
        again = self.make().fit(self.table).sample(50, seed=2)
        pd.testing.assert_frame_equal(again, self.fitted.sample(50, seed=2))

    def check_conditions(self) -> None:
        syn = self.fitted.sample(100, seed=3, conditions={"city": "Kyiv", "smoker": True})
        assert len(syn) == 100 and (syn["city"] == "Kyiv").all() and syn["smoker"].all()
        try:
            self.fitted.sample(5, conditions={"city": "Atlantis"})
        except InvalidConditionError:
            return
        raise AssertionError("a condition the model cannot meet must raise InvalidConditionError")

    def check_save_load(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = self.fitted.save(Path(tmp) / "m.tsyn")
            with zipfile.ZipFile(path) as zf:
                raw = zf.read("weights.pt")
            again = load(path)
            pd.testing.assert_frame_equal(again.sample(50, seed=4), self.fitted.sample(50, seed=4))
            evil = Path(tmp) / "evil.tsyn"
            with zipfile.ZipFile(path) as src, zipfile.ZipFile(evil, "w") as dst:
                dst.writestr("config.json", src.read("config.json"))
                dst.writestr("weights.pt", pickle.dumps({"w": object()}))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    load(evil)
            except ModelFileError:
                pass
            else:
                raise AssertionError("a model file holding a pickled object must be refused")
        assert raw and io.BytesIO(raw).read(2) == b"PK", "weights must be saved as torch tensors"

    def check_dp_contract(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = self.make(epsilon=2.0, delta=1e-5).fit(self.table)
            syn = model.sample(100, seed=1)
        spent = model.privacy_spent()
        assert spent.is_dp and spent.epsilon <= 2.0 + 1e-6 and spent.delta <= 1e-5, str(spent)
        assert "training" in spent.parts or "preprocessing" in spent.parts, "the statement names its parts"
        assert list(syn.columns) == list(self.table.columns)
        assert model.n_rows_ != len(self.table) or "preprocessing" in spent.parts, "n_rows_ is the noisy count"
        assert math.isfinite(spent.epsilon)


def check_synthesizer(cls: type, params: dict[str, Any] | None = None) -> None:
    """Run the family contract on ``cls`` (with ``params`` for small, fast fits); raise
    ``AssertionError`` naming every check that failed."""
    contract = _Contract(cls, params or {})
    checks: list[tuple[str, Callable[[], None]]] = [
        (name, getattr(contract, name)) for name in sorted(vars(_Contract)) if name.startswith("check_")]
    failed = []
    for name, check in checks:
        try:
            check()
        except Exception as exc:  # every failure is reported, not only the first
            failed.append(f"{name[len('check_'):]}: {type(exc).__name__}: {exc}")
    if failed:
        raise AssertionError(f"{cls.__name__} breaks the family contract:\n  " + "\n  ".join(failed))
