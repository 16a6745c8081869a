#!/usr/bin/env python
"""One suite fit in its own process: fit a method on a training CSV, sample rows, write them and the costs.

Runs under whichever interpreter holds the method (the main venv for tabsynth, ``.venv-engine`` for
MOSTLY AI's engine, ``.venv-sdv`` for SDV), so it imports nothing but the standard library, numpy,
pandas and the method's own package. ``benchmarks/suite.py`` starts it; it is not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _peak_rss_mb() -> float:
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


# --- methods: each returns (sample(n) -> DataFrame, epsilon spent) after fitting ------------------
Fitted = tuple[Callable[[int], pd.DataFrame], float]


def _tabsynth(model: str, dp: bool, **params: Any) -> Callable[[pd.DataFrame, argparse.Namespace], Fitted]:
    def fit(train: pd.DataFrame, a: argparse.Namespace) -> Fitted:
        import tabsynth as ts

        cls = {"ctgan": ts.CTGAN, "tvae": ts.TVAE, "ar": ts.TabularAR}[model]
        kw: dict[str, Any] = {"seed": a.seed, "verbose": False, **params}
        if dp:
            kw.update(epsilon=a.epsilon, delta=a.delta)
        if a.epochs:
            kw["epochs"] = a.epochs
        m = cls(**kw).fit(train)
        spent = float(m.privacy_spent().epsilon)
        return (lambda n: m.sample(n, seed=a.seed + 1)), spent
    return fit


def _engine(dp: bool) -> Callable[[pd.DataFrame, argparse.Namespace], Fitted]:
    def fit(train: pd.DataFrame, a: argparse.Namespace) -> Fitted:
        from mostlyai.engine import TabularARGN
        from mostlyai.engine.domain import DifferentialPrivacyConfig

        work = a.out.parent / "engine-workspace"  # inside the parent's temporary folder
        kw: dict[str, Any] = {"device": "cpu", "random_state": a.seed, "workspace_dir": work, "verbose": 0}
        if dp:  # the engine's max_epsilon is its total; value protection takes its share out of it
            kw["differential_privacy"] = DifferentialPrivacyConfig(
                max_epsilon=a.epsilon, delta=a.delta, value_protection_epsilon=a.epsilon * a.engine_value_share)
        if a.epochs:
            kw["max_epochs"] = a.epochs
        m = TabularARGN(**kw).fit(train)
        return (lambda n: m.sample(n_samples=n)), _engine_epsilon(work) if dp else float("inf")
    return fit


def _engine_epsilon(work: Path) -> float:
    """Epsilon of the engine's kept model: its last checkpoint's (it trains on past the best one)."""
    for p in Path(work).rglob("progress-messages.csv"):
        log = pd.read_csv(p)
        kept = log[(log["is_checkpoint"] == 1) & log["dp_eps"].notna()]
        if len(kept):
            return float(kept["dp_eps"].iloc[-1])
    return float("nan")


def _sdv(model: str) -> Callable[[pd.DataFrame, argparse.Namespace], Fitted]:
    def fit(train: pd.DataFrame, a: argparse.Namespace) -> Fitted:
        discrete = [c for c in train.columns if not pd.api.types.is_numeric_dtype(train[c].dtype)
                    or pd.api.types.is_bool_dtype(train[c].dtype)]
        if model == "gaussian_copula":
            from sdv.metadata import Metadata
            from sdv.single_table import GaussianCopulaSynthesizer

            cols = {c: {"sdtype": "categorical" if c in discrete else "numerical"} for c in train.columns}
            meta = Metadata.load_from_dict({"tables": {"t": {"columns": cols}}})
            np.random.seed(a.seed)
            m = GaussianCopulaSynthesizer(meta)
            m.fit({"t": train})
            return (lambda n: _one_table(m.sample(n))), float("inf")
        import ctgan
        import torch

        torch.manual_seed(a.seed)
        np.random.seed(a.seed)
        cls = ctgan.CTGAN if model == "ctgan" else ctgan.TVAE
        m = cls(epochs=a.epochs) if a.epochs else cls()
        m.fit(train, discrete_columns=discrete)
        return (lambda n: m.sample(n)), float("inf")
    return fit


def _one_table(out: pd.DataFrame | dict[str, pd.DataFrame]) -> pd.DataFrame:
    """SDV 2 returns {table name: frame} where SDV 1 returned the frame."""
    return next(iter(out.values())) if isinstance(out, dict) else out


METHODS: dict[str, Callable[[pd.DataFrame, argparse.Namespace], Fitted]] = {
    "ts-ctgan": _tabsynth("ctgan", dp=False), "ts-tvae": _tabsynth("tvae", dp=False),
    "ts-ctgan-dp": _tabsynth("ctgan", dp=True), "ts-tvae-dp": _tabsynth("tvae", dp=True),
    "ts-ar": _tabsynth("ar", dp=False, order="any"), "ts-ar-dp": _tabsynth("ar", dp=True, order="any"),
    "ts-ar-fixed": _tabsynth("ar", dp=False, order="fixed"), "ts-ar-fixed-dp": _tabsynth("ar", dp=True, order="fixed"),
    "engine": _engine(dp=False), "engine-dp": _engine(dp=True),
    "sdv-gc": _sdv("gaussian_copula"), "sdv-ctgan": _sdv("ctgan"), "sdv-tvae": _sdv("tvae"),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--method", required=True, choices=sorted(METHODS))
    p.add_argument("--train", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="synthetic rows (CSV)")
    p.add_argument("--stats", required=True, type=Path, help="costs and epsilon (JSON)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epsilon", type=float, default=1.0)
    p.add_argument("--delta", type=float, default=1e-5)
    p.add_argument("--engine-value-share", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=None, help="override the method's default (tests only)")
    a = p.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    train = pd.read_csv(a.train, low_memory=False)
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    sample, spent = METHODS[a.method](train, a)
    fit_cpu, fit_wall = _cpu_seconds() - cpu0, time.perf_counter() - t0
    t1 = time.perf_counter()
    synth = sample(len(train))
    sample_wall = time.perf_counter() - t1
    synth.to_csv(a.out, index=False)
    stats = {"fit_cpu_s": fit_cpu, "fit_wall_s": fit_wall, "sample_s": sample_wall,
             "sample_rows_per_s": len(synth) / max(sample_wall, 1e-9), "peak_rss_mb": _peak_rss_mb(),
             "epsilon": None if spent == float("inf") else spent, "python": sys.version.split()[0]}
    a.stats.write_text(json.dumps(stats, allow_nan=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
