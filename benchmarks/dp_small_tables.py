"""How small a table DP can serve: DP CTGAN and DP TVAE at epsilon 1 on 300 to 10,000 rows of Adult.

For each size, fits with the library's DP defaults and records what survives in the synthetic
rows: the categories kept per categorical column (against the real sample), the share of the
target's minority class and sdmetrics' quality score (one seed per size). Writes
``results/dp_small_tables.{json,md}``. Run: ``.venv/bin/python benchmarks/dp_small_tables.py``.
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from _common import RESULTS, environment, set_threads


def _measure(real: pd.DataFrame, syn: pd.DataFrame, meta, target: str) -> dict:
    from sdmetrics.reports.single_table import QualityReport

    cats = meta.names_of_kind("categorical") + meta.names_of_kind("boolean")
    kept = {c: [int(syn[c].nunique()), int(real[c].nunique())] for c in cats}
    minority = real[target].value_counts().idxmin()
    sdv_meta = {"columns": {c: {"sdtype": "categorical" if c in cats else "numerical"} for c in real.columns}}
    q = QualityReport()
    q.generate(real, syn, sdv_meta, verbose=False)
    return {"categories_kept": kept, "minority_share": [float((syn[target] == minority).mean()),
                                                        float((real[target] == minority).mean())],
            "quality": float(q.get_score())}


def main() -> None:
    import tabsynth as ts

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[300, 1000, 3000, 10000])
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--models", nargs="+", default=["ctgan", "tvae"])
    args = ap.parse_args()
    set_threads(1)
    adult = ts.datasets.load("adult")
    rows = []
    for n in args.sizes:
        real = adult.sample(n, random_state=0).reset_index(drop=True)
        meta = ts.Metadata.detect(real)
        for name in args.models:
            cls = {"ctgan": ts.CTGAN, "tvae": ts.TVAE}[name]
            t0 = time.perf_counter()
            try:
                model = cls(epsilon=args.epsilon, seed=0, verbose=False).fit(real, metadata=meta)
            except ts.errors.TabsynthError as exc:
                rows.append({"rows": n, "model": name, "error": str(exc)})
                continue
            syn = model.sample(n, seed=1)
            row = {"rows": n, "model": name, "seconds": time.perf_counter() - t0,
                   **_measure(real, syn, meta, "income")}
            rows.append(row)
            print(json.dumps(row), flush=True)
    (RESULTS / "dp_small_tables.json").write_text(json.dumps({"env": environment(), "epsilon": args.epsilon,
                                                              "rows": rows}, indent=1))
    lines = [f"# DP at epsilon {args.epsilon:g} on small samples of Adult", "",
             "| rows | model | quality | income >50K share (syn / real) | categories kept (syn / real) |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['rows']} | {r['model']} | fails: {r['error'][:80]} | | |")
            continue
        kept = ", ".join(f"{c} {a}/{b}" for c, (a, b) in r["categories_kept"].items())
        lines.append(f"| {r['rows']} | {r['model']} | {r['quality']:.3f} | {r['minority_share'][0]:.2f} / "
                     f"{r['minority_share'][1]:.2f} | {kept} |")
    (RESULTS / "dp_small_tables.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
