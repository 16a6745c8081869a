"""Report demo: evaluate() on bundled Adult with a column-shuffled 'synthetic' table.

Writes benchmarks/results/report_demo.html and .json and prints the time taken. The synthetic
table shuffles every column independently: the column shapes are perfect, the relationships
between columns are gone, so fidelity (pair trends, discriminator) and utility must drop.

    python benchmarks/report_demo.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import tabsynth as ts
from tabsynth.report import evaluate

OUT = Path(__file__).resolve().parent / "results"


def shuffled_columns(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: rng.permutation(df[c].to_numpy()) for c in df.columns})


def main() -> int:
    real = ts.datasets.load("adult")
    holdout = ts.datasets.load("adult_test")
    synthetic = shuffled_columns(real)
    t0 = time.perf_counter()
    report = evaluate(real, synthetic, holdout=holdout, target="income", profile="finance",
                      title="Adult: column-shuffled synthetic table (demo)")
    seconds = time.perf_counter() - t0
    OUT.mkdir(parents=True, exist_ok=True)
    report.to_html(OUT / "report_demo.html")
    report.to_json(OUT / "report_demo.json")
    d = report.to_dict()
    print(f"evaluate() on Adult ({len(real):,} real, {len(synthetic):,} synthetic, {len(holdout):,} holdout rows): "
          f"{seconds:.1f} s (fidelity {d['fidelity']['seconds']:.1f} s, utility {d['utility']['seconds']:.1f} s, "
          f"privacy {d['privacy']['seconds']:.1f} s)")
    print("scores:", {k: None if v is None else round(v, 3) for k, v in report.scores.items()})
    print("verdicts:", report.verdicts)
    print(f"wrote {OUT / 'report_demo.html'} and {OUT / 'report_demo.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
