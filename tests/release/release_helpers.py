"""Test doubles for release tests (a module, so that spawned children can import them)."""

from __future__ import annotations

import time

import pandas as pd

from tabsynth.privacy import PrivacyPart, PrivacySpent
from tabsynth.privacy.config import DPConfig


class FakeDP:
    """Stands in for a DP model: 'spends' 90% of its epsilon; samples real rows back (tests only!)."""

    fits = 0

    def __init__(self, epochs: int = 1, seed: int | None = None, verbose: bool = False, epsilon: float | None = None,
                 delta: float | None = None, max_grad_norm: float = 1.0, fail: bool = False, sleep: float = 0.0,
                 private: bool = True, overspend: bool = False, dp: DPConfig | None = None) -> None:
        self.epochs, self.seed, self.verbose, self.epsilon, self.delta = epochs, seed, verbose, epsilon, delta
        self.max_grad_norm, self.fail, self.sleep, self.private, self.overspend = max_grad_norm, fail, sleep, private, \
            overspend
        self.dp = dp

    def dp_config(self) -> DPConfig | None:
        if self.epsilon is None and self.dp is None:
            return None
        return DPConfig(epsilon=self.epsilon, delta=self.delta,
                        max_delta=self.dp.max_delta if self.dp is not None else None)

    def set_params(self, **params) -> "FakeDP":
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def get_params(self, deep: bool = True) -> dict:
        return {"epochs": self.epochs, "seed": self.seed, "verbose": self.verbose, "epsilon": self.epsilon,
                "delta": self.delta, "max_grad_norm": self.max_grad_norm}

    def _validate_params(self) -> None:
        pass

    def fit(self, df: pd.DataFrame, metadata=None) -> "FakeDP":
        type(self).fits += 1
        if self.sleep:
            time.sleep(self.sleep)
        if self.fail:
            raise RuntimeError("training diverged")
        self._df = df.copy()
        self.n_rows_ = len(df)  # a real DP model holds its noisy row count here
        return self

    def privacy_spent(self) -> PrivacySpent:
        if not self.private:
            return PrivacySpent.none()
        eps = self.epsilon * (1.5 if self.overspend else 0.9)
        delta = self.delta if self.delta is not None else self.dp_config().max_delta  # what a release reserved
        return PrivacySpent(epsilon=eps, delta=delta, accountant="test",
                            parts={"training": PrivacyPart("training", eps, delta, "fake DP-SGD",
                                                           {"steps": 3})})

    def sample(self, n: int, seed: int | None = None) -> pd.DataFrame:
        return self._df.sample(n, replace=True, random_state=seed or 0).reset_index(drop=True)


def release_then_hang(ledger_path: str, out: str, data_path: str) -> None:
    """Child body: a release whose training hangs until the parent SIGKILLs it."""
    import tabsynth.release.core as core
    from tabsynth.release import release

    core.model_class = lambda name: FakeDP
    release(data_path, 0.6, ledger_path, out, dataset_id="ds", sleep=120.0, report=False)
