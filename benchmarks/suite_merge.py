"""Merge the suite's JSON parts into one markdown page: per score, a row per table and a mean row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

#: (column in the parts, heading, digits)
SCORES = [
    ("quality", "sdmetrics quality (overall)", 3),
    ("quality_allpairs", "sdmetrics quality, all pairs", 3),
    ("tstr_auc", "TSTR ROC AUC (HistGradientBoosting; train-on-real in the last column)", 3),
    ("dcr_share", "DCR share against the holdout (0.5: no copying)", 3),
    ("validity", "validity (every category seen, every number in range)", 3),
    ("fit_cpu_s", "fit CPU seconds (one thread)", 0),
    ("sample_rows_per_s", "sample rows per second", 0),
    ("peak_rss_mb", "peak RSS (MB)", 0),
    ("epsilon", "epsilon spent (DP methods)", 3),
]
#: The suite's tables, in the order the page lists them.
TABLES = ["adult", "german_credit", "credit_data", "flchain", "hmda", "telco_churn", "nmes1988",
          "rotterdam", "nass_cds", "yrbss"]
METHOD_ORDER = ["ts-ctgan", "ts-tvae", "ts-ar", "ts-ar-fixed", "engine", "sdv-gc", "sdv-ctgan", "sdv-tvae",
                "ts-ctgan-dp", "ts-tvae-dp", "ts-ar-dp", "ts-ar-fixed-dp", "engine-dp"]


def load_parts(folder: Path) -> pd.DataFrame:
    rows = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return pd.DataFrame(rows)


def _cell(values: pd.Series, digits: int) -> str:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return "-"
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} [{v.min():.{digits}f}, {v.max():.{digits}f}]"


def score_table(ok: pd.DataFrame, key: str, digits: int, methods: list[str], tables: list[str]) -> list[str]:
    """One markdown table: tables down, methods across, seeds summarised as mean [min, max]."""
    extra = key == "tstr_auc"
    head = ["table", *methods] + (["train-on-real"] if extra else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in tables:
        sub = ok[ok.table == t]
        cells = [_cell(sub[sub.method == m][key], digits) if key in sub else "-" for m in methods]
        if extra:
            cells.append(_cell(sub.drop_duplicates("seed")["trtr_auc"], digits))
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    means = []
    for m in methods:  # mean over the tables every listed method finished, seed-averaged per table
        per_table = ok[ok.method == m].groupby("table")[key].mean() if key in ok else pd.Series(dtype=float)
        means.append(f"{per_table.mean():.{digits}f} ({per_table.notna().sum()})" if per_table.notna().any() else "-")
    if extra:
        real = ok.drop_duplicates(["table", "seed"]).groupby("table")["trtr_auc"].mean()
        means.append(f"{real.mean():.{digits}f} ({len(real)})" if len(real) else "-")
    lines.append("| **mean (tables)** | " + " | ".join(means) + " |")
    return lines


def against_engine(ok: pd.DataFrame) -> list[str]:
    """Each of our methods against MOSTLY AI's engine in the same mode (non-DP against ``engine``,
    DP against ``engine-dp``), on the tables both finished: tables won on quality and on TSTR,
    mean differences, and the ratio of mean fit CPU seconds."""
    cols = ["quality", "tstr_auc", "fit_cpu_s"]
    per = ok.reindex(columns=["method", "table", *cols]).astype({c: float for c in cols}).groupby(
        ["method", "table"])[cols].mean()
    lines = ["## Against MOSTLY AI's engine (same mode, tables both finished)", "",
             "| method | against | tables | quality won | TSTR won | quality diff (mean) | TSTR diff (mean) | "
             "fit CPU ratio (means) |", "|---|---|---|---|---|---|---|---|"]
    for m in METHOD_ORDER:
        peer = "engine-dp" if m.endswith("-dp") else "engine"
        if not m.startswith("ts-") or m not in per.index.get_level_values(0) or peer not in per.index.get_level_values(0):
            continue
        both = per.loc[m].join(per.loc[peer], rsuffix="_peer", how="inner").dropna(subset=["quality", "quality_peer"])
        if both.empty:
            continue
        dq, dt = both.quality - both.quality_peer, both.tstr_auc - both.tstr_auc_peer
        lines.append(f"| {m} | {peer} | {len(both)} | {int((dq > 0).sum())} | {int((dt > 0).sum())} | {dq.mean():+.3f} | "
                     f"{dt.mean():+.3f} | {both.fit_cpu_s.mean() / both.fit_cpu_s_peer.mean():.2f} |")
    return lines


def merge(folder: Path) -> str:
    """The markdown page for every part in ``folder``."""
    parts = load_parts(folder)
    if parts.empty:
        return "# Real-table suite\n\nNo parts yet.\n"
    ok = parts[parts.status == "ok"]
    methods = [m for m in METHOD_ORDER if m in set(parts.method)]
    seen = set(parts.table)
    tables = [t for t in TABLES if t in seen] + sorted(seen - set(TABLES))
    seeds = sorted(set(parts.seed))
    out = ["# Real-table suite (`benchmarks/suite.py`)", "",
           f"{len(ok)} of {len(parts)} runs finished; seeds {', '.join(map(str, seeds))}. Each cell is the "
           "mean over seeds with [min, max] when there are several; the mean row averages the tables a "
           "method finished (their count in brackets), so compare means only across equal counts.", ""]
    out += [*against_engine(ok), ""]
    for key, title, digits in SCORES:
        out += [f"## {title}", "", *score_table(ok, key, digits, methods, tables), ""]
    bad = parts[parts.status != "ok"]
    if len(bad):
        out += ["## Runs that did not finish", "", "| table | method | seed | status | last error line |",
                "|---|---|---|---|---|"]
        for _, r in bad.iterrows():
            err = str(r.get("error") or "").strip().splitlines()
            out.append(f"| {r.table} | {r.method} | {r.seed} | {r.status} | {(err[-1] if err else '')[:160]} |")
        out.append("")
    env = _environment(ok)
    if env:
        out += ["Environment (newest run): " + ", ".join(f"{k} {v}" for k, v in env.items()), ""]
        out += ["Code each method's runs used (git commit): " + "; ".join(
            f"{m} {', '.join(c)}" for m, c in _commits(ok).items()), ""]
    return "\n".join(out)


def _environment(ok: pd.DataFrame) -> dict[str, Any]:
    if "environment" not in ok or ok.empty:
        return {}
    e = ok.sort_values("started")["environment"].iloc[-1] or {}
    return {k: e.get(k) for k in ("git_commit", "python", "torch", "sdmetrics", "sklearn", "cpus") if k in e}


def _commits(ok: pd.DataFrame) -> dict[str, list[str]]:
    commits = ok.assign(commit=[(e or {}).get("git_commit", "?") for e in ok["environment"]])
    return {m: sorted(set(commits.loc[commits.method == m, "commit"])) for m in METHOD_ORDER if m in set(ok.method)}

