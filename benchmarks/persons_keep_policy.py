"""Which events to keep when a person has more than the contribution bound k: thin, first, window.

On the five sequence data sets (../shared/datasets/sequences), for k at the median, the 75th and the 90th
percentile of events per person, compares the kept events with all events: the event-level
marginals (total variation over deciles or values, mean over columns), how well each cut person's
kept events represent them (mean over numeric columns of |mean kept - mean all| / column std), and
what a cut sequence keeps of its span and of its gaps. Public data, exact counts: this chooses a
default, it is not part of a DP fit.

    python benchmarks/persons_keep_policy.py [DATA_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tabsynth.privacy.persons import POLICIES, keep_events

SETS = {"pbcseq": ("id", "day"), "rwm5yr": ("id", "year"), "nlswork": ("idcode", "year"),
        "headache": ("id", "time"), "cracker": ("id", None)}


def _tvd(a: pd.Series, b: pd.Series) -> float:
    if pd.api.types.is_numeric_dtype(a) and a.nunique() > 12:
        edges = np.unique(np.nanquantile(a, np.linspace(0, 1, 11)))
        a, b = pd.cut(a, edges, include_lowest=True), pd.cut(b, edges, include_lowest=True)
    pa, pb = a.value_counts(normalize=True, dropna=False), b.value_counts(normalize=True, dropna=False)
    return float(pa.subtract(pb, fill_value=0).abs().sum() / 2)


def _person_fidelity(df: pd.DataFrame, kept: pd.DataFrame, key: str, cut: pd.Index) -> float:
    cols = [c for c in df.columns if c != key and pd.api.types.is_numeric_dtype(df[c])]
    full = df[df[key].isin(cut)].groupby(key)[cols].mean()
    part = kept[kept[key].isin(cut)].groupby(key)[cols].mean()
    return float((part - full).abs().div(df[cols].std()).mean().mean())


def _span_and_gap(df: pd.DataFrame, kept: pd.DataFrame, key: str, seq: str, cut: pd.Index) -> tuple[float, float]:
    def stats(frame):
        g = frame[frame[key].isin(cut)].sort_values([key, seq]).groupby(key)[seq]
        return (g.max() - g.min()), g.diff().groupby(frame[key]).median()
    span_all, gap_all = stats(df)
    span_kept, gap_kept = stats(kept)
    ok = span_all > 0
    return float((span_kept[ok] / span_all[ok]).mean()), float((gap_kept / gap_all).median())


def main(data: Path) -> None:
    print("| data | k | policy | marginal TVD | person mean error | span kept | gap ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (key, seq) in SETS.items():
        df = pd.read_csv(data / f"{name}_events.csv.gz")
        if seq is None:
            seq = "_position"
            df[seq] = df.groupby(key).cumcount()
        sizes = df.groupby(key).size()
        for k in sorted({int(sizes.median()), int(np.quantile(sizes, 0.9)), int(np.quantile(sizes, 0.75))}):
            cut = sizes.index[sizes > k]
            if not len(cut):
                continue
            for policy in POLICIES:
                kept = df[keep_events(df[key], k, policy, order=df[seq], rng=np.random.default_rng(0))]
                tvd = np.mean([_tvd(df[c], kept[c]) for c in df.columns if c not in (key, "_position")])
                span, gap = _span_and_gap(df, kept, key, seq, cut)
                print(f"| {name} | {k} | {policy} | {tvd:.3f} | {_person_fidelity(df, kept, key, cut):.3f} | "
                      f"{span:.2f} | {gap:.2f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / ".." / "shared"
         / "datasets" / "sequences")
