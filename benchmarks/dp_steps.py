#!/usr/bin/env python
"""How many DP-SGD steps a DP fit should take: quality and TSTR against the step count, per table.

At a fixed epsilon the noise per step grows with the number of steps, while a model needs some
number of steps to learn at all; the library's old DP defaults (10 epochs) gave a 2,000-row table
20 TVAE steps. This runs DP CTGAN and DP TVAE at epsilon 1 (library defaults otherwise) on the
suite's tables and splits (``suite.py``), with ``--steps`` targets turned into epochs for each
table (and ``STEPS:Q`` targets also cap the expected batch at ``Q`` of the rows), and scores them
as the suite does. One process per fit, one thread, one JSON line per fit
in ``results/dp_steps.jsonl`` (existing lines are skipped, so a run resumes); ``--merge`` writes
``results/dp_steps.md``.

    .venv/bin/python benchmarks/dp_steps.py --tables german_credit rotterdam --steps 0 150:0.1 400:0.1
    .venv/bin/python benchmarks/dp_steps.py --merge

``--steps 0`` is the library's default for the table (whatever rule the checkout applies); the rows
labelled ``0:before`` were the defaults before the step rule and the per-statistic preprocessing
(10 epochs; 0.2 / 0.3 preprocessing / marginal shares).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from _common import run_child, table_rows  # noqa: E402
OUT = HERE / "results" / "dp_steps.jsonl"
TABLE = HERE / "results" / "dp_steps.md"
BATCH = {"ctgan": 500, "tvae": 2000}  # the families' DP default expected batches


def fit_one(table: str, model: str, steps: str, seed: int, epsilon: float) -> dict:
    """Fit, sample and score one DP model in this process (called in a child process)."""
    import warnings

    import torch

    import suite_scoring as scoring
    import tabsynth as ts
    from suite import scoring_target, split

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    train, holdout = split(table)
    kw = {"epsilon": epsilon, "seed": seed, "verbose": False}
    target, _, q = steps.partition(":")
    if int(target) and q != "before":
        batch = min(BATCH[model], len(train), math.ceil(float(q) * len(train)) if q else len(train))
        kw["batch_size"] = batch
        kw["epochs"] = max(1, math.ceil(int(target) / math.ceil(len(train) / batch)))
    cls = ts.CTGAN if model == "ctgan" else ts.TVAE
    start = time.process_time()
    m = cls(**kw).fit(train)
    fit_s = time.process_time() - start
    synth = m.sample(len(train), seed=seed + 1)
    target = scoring_target(table)
    real_tr, real_ho = scoring.as_real(train), scoring.as_real(holdout)
    rec = scoring.score(real_tr, real_ho, scoring.align(synth, train), target, seed)
    training = m.privacy_spent().parts["training"].details
    return {"table": table, "model": model, "steps_target": steps, "seed": seed, "epochs": training["epochs"],
            "batch": training["expected_batch_size"],
            "steps": training["steps"], "noise_multiplier": training["noise_multiplier"],
            "epsilon": float(m.privacy_spent().epsilon), "fit_cpu_s": fit_s,
            **{k: rec[k] for k in ("quality", "tstr_auc") if k in rec}}


def done() -> set[tuple]:
    if not OUT.exists():
        return set()
    rows = [json.loads(line) for line in OUT.read_text().splitlines() if line.strip()]
    return {(r["table"], r["model"], r["steps_target"], r["seed"]) for r in rows}


def merge() -> None:
    import pandas as pd

    rows = [json.loads(line) for line in OUT.read_text().splitlines() if line.strip()]
    df = pd.DataFrame([r for r in rows if "quality" in r])
    lines = ["# DP steps (`benchmarks/dp_steps.py`)", "",
             "DP fits at epsilon 1 on the suite's splits; `target` 0 is the library default. Cells: quality / "
             "TSTR ROC AUC (steps taken, noise multiplier), mean over seeds. `S:Q`: at least S steps, expected batch "
             "at most Q of the rows.", ""]
    for model, part in df.groupby("model"):
        targets = sorted(part["steps_target"].unique(), key=lambda t: (int(t.split(":")[0]), t))
        lines += [f"## {model}", "", "| table | " + " | ".join(f"target {t}" for t in targets) + " |",
                  "|---|" + "---|" * len(targets)]
        lines += table_rows(part, "steps_target", targets, lambda r: f"{r['quality'].mean():.3f} / "
                            f"{r['tstr_auc'].mean():.3f} ({int(r['steps'].mean())}, {r['noise_multiplier'].mean():.2g})")
        means = [part[part["steps_target"] == t] for t in targets]
        lines.append("| **mean (tables)** | " + " | ".join(
            f"{m['quality'].mean():.3f} / {m['tstr_auc'].mean():.3f} ({m['table'].nunique()})" if not m.empty else "-"
            for m in means) + " |")
        lines.append("")
    TABLE.write_text("\n".join(lines) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tables", nargs="+", default=["german_credit", "rotterdam", "credit_data", "yrbss"])
    p.add_argument("--models", nargs="+", default=["tvae", "ctgan"])
    p.add_argument("--steps", nargs="+", default=["0", "150:0.1", "400:0.1", "400:0.03"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epsilon", type=float, default=1.0)
    p.add_argument("--merge", action="store_true")
    p.add_argument("--child", nargs=4)
    a = p.parse_args()
    if a.child:
        table, model, steps, seed = a.child
        print(json.dumps(fit_one(table, model, steps, int(seed), a.epsilon)))
        return 0
    if not a.merge:
        have = done()
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        for seed in a.seeds:
            for table in a.tables:
                for model in a.models:
                    for steps in a.steps:
                        if (table, model, steps, seed) in have:
                            continue
                        cmd = [sys.executable, __file__, "--epsilon", str(a.epsilon),
                               "--child", table, model, str(steps), str(seed)]
                        run_child(cmd, {"table": table, "model": model, "steps_target": steps, "seed": seed},
                                  OUT, env)
    merge()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
