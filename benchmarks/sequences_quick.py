#!/usr/bin/env python
"""TabularAR's two-table mode on the five bundled person + event tables: a quick quality check.

Per table: fit at defaults (or ``--epochs``) on all persons, sample as many persons as the real
table has, and compare: events per person (mean, median, p90, max, share with none), per-column
shapes of the event table (1 - KS statistic for numbers, 1 - total variation for categories),
per-person means of the numeric event columns (1 - KS), the sequence column's order within every
person, and fit CPU seconds (one thread). One JSON line per table in
``results/sequences_quick.jsonl``; ``--merge`` writes ``results/sequences_quick.md``.

    PYTHONPATH=. .venv/bin/python benchmarks/sequences_quick.py --tables pbcseq headache
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]
OUT = HERE / "results" / "sequences_quick.jsonl"
TABLE = HERE / "results" / "sequences_quick.md"


def _ks(a: pd.Series, b: pd.Series) -> float:
    a, b = np.sort(a.dropna().to_numpy(float)), np.sort(b.dropna().to_numpy(float))
    if not len(a) or not len(b):
        return float(len(a) == len(b))
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return 1.0 - float(np.abs(fa - fb).max())


def _tv(a: pd.Series, b: pd.Series) -> float:
    pa = a.astype(str).value_counts(normalize=True)
    pb = b.astype(str).value_counts(normalize=True)
    return 1.0 - 0.5 * float(pa.subtract(pb, fill_value=0).abs().sum())


def _shape(a: pd.Series, b: pd.Series) -> float:
    numeric = pd.api.types.is_numeric_dtype(a) and a.nunique() > 10
    return _ks(a, b) if numeric else _tv(a, b)


def _counts(events: pd.DataFrame, persons: pd.DataFrame, key: str) -> pd.Series:
    return events.groupby(key).size().reindex(persons[key], fill_value=0)


def score(real: tuple, syn: tuple, key: str, order_by: str | None) -> dict:
    (rp, re), (sp, se) = real, syn
    rc, sc = _counts(re, rp, key), _counts(se, sp, key)
    out = {f"events_{k}": [float(f(rc)), float(f(sc))] for k, f in
           (("mean", np.mean), ("median", np.median), ("p90", lambda c: np.quantile(c, 0.9)), ("max", np.max),
            ("none", lambda c: (c == 0).mean()))}
    cols = [c for c in re.columns if c != key]
    out["event_shapes"] = float(np.mean([_shape(re[c], se[c]) for c in cols]))
    out["person_shapes"] = float(np.mean([_shape(rp[c], sp[c]) for c in rp.columns if c != key])) \
        if rp.shape[1] > 1 else None
    numeric = [c for c in cols if pd.api.types.is_numeric_dtype(re[c])]
    rm, sm = re.groupby(key)[numeric].mean(), se.groupby(key)[numeric].mean()
    out["person_means"] = float(np.mean([_ks(rm[c], sm[c]) for c in numeric])) if numeric else None
    out["count_shape"] = _ks(rc, sc)
    if order_by is not None:
        diffs = se.groupby(key, sort=False)[order_by].apply(lambda s: s.is_monotonic_increasing)
        out["order_held"] = float(diffs.mean()) if len(diffs) else 1.0
    return out


def run(name: str, epochs: int | None) -> dict:
    import torch

    import tabsynth as ts

    torch.set_num_threads(1)
    pair = ts.datasets.load(name)
    model = ts.TabularAR(seed=0, verbose=False, epochs=epochs)
    start = time.process_time()
    model.fit(pair.events, subjects=pair.subjects, key=pair.key, order_by=pair.order_by)
    fit_cpu = time.process_time() - start
    syn = model.sample(n_subjects=len(pair.subjects), seed=1)
    tables = model.two_tables_
    return {"table": name, "epochs": epochs or "default", "events_epochs": len(model.loss_history_),
            "fit_cpu_s": round(fit_cpu, 1), "cap": tables.cap, "cut_events": tables.cut_events_,
            **score((pair.subjects, pair.events), tuple(syn), pair.key, pair.order_by)}


def merge() -> None:
    rows = [json.loads(line) for line in OUT.read_text().splitlines() if line.strip()]
    head = ("| table | epochs (events) | fit CPU s | cap (cut) | events/person mean real / syn | median | p90 | "
            "max | share with none | count shape | event shapes | person shapes | per-person means | order held |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]

    def pair(v: list) -> str:
        return f"{v[0]:.3g} / {v[1]:.3g}"

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    for r in rows:
        lines.append(f"| {r['table']} | {r['epochs']} ({r['events_epochs']}) | {r['fit_cpu_s']} | {r['cap']} "
                     f"({r['cut_events']}) | {pair(r['events_mean'])} | {pair(r['events_median'])} | "
                     f"{pair(r['events_p90'])} | {pair(r['events_max'])} | {pair(r['events_none'])} | "
                     f"{num(r['count_shape'])} | {num(r['event_shapes'])} | {num(r['person_shapes'])} | "
                     f"{num(r['person_means'])} | {num(r.get('order_held'))} |")
    intro = ("# TabularAR on a person table with its events: quick check\n\n"
             "`benchmarks/sequences_quick.py`, defaults (seed 0), all persons of each bundled table fitted and as many "
             "sampled. Real / synthetic events per person; shapes are 1 - KS (numbers) or 1 - total variation "
             "(categories), averaged over the event columns, the person columns, and the per-person means of the "
             "numeric event columns; count shape is 1 - KS of events per person; order held is the share of "
             "synthetic persons whose sequence column never falls. Fit CPU seconds on one thread of a shared, "
             "loaded 2-core machine (they grow with its load).\n\n")
    TABLE.write_text(intro + "\n".join(lines) + "\n")
    print(TABLE.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="*", default=["pbcseq", "rwm5yr", "nlswork", "headache", "cracker"])
    parser.add_argument("--epochs", type=int, default=None, help="epochs of both models (default: TabularAR's)")
    parser.add_argument("--merge", action="store_true", help="only write the Markdown table from the JSON lines")
    args = parser.parse_args()
    if not args.merge:
        OUT.parent.mkdir(exist_ok=True)
        for name in args.tables:
            row = run(name, args.epochs)
            print(json.dumps(row))
            with OUT.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
    merge()


if __name__ == "__main__":
    main()
