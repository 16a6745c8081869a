#!/usr/bin/env python
"""Time to draw rows under rare conditions with the any-order TabularAR, against drawing them freely.

Fits ``TabularAR`` (its non-DP defaults: any order, early stopping) on the first ``--rows`` rows of
Adult, then times ``sample(n)`` without conditions, under one rare category, and under two and three
columns whose combination one training row holds (each the rarest such combination). Every
conditioned draw must honour its conditions on every row with ``max_tries=1`` (no rejection).
One thread; each draw timed ``--repeats`` times, the median kept. Writes
``benchmarks/results/conditional_speed.{md,json}``.

    .venv/bin/python benchmarks/conditional_speed.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import pandas as pd  # noqa: E402

import tabsynth as ts  # noqa: E402
from _common import environment, set_threads  # noqa: E402

OUT = HERE / "results"


def held_by_one(df: pd.DataFrame, columns: list[str]) -> dict[str, object]:
    """A combination of ``columns`` that exactly one row of ``df`` holds."""
    counts = df.groupby(columns, observed=True).size()
    key = counts[counts == 1].index[0]
    return dict(zip(columns, key if isinstance(key, tuple) else (key,)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000, help="training rows of Adult (default 10,000)")
    p.add_argument("--n", type=int, default=10_000, help="rows drawn per sample call (default 10,000)")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    set_threads(1)
    df = ts.datasets.load("adult").head(a.rows)
    t0 = time.process_time()
    model = ts.TabularAR(seed=0, verbose=False).fit(df)
    fit_cpu = time.process_time() - t0
    cases = {
        "none": {},
        "one rare category (native-country)": held_by_one(df, ["native-country"]),
        "two columns held by one row": held_by_one(df, ["occupation", "native-country"]),
        "three columns held by one row": held_by_one(df, ["workclass", "occupation", "native-country"]),
    }
    rows = []
    for name, cond in cases.items():
        times = []
        for r in range(a.repeats):
            t = time.perf_counter()
            syn = model.sample(a.n, seed=r, conditions=cond or None, max_tries=1)
            times.append(time.perf_counter() - t)
            assert len(syn) == a.n, (name, len(syn))
            for col, value in cond.items():
                assert (syn[col] == value).all(), (name, col)
        rows.append({"case": name, "conditions": {k: str(v) for k, v in cond.items()},
                     "seconds": statistics.median(times), "rows_honouring": a.n})
    base = rows[0]["seconds"]
    lines = ["# Drawing rows under rare conditions (`benchmarks/conditional_speed.py`)", "",
             f"TabularAR (any order, defaults) fitted on {a.rows:,} Adult rows in {fit_cpu:.0f} CPU s "
             f"({len(model.loss_history_)} epochs); {a.n:,} rows per call, one thread, median of "
             f"{a.repeats}. Every conditioned row honours its conditions, `max_tries=1` (no rejection).", "",
             "| conditions | values | seconds | vs none |", "|---|---|---|---|"]
    for r in rows:
        vals = ", ".join(f"{k}={v}" for k, v in r["conditions"].items()) or "-"
        lines.append(f"| {r['case']} | {vals} | {r['seconds']:.2f} | {r['seconds'] / base:.2f}x |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "conditional_speed.md").write_text("\n".join(lines) + "\n")
    (OUT / "conditional_speed.json").write_text(json.dumps(
        {"rows": rows, "fit_cpu_s": fit_cpu, "epochs": len(model.loss_history_), "environment": environment()},
        indent=2, default=str) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
