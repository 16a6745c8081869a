"""What differential privacy per person costs against per row, in the preprocessing release.

At epsilon 1 on an event table (nlswork and pbcseq from ../shared/datasets/sequences), fits the
preprocessing release twice: per row (every event a unit, the guarantee protects one event) and per
person (the unit a person with all their events: the DP contribution bound, 1/k_i weights). Prints,
averaged over runs with fresh noise: the mass the statistics measure (noisy rows or persons), a
categorical column's noise std and selection threshold relative to that mass, the categories that
pass selection (of those present), the zooms accepted over all numeric columns and the numeric
columns that came out constant, the bound and the
noisy shares cut against the exact ones.

    python benchmarks/persons_cost.py [DATA_DIR] [RUNS]
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from tabsynth.distributed.runtime import Runtime
from tabsynth.metadata import ColumnSpec, Metadata
from tabsynth.privacy.config import DPConfig
from tabsynth.privacy.fit import PrivateFit
from tabsynth.privacy.persons import PersonUnit, events_per_person

SETS = {
    "nlswork": ("idcode", "year", ["msp", "nev_mar", "not_smsa", "c_city", "south", "ind_code", "occ_code", "union"]),
    "pbcseq": ("id", "day", ["ascites", "hepato", "spiders", "edema", "stage"]),
}


def _metadata(df: pd.DataFrame, key: str, categorical: list[str]) -> Metadata:
    specs = [ColumnSpec(c, "id") if c == key else ColumnSpec(c, "categorical") if c in categorical
             else ColumnSpec(c, "numerical") for c in df.columns]
    return Metadata(specs)


def _one(df: pd.DataFrame, meta: Metadata, unit: PersonUnit | None, categorical: list[str]) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = PrivateFit.begin(DPConfig(1.0), df, meta, Runtime(), persons=unit)
        rows = df if unit is None else fit.persons.select(df)
        transformer, _ = fit.transformer(rows, max_categories=50, seed=0)
    spent = fit.statement(None)
    details = spent.parts["preprocessing"].details
    std = details["noise_stds"][categorical[0]][0]
    kept = sum(len(transformer.encoder_of(c).categories) for c in categorical)
    numeric = [ch["what"] for ch in details["changes"] if ch["column"] not in categorical]
    zooms = sum(int(m) for w in numeric for m in re.findall(r"then (\d+) zoom", w))
    constant = sum("generated as a constant" in w for w in numeric)
    out = {"mass": fit.n_hat, "std": std, "std/mass": std / fit.n_hat,
           "tau/mass": details["partition_selection_threshold"] / fit.n_hat, "categories": kept,
           "zooms": zooms, "constant_numeric": constant}
    if unit is not None:
        out.update({f"bound_{k}": v for k, v in fit.persons.report().items() if k != "policy"})
    return out


def main(data: Path, runs: int) -> None:
    for name, (key, seq, categorical) in SETS.items():
        df = pd.read_csv(data / f"{name}_events.csv.gz")
        meta = _metadata(df, key, categorical)
        present = sum(df[c].nunique() for c in categorical)
        sizes = events_per_person(df[key])
        print(f"{name}: {len(sizes)} persons, {len(df)} events, {present} categories in {len(categorical)} columns")
        for label, unit in (("per row", None), ("per person", PersonUnit(df[key], order=df[seq]))):
            res = pd.DataFrame([_one(df, meta, unit, categorical) for _ in range(runs)]).mean()
            print(f"  {label}: " + ", ".join(f"{k} {v:.4g}" for k, v in res.items()))
        k = round(res["bound_max_events_per_person"])
        print(f"  exact at k={k}: cut share events {(sizes - k).clip(0).sum() / sizes.sum():.4f}, "
              f"persons {(sizes > k).mean():.4f}; exact p99 {np.quantile(sizes, 0.99):g}")


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / ".." / "shared" / \
        "datasets" / "sequences"
    main(root, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
