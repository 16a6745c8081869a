#!/usr/bin/env python
"""Do TabularAR's numbers come back exactly? Per numeric column of a few real tables, before/after.

Fits a short non-DP ``TabularAR`` (``--epochs``, one thread, seeds 0, 1 and 2) on each whole table,
samples as many rows, and records per numeric column: the share of synthetic values that are among the real
values, the distinct values of each side, the share of rows holding the column's most frequent real
value on each side, and sdmetrics' ``KSComplement`` (its column-shape score for numbers); per table
the mean column shape over all columns (``TVComplement`` for the others) and the fit CPU; all means
over the seeds.

One run measures the checkout it lives in and writes JSON; ``--render`` puts two runs side by side::

    .venv/bin/python benchmarks/exact_values.py --json /tmp/before.json   # in a checkout of the old code
    .venv/bin/python benchmarks/exact_values.py --json /tmp/after.json
    .venv/bin/python benchmarks/exact_values.py --render /tmp/before.json /tmp/after.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from _common import environment, set_threads  # noqa: E402

OUT = HERE / "results" / "exact_values.md"
TABLES = ("nmes1988", "rotterdam", "flchain", "credit_data")


def decimals(values: np.ndarray) -> int | None:
    """Fewest decimals (0-8) that write 99.9% of the values exactly, measured here (not by tabsynth)."""
    for d in range(9):
        if np.mean(np.round(values, d) == values) >= 0.999:
            return d
    return None


def column_stats(real: pd.Series, syn: pd.Series) -> dict[str, float]:
    from sdmetrics.single_column import KSComplement

    r, s = real.dropna().astype(float), syn.dropna().astype(float)
    top, d = r.value_counts().index[0], decimals(r.to_numpy())
    at = float(np.mean(np.round(s.to_numpy(), d) == s.to_numpy())) if d is not None and len(s) else float("nan")
    return {"real_distinct": int(r.nunique()), "syn_distinct": int(s.nunique()), "decimals": d, "at_precision": at,
            "in_real": float(s.isin(set(r.tolist())).mean()) if len(s) else float("nan"),
            "top_value": float(top), "top_real": float((r == top).mean()), "top_syn": float((s == top).mean()),
            "ks": float(KSComplement.compute(r, s))}


def shape(real: pd.Series, syn: pd.Series, numeric: bool) -> float:
    from sdmetrics.single_column import KSComplement, TVComplement

    if numeric:
        return float(KSComplement.compute(real.dropna().astype(float), syn.dropna().astype(float)))
    return float(TVComplement.compute(real.astype(str), syn.astype(str)))


def fit_and_sample(name: str, epochs: int, seed: int) -> dict:
    import tabsynth as ts

    df = ts.datasets.load(name)
    md = ts.Metadata.detect(df)
    t0 = time.process_time()
    model = ts.TabularAR(epochs=epochs, seed=seed, verbose=False).fit(df, md)
    fit_cpu = time.process_time() - t0
    syn = model.sample(len(df), seed=seed)
    numeric = [c for c, s in md.columns.items() if s.kind in ("numerical", "integer")]
    modelled = [c for c, s in md.columns.items() if s.kind not in ("id", "pii")]
    shapes = [shape(df[c], syn[c], c in numeric) for c in modelled]
    return {"table": name, "rows": len(df), "fit_cpu_s": fit_cpu, "column_shapes": float(np.mean(shapes)),
            "columns": {c: {"dtype": str(df[c].dtype), **column_stats(df[c], syn[c])} for c in numeric}}


def measure(name: str, epochs: int, seeds: list[int]) -> dict:
    """One fit per seed; every number is the mean over the seeds."""
    runs = [fit_and_sample(name, epochs, seed) for seed in seeds]

    def mean(values: list) -> object:
        numbers = isinstance(values[0], (int, float)) and not isinstance(values[0], bool)
        return float(np.mean(values)) if numbers else values[0]

    out = {k: mean([r[k] for r in runs]) for k in ("table", "rows", "fit_cpu_s", "column_shapes")}
    out["columns"] = {c: {k: mean([r["columns"][c][k] for r in runs]) for k in stats}
                      for c, stats in runs[0]["columns"].items()}
    return {**out, "seeds": seeds}


def render(before: dict, after: dict) -> str:
    commits = f"before {before['env'].get('git_commit')}, after {after['env'].get('git_commit')}"
    lines = ["# Exact values: TabularAR's numbers before and after the exact-value encoding", "",
             f"Short non-DP fits (`epochs={after['epochs']}`, one thread) on each whole table, as many rows sampled; "
             f"every number is the mean over seeds {after['tables'][0]['seeds']}. Per numeric column: `in real`, the "
             "share of synthetic values that are among the real values; `at dec.`, the share of synthetic values "
             "written exactly at the real column's decimals `d` (the fewest writing 99.9% of the real values; `-`: "
             "none up to 8); `distinct`, distinct values (real / before / after); `top`, the share of rows holding "
             "the column's most frequent real value (real / before / after); `KS`, sdmetrics KSComplement. "
             f"Written by `benchmarks/exact_values.py`; commits: {commits}.", "",
             "| table | column shapes, all columns | mean KS, numeric | mean in real | mean at dec. | fit CPU s |",
             "|---|---|---|---|---|---|"]
    for tb, ta in zip(before["tables"], after["tables"]):
        def avg(t: dict, key: str) -> float:
            return float(np.nanmean([c[key] for c in t["columns"].values()]))

        lines.append(f"| {ta['table']} | {tb['column_shapes']:.3f} -> {ta['column_shapes']:.3f} | "
                     f"{avg(tb, 'ks'):.3f} -> {avg(ta, 'ks'):.3f} | {avg(tb, 'in_real'):.3f} -> {avg(ta, 'in_real'):.3f} | "
                     f"{avg(tb, 'at_precision'):.3f} -> {avg(ta, 'at_precision'):.3f} | "
                     f"{tb['fit_cpu_s']:.0f} -> {ta['fit_cpu_s']:.0f} |")
    for tb, ta in zip(before["tables"], after["tables"]):
        lines += ["", f"## {ta['table']} ({ta['rows']:.0f} rows)", "",
                  "| column | dtype | in real | d | at dec. | distinct (real / before / after) | top value "
                  "| top (real / before / after) | KS |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for col, a in ta["columns"].items():
            b = tb["columns"][col]
            dec = "-" if a["decimals"] is None else int(a["decimals"])
            lines.append(f"| {col} | {a['dtype']} | {b['in_real']:.3f} -> {a['in_real']:.3f} | {dec} | "
                         f"{b['at_precision']:.3f} -> {a['at_precision']:.3f} | "
                         f"{a['real_distinct']:.0f} / {b['syn_distinct']:.0f} / {a['syn_distinct']:.0f} | "
                         f"{a['top_value']:g} | {a['top_real']:.3f} / {b['top_syn']:.3f} / {a['top_syn']:.3f} | "
                         f"{b['ks']:.3f} -> {a['ks']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", nargs="+", default=list(TABLES))
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one fit per seed; means reported")
    p.add_argument("--json", type=Path, help="write this checkout's measurements here")
    p.add_argument("--commit", help="the commit measured, where the checkout is not a git repository")
    p.add_argument("--render", nargs=2, type=Path, metavar=("BEFORE", "AFTER"),
                   help=f"write two runs side by side to {OUT.relative_to(HERE.parent)}")
    a = p.parse_args()
    if a.render:
        before, after = (json.loads(path.read_text()) for path in a.render)
        OUT.write_text(render(before, after))
        print(OUT.read_text())
        return 0
    set_threads(1)
    warnings.simplefilter("ignore")
    tables = []
    for name in a.tables:
        tables.append(measure(name, a.epochs, a.seeds))
        print(json.dumps(tables[-1]), flush=True)
    if a.json:
        env = environment()
        env["git_commit"] = a.commit or env.get("git_commit")
        a.json.write_text(json.dumps({"epochs": a.epochs, "env": env, "tables": tables}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
