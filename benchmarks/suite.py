#!/usr/bin/env python
"""The real-table suite: every method at its defaults on ten bundled tables, scored the same way.

Each table is split 70/30 with a fixed seed (adult: ``adult_train`` / ``adult_test``). Each method is
fitted on train at its own defaults, in a process of its own (``suite_worker.py``) with one torch /
BLAS thread and a time limit, and samples ``len(train)`` rows. The parent scores them
(``suite_scoring.py``): sdmetrics quality (and all-pairs), TSTR ROC AUC next to train-on-real, DCR
share against the holdout, validity; the worker measures fit CPU seconds, sample rows per second,
peak RSS and the epsilon spent.

Methods: ``ts-ctgan``, ``ts-tvae``, ``ts-ar`` (tabsynth's CTGAN, TVAE and TabularAR, non-DP),
``ts-ctgan-dp``, ``ts-tvae-dp``, ``ts-ar-dp`` (epsilon 1, delta 1e-5, the whole pipeline),
``ts-ar`` / ``ts-ar-dp`` train TabularAR on random column orders (``order="any"``, its non-DP
default), ``ts-ar-fixed`` / ``ts-ar-fixed-dp`` on the table's column order (its DP default),
``engine`` / ``engine-dp`` (MOSTLY AI's ``mostlyai-engine`` TabularARGN at its defaults; DP with ``max_epsilon`` 1, of which ``value_protection_epsilon`` 0.1,
delta 1e-5; its validation split is not covered by that budget), ``sdv-gc``, ``sdv-ctgan``,
``sdv-tvae`` (SDV's GaussianCopula and ``ctgan`` package, Business Source License: benchmark-only).
Peers run in their own venvs, created by ``make bench-setup`` (``.venv-engine``, ``.venv-sdv``).

Every run writes one JSON part to ``benchmarks/results/suite_parts/`` (``TABLE__METHOD__sSEED.json``,
with status ``ok``, ``failed`` or ``timeout``); parts that exist are skipped (``--force`` redoes
them), so an interrupted run resumes. ``--merge`` (also done after every run) writes
``benchmarks/results/suite.md``: per score, a row per table and a mean row, a column per method,
mean over seeds with the range ``[min, max]`` when there are several.

    .venv/bin/python benchmarks/suite.py --tables german_credit rotterdam --methods ts-ctgan engine
    .venv/bin/python benchmarks/suite.py --seeds 0 1 2 --time-limit 3600
    .venv/bin/python benchmarks/suite.py --merge
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]  # this checkout's tabsynth, not an installed one

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import suite_scoring as scoring  # noqa: E402
from _common import environment  # noqa: E402
from suite_merge import TABLES, merge  # noqa: E402

VENVS = {"ts": None, "engine": ".venv-engine", "sdv": ".venv-sdv"}
METHODS = {"ts-ctgan": "ts", "ts-tvae": "ts", "ts-ar": "ts", "ts-ar-fixed": "ts",
           "ts-ctgan-dp": "ts", "ts-tvae-dp": "ts", "ts-ar-dp": "ts", "ts-ar-fixed-dp": "ts",
           "engine": "engine", "engine-dp": "engine", "sdv-gc": "sdv", "sdv-ctgan": "sdv", "sdv-tvae": "sdv"}
RESULTS = Path(os.environ.get("SUITE_RESULTS", HERE / "results"))  # smoke runs point it elsewhere
PARTS = RESULTS / "suite_parts"
OUT = RESULTS / "suite.md"
SPLIT_SEED = 0
TEST_SHARE = 0.3


def split(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) of a bundled table: adult's own test file, else a seeded 70/30 split."""
    import tabsynth as ts

    if name == "adult":
        return ts.datasets.load("adult_train"), ts.datasets.load("adult_test")
    df = ts.datasets.load(name)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(df))
    n_test = int(round(TEST_SHARE * len(df)))
    return (df.iloc[order[n_test:]].reset_index(drop=True), df.iloc[order[:n_test]].reset_index(drop=True))


