#!/usr/bin/env python
"""The benchmark methods, and one fit in its own process: fit a method, sample, write rows and costs.

Every method is defined once here (``METHODS``): the venv it runs in, whether it is DP, the kind of
table it fits (``single``, or ``pair``: a person table and its event table) and its fit function
(the peers' two-table fits are in ``peers.py``). ``harness.py``
reads the registry and starts this file as a child under the method's interpreter (the main venv
for tabsynth, ``.venv-engine`` for MOSTLY AI's engine, ``.venv-sdv`` for SDV), so it imports nothing
but the standard library, numpy, pandas and the method's own package.

The child reads one CSV per table from ``--data`` (``table.csv`` for a single table), writes the
synthetic tables under the same names to ``--out`` and its costs to ``--stats``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np
import pandas as pd
import peers


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _peak_rss_mb() -> float:
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


# --- methods: each fits and returns (sample(n) -> DataFrame, epsilon spent) ----------------------
#: epsilon spent: a float, or a dict with "epsilon" (the total) and its parts for the stats
Fitted = tuple[Callable[[int], Any], float | dict[str, Any]]
Fit = Callable[[Any, argparse.Namespace], Fitted]


@dataclass(frozen=True)
class Method:
    """A benchmark method: its venv (None: the project's), DP or not, its table kind, its fit."""

    venv: str | None
    dp: bool
    fit: Fit
    kind: str = "single"


def _tabsynth(model: str, dp: bool, **params: Any) -> Method:
    def fit(train: pd.DataFrame, a: argparse.Namespace) -> Fitted:
        import tabsynth as ts

        cls = {"ctgan": ts.CTGAN, "tvae": ts.TVAE, "ar": ts.TabularAR}[model]
        kw: dict[str, Any] = {"seed": a.seed, "verbose": False, **params, **a.params}
        if dp:
            kw.update(epsilon=a.epsilon, delta=a.delta)
        if a.epochs:
            kw["epochs"] = a.epochs
        if "steps" in kw:  # at least this many steps, on batches of batch_share of the rows
            batch = max(1, min(len(train), math.ceil(kw.pop("batch_share", 1.0) * len(train))))
            kw.update(batch_size=batch, epochs=max(1, math.ceil(kw.pop("steps") / math.ceil(len(train) / batch))))
        m = cls(**kw).fit(train)
        spent = float(m.privacy_spent().epsilon)
        return (lambda n: m.sample(n, seed=a.seed + 1)), spent
    return Method(None, dp, fit)


def _engine(dp: bool) -> Method:
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
        return (lambda n: m.sample(n_samples=n)), peers.engine_epsilon(work) if dp else float("inf")
    return Method(".venv-engine", dp, fit)


def _sdv(model: str) -> Method:
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
    return Method(".venv-sdv", False, fit)


def _one_table(out: pd.DataFrame | dict[str, pd.DataFrame]) -> pd.DataFrame:
    """SDV 2 returns {table name: frame} where SDV 1 returned the frame."""
    return next(iter(out.values())) if isinstance(out, dict) else out


def _tabsynth_pair(dp: bool = False) -> Method:
    def fit(train: dict[str, pd.DataFrame], a: argparse.Namespace) -> Fitted:
        import tabsynth as ts

        kw: dict[str, Any] = {"seed": a.seed, "verbose": False, **a.params}
        if dp:  # per person over both tables; delta at its default unless the mode sets one
            kw.update(epsilon=a.epsilon, **({"delta": a.delta_pair} if a.delta_pair else {}))
        if a.epochs:
            kw["epochs"] = a.epochs
        m = ts.TabularAR(**kw).fit(train["events"], subjects=train["subjects"], key=a.key, order_by=a.order_by)

        def sample(n: int) -> dict[str, pd.DataFrame]:
            subjects, events = m.sample(n_subjects=n, seed=a.seed + 1)
            return {"subjects": subjects, "events": events}
        if not dp:
            return sample, float("inf")
        spent = m.privacy_spent()
        return sample, {"epsilon": float(spent.epsilon), "delta": float(spent.delta), "unit": spent.unit,
                        **{f"epsilon_{name}": float(part.epsilon) for name, part in spent.parts.items()}}
    return Method(None, dp, fit, kind="pair")


METHODS: dict[str, Method] = {
    "ts-ctgan": _tabsynth("ctgan", dp=False), "ts-tvae": _tabsynth("tvae", dp=False),
    "ts-ctgan-dp": _tabsynth("ctgan", dp=True), "ts-tvae-dp": _tabsynth("tvae", dp=True),
    "ts-ar": _tabsynth("ar", dp=False, order="any"), "ts-ar-dp": _tabsynth("ar", dp=True, order="any"),
    "ts-ar-fixed": _tabsynth("ar", dp=False, order="fixed"), "ts-ar-fixed-dp": _tabsynth("ar", dp=True, order="fixed"),
    "engine": _engine(dp=False), "engine-dp": _engine(dp=True),
    "sdv-gc": _sdv("gaussian_copula"), "sdv-ctgan": _sdv("ctgan"), "sdv-tvae": _sdv("tvae"),
    "ts-ar-seq": _tabsynth_pair(), "engine-seq": Method(".venv-engine", False, peers.engine_pair, kind="pair"),
    "sdv-par": Method(".venv-sdv", False, peers.sdv_par, kind="pair"),
    "ts-ar-seq-dp": _tabsynth_pair(dp=True),
    "engine-seq-dp": Method(".venv-engine", True, functools.partial(peers.engine_pair, dp=True), kind="pair"),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", required=True, choices=sorted(METHODS))
    p.add_argument("--data", required=True, type=Path, help="folder of training CSVs, one per table")
    p.add_argument("--out", required=True, type=Path, help="folder for the synthetic CSVs")
    p.add_argument("--stats", required=True, type=Path, help="costs and epsilon (JSON)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--options", default="{}", help="JSON: epsilon, delta, epochs, params, engine_value_share; "
                   "for a pair: key, order_by, min_subjects (persons sampled: as many as trained on, at least this), "
                   "delta_pair (our DP pair's delta; its default when unset), engine_person_share (the engine's "
                   "person model's share of epsilon, the events model getting the rest)")
    a = p.parse_args(argv)
    opts = {"epsilon": 1.0, "delta": 1e-5, "epochs": None, "params": {}, "engine_value_share": 0.1,
            "key": None, "order_by": None, "min_subjects": 0, "delta_pair": None, "engine_person_share": 0.3,
            **json.loads(a.options)}
    vars(a).update(opts)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    method = METHODS[a.method]
    train = {f.stem: pd.read_csv(f, low_memory=False) for f in sorted(a.data.glob("*.csv"))}
    single = method.kind == "single"
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    sample, spent = method.fit(train["table"] if single else train, a)
    fit_cpu, fit_wall = _cpu_seconds() - cpu0, time.perf_counter() - t0
    t1 = time.perf_counter()
    synth = sample(len(train["table"]) if single else max(len(train["subjects"]), a.min_subjects))
    sample_wall = time.perf_counter() - t1
    synth = {"table": synth} if single else synth
    a.out.mkdir(parents=True, exist_ok=True)
    for name, frame in synth.items():
        frame.to_csv(a.out / f"{name}.csv", index=False)
    rows = sum(len(f) for f in synth.values())
    stats = {"fit_cpu_s": fit_cpu, "fit_wall_s": fit_wall, "sample_s": sample_wall,
             "sample_rows_per_s": rows / max(sample_wall, 1e-9), "peak_rss_mb": _peak_rss_mb(),
             "python": sys.version.split()[0]}
    if isinstance(spent, dict):
        stats.update(spent)
    else:
        stats["epsilon"] = None if spent == float("inf") else spent
    a.stats.write_text(json.dumps(stats, allow_nan=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
