#!/usr/bin/env python
"""TabularAR next to TVAE, short: quality, TSTR ROC AUC and fit CPU seconds, without DP and at epsilon 1.

Adult is 10,000 rows of ``ts.datasets.load("adult")`` scored against ``adult_test``; the other
tables use the suite's seeded 70/30 ``split``. Without DP every model trains ``--epochs`` epochs
(library defaults otherwise); under DP each runs at its DP defaults. TabularAR runs in both
orders (``any``: a random column order per row, the default; ``fixed``: the table's order). One
process per fit, one thread, one JSON line per fit in ``results/ar_quick.jsonl`` (existing lines
are skipped, so a run resumes); ``--merge`` writes ``results/ar_quick.md``.

    PYTHONPATH=. .venv/bin/python benchmarks/ar_quick.py --tables adult german_credit rotterdam
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from _common import run_child, table_rows  # noqa: E402
OUT = HERE / "results" / "ar_quick.jsonl"
TABLE = HERE / "results" / "ar_quick.md"
MODELS = {"tvae": ("TVAE", {}), "tabularar": ("TabularAR", {}), "tabularar-fixed": ("TabularAR", {"order": "fixed"})}


def _split(table: str):
    import tabsynth as ts
    from suite import split

    if table == "adult":
        return ts.datasets.load("adult").sample(10_000, random_state=0).reset_index(drop=True), \
            ts.datasets.load("adult_test")
    return split(table)


def fit_one(table: str, model: str, dp: bool, epochs: int, seed: int) -> dict:
    """Fit, sample and score one model in this process (called in a child process)."""
    import warnings

    import torch

    import suite_scoring as scoring
    import tabsynth as ts
    from suite import scoring_target

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    train, holdout = _split(table)
    name, extra = MODELS[model]
    kw = {"seed": seed, "verbose": False, **extra, **({"epsilon": 1.0} if dp else {"epochs": epochs})}
    start = time.process_time()
    m = getattr(ts, name)(**kw).fit(train)
    fit_s = time.process_time() - start
    synth = m.sample(len(train), seed=seed + 1)
    rec = scoring.score(scoring.as_real(train), scoring.as_real(holdout), scoring.align(synth, train),
                        scoring_target(table), seed)
    return {"table": table, "model": model, "dp": dp, "epochs": m._epochs, "seed": seed,
            "epsilon": float(m.privacy_spent().epsilon), "fit_cpu_s": fit_s,
            **{k: rec[k] for k in ("quality", "tstr_auc") if k in rec}}


def merge() -> None:
    import pandas as pd

    rows = [json.loads(line) for line in OUT.read_text().splitlines() if line.strip()]
    df = pd.DataFrame([r for r in rows if "quality" in r])
    lines = ["# TabularAR next to TVAE (`benchmarks/ar_quick.py`)", "",
             "One seed, one thread. Cells: sdmetrics quality / TSTR ROC AUC / fit CPU seconds. Without DP every "
             "model trains the same epochs; at epsilon 1 each runs at its DP defaults.", ""]
    for dp, part in df.groupby("dp"):
        models = [m for m in MODELS if m in set(part["model"])]
        head = "epsilon 1 (DP defaults)" if dp else f"without DP, {int(part['epochs'].max())} epochs"
        lines += [f"## {head}", "", "| table | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        lines += table_rows(part, "model", models, lambda r: f"{r['quality'].mean():.3f} / "
                            f"{r['tstr_auc'].mean():.3f} / {r['fit_cpu_s'].mean():.0f}")
        lines.append("")
    TABLE.write_text("\n".join(lines) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tables", nargs="+", default=["german_credit", "rotterdam", "adult"])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--modes", nargs="+", default=["plain", "dp"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--merge", action="store_true")
    p.add_argument("--child", nargs=3)
    a = p.parse_args()
    if a.child:
        table, model, mode = a.child
        print(json.dumps(fit_one(table, model, mode == "dp", a.epochs, a.seed)))
        return 0
    if not a.merge:
        have = set()
        if OUT.exists():
            have = {(r["table"], r["model"], r["dp"], r["seed"]) for r in map(json.loads, OUT.read_text().splitlines())}
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        for mode in a.modes:
            for table in a.tables:
                for model in a.models:
                    if (table, model, mode == "dp", a.seed) in have:
                        continue
                    cmd = [sys.executable, __file__, "--epochs", str(a.epochs), "--seed", str(a.seed),
                           "--child", table, model, mode]
                    run_child(cmd, {"table": table, "model": model, "dp": mode == "dp", "seed": a.seed}, OUT, env)
    merge()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