def python_for(method: str) -> str:
    venv = VENVS[METHODS[method]]
    if venv is None:
        return sys.executable
    exe = ROOT / venv / "bin" / "python"
    if not exe.exists():
        raise SystemExit(f"{exe} not found: create the peers' venvs with `make bench-setup`")
    return str(exe)


def part_path(table: str, method: str, seed: int) -> Path:
    return PARTS / f"{table}__{method}__s{seed}.json"


def run_one(table: str, method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Fit, sample and score one (table, method, seed); the part's record, whatever happened."""
    train, holdout = split(table)
    target = scoring_target(table)
    rec: dict[str, Any] = {"table": table, "method": method, "seed": seed, "rows_train": len(train),
                           "rows_holdout": len(holdout), "target": target, "time_limit_s": args.time_limit,
                           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="suite-") as tmp:
        tmpd = Path(tmp)
        train.to_csv(tmpd / "train.csv", index=False)
        cmd = [python_for(method), str(HERE / "suite_worker.py"), "--method", method, "--seed", str(seed),
               "--train", str(tmpd / "train.csv"), "--out", str(tmpd / "synth.csv"),
               "--stats", str(tmpd / "stats.json"), "--epsilon", str(args.epsilon), "--delta", str(args.delta)]
        if args.epochs:
            cmd += ["--epochs", str(args.epochs)]
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.time_limit)
        except subprocess.TimeoutExpired:
            return {**rec, "status": "timeout"}
        if proc.returncode != 0:
            return {**rec, "status": "failed", "returncode": proc.returncode, "error": proc.stderr[-3000:]}
        rec.update(json.loads((tmpd / "stats.json").read_text()))
        synth = pd.read_csv(tmpd / "synth.csv", low_memory=False)
    real_tr, real_ho = scoring.as_real(train), scoring.as_real(holdout)
    try:
        rec.update(scoring.score(real_tr, real_ho, scoring.align(synth, train), target, seed))
    except Exception as exc:  # noqa: BLE001 - a part records why scoring failed, the run goes on
        return {**rec, "status": "failed", "error": f"scoring: {type(exc).__name__}: {exc}"}
    rec["trtr_auc"] = scoring.tstr_auc(real_tr, real_tr, real_ho, target, seed)
    rec["rows_synthetic"] = len(synth)
    rec["status"] = "ok"
    return rec


def scoring_target(table: str) -> str:
    import tabsynth as ts

    return ts.datasets.TARGETS[table]


def write_part(rec: dict[str, Any]) -> Path:
    PARTS.mkdir(parents=True, exist_ok=True)
    p = part_path(rec["table"], rec["method"], rec["seed"])
    clean = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in rec.items()}
    p.write_text(json.dumps(clean, indent=1, sort_keys=True) + "\n")
    return p


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tables", nargs="+", default=TABLES, choices=TABLES)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--time-limit", type=float, default=3600.0, help="seconds per fit (default 3600)")
    p.add_argument("--epsilon", type=float, default=1.0)
    p.add_argument("--delta", type=float, default=1e-5)
    p.add_argument("--epochs", type=int, default=None, help="override every method's epochs (smoke runs only)")
    p.add_argument("--force", action="store_true", help="redo runs whose part exists")
    p.add_argument("--merge", action="store_true", help="only merge the parts into suite.md")
    args = p.parse_args(argv)
    if not args.merge:
        env = environment()
        for seed in args.seeds:
            for table in args.tables:
                for method in args.methods:
                    if part_path(table, method, seed).exists() and not args.force:
                        continue
                    print(f"[{time.strftime('%H:%M:%S')}] {table} {method} seed {seed}", flush=True)
                    rec = run_one(table, method, seed, args)
                    rec["environment"] = env
                    print(f"  -> {write_part(rec).name}: {rec['status']}", flush=True)
    text = merge(PARTS)
    OUT.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
