"""A benchmark's page from its records: per score, a row per table and a mean row, a column per method."""

from __future__ import annotations

from typing import Any

import pandas as pd

#: (record key, heading, digits)
SCORES = [
    ("quality", "sdmetrics quality (overall)", 3),
    ("quality_allpairs", "sdmetrics quality, all pairs", 3),
    ("tstr_auc", "TSTR ROC AUC (HistGradientBoosting; train-on-real in the last column)", 3),
    ("dcr_share", "DCR share against the holdout (0.5: no copying)", 3),
    ("validity", "validity (every category seen, every number in range)", 3),
    ("exact_share", "numbers among the real values (mean over numeric columns)", 3),
    ("at_precision", "numbers at the real column's decimals (mean over numeric columns)", 3),
    ("column_shapes", "sdmetrics column shapes", 3),
    ("fit_cpu_s", "fit CPU seconds (one thread)", 0),
    ("sample_rows_per_s", "sample rows per second", 0),
    ("peak_rss_mb", "peak RSS (MB)", 0),
    ("epsilon", "epsilon spent (DP methods)", 3),
    # a person table and its events (the ``pair`` kind)
    ("qa_accuracy_overall", "mostlyai-qa overall accuracy (events with the persons as context)", 3),
    ("qa_accuracy_univariate", "mostlyai-qa univariate accuracy", 3),
    ("qa_accuracy_bivariate", "mostlyai-qa bivariate accuracy", 3),
    ("qa_accuracy_trivariate", "mostlyai-qa trivariate accuracy", 3),
    ("qa_accuracy_coherence", "mostlyai-qa coherence accuracy (sequences)", 3),
    ("qa_similarity_cosine_similarity_training_synthetic", "mostlyai-qa embedding similarity, training-synthetic", 3),
    ("qa_distances_dcr_share", "mostlyai-qa DCR share (synthetic rows closer to training than to holdout)", 3),
    ("person_tstr_auc", "person-level TSTR ROC AUC (HistGradientBoosting; train-on-real in the last column)", 3),
    ("person_quality", ("sdmetrics quality of the person-level table (attributes, events per person, "
                        "first/last/mean of each event column)"), 3),
    ("events_per_person", "events per person: 1 - KS statistic", 3),
    ("order_share", "persons whose sequence column never falls, as generated (before re-sorting)", 3),
    ("rules_share", "persons meeting every declared rule (real training persons in the last column)", 3),
]

#: Scores shown with the real data's value in a last column: score -> the record key of that value.
REAL = {"tstr_auc": ("trtr_auc", "train-on-real"),
        **{f"qa_accuracy_{k}": (f"qa_accuracy_{k}_max", "holdout (QA's max)")
           for k in ("overall", "univariate", "bivariate", "trivariate", "coherence")}, "person_tstr_auc": ("person_trtr_auc", "train-on-real"),
        "rules_share": ("rules_share_real", "real")}


def _cell(values: pd.Series, digits: int) -> str:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return "-"
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} [{v.min():.{digits}f}, {v.max():.{digits}f}]"


def score_table(ok: pd.DataFrame, key: str, digits: int, columns: list[str], tables: list[str]) -> list[str]:
    """One markdown table: tables down, columns (method, or method and mode) across, seeds as mean [min, max]."""
    real_key, real_head = REAL.get(key, ("", ""))
    extra = real_key in ok
    head = ["table", *columns] + ([real_head] if extra else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in tables:
        sub = ok[ok.table == t]
        cells = [_cell(sub[sub.column == c][key], digits) if key in sub else "-" for c in columns]
        if extra:
            cells.append(_cell(sub.drop_duplicates("seed")[real_key], digits))
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    means = []
    for c in columns:  # mean over the tables every listed column finished, seed-averaged per table
        per_table = ok[ok.column == c].groupby("table")[key].mean() if key in ok else pd.Series(dtype=float)
        means.append(f"{per_table.mean():.{digits}f} ({per_table.notna().sum()})" if per_table.notna().any() else "-")
    if extra:
        real = ok.drop_duplicates(["table", "seed"]).groupby("table")[real_key].mean()
        means.append(f"{real.mean():.{digits}f} ({len(real)})" if len(real) else "-")
    lines.append("| **mean (tables)** | " + " | ".join(means) + " |")
    return lines


def against(ok: pd.DataFrame, cfg: Any, columns: list[str]) -> list[str]:
    """Each of our methods against the config's baseline in the same DP mode and run mode, on the
    tables both finished: tables won on the config's two ``against_scores`` (default quality and
    TSTR), mean differences, fit CPU ratio."""
    from worker import METHODS

    first, second = getattr(cfg, "against_scores", None) or ["quality", "tstr_auc"]
    names = {k: t.split(" (")[0] for k, t, _ in SCORES}
    cols = [first, second, "fit_cpu_s"]
    per = ok.reindex(columns=["column", "method", "mode", "table", *cols]).astype({c: float for c in cols})
    per = per.groupby(["column", "table"])[cols].mean()
    have = set(per.index.get_level_values(0))
    title = f"## Against {cfg.against_label or ', '.join(cfg.against.values())} (same mode, tables both finished)"
    a, b = names.get(first, first), names.get(second, second)
    lines = [title, "", (f"| method | against | tables | {a} won | {b} won | {a} diff (mean) | "
                         f"{b} diff (mean) | fit CPU ratio (means) |"), "|---|---|---|---|---|---|---|---|"]
    for col in columns:
        method, _, mode = col.partition(" ")
        if method not in METHODS:
            continue
        base = cfg.against.get("dp" if METHODS[method].dp else "plain")
        peer = f"{base} {mode}".strip() if base else None
        if METHODS[method].venv is not None or peer not in have or col not in have:
            continue
        both = per.loc[col].join(per.loc[peer], rsuffix="_peer", how="inner").dropna(subset=[first, f"{first}_peer"])
        if both.empty:
            continue
        dq, dt = both[first] - both[f"{first}_peer"], both[second] - both[f"{second}_peer"]
        lines.append(f"| {col} | {peer} | {len(both)} | {int((dq > 0).sum())} | {int((dt > 0).sum())} | "
                     f"{dq.mean():+.3f} | {dt.mean():+.3f} | {both.fit_cpu_s.mean() / both.fit_cpu_s_peer.mean():.2f} |")
    return lines


def _side_cell(rows: pd.DataFrame, key: str, digits: int) -> str:
    cell = _cell(rows[key], digits) if key in rows else "-"
    parts = [f"epsilon_{p}" for p in ("persons", "events")]
    if key == "epsilon" and cell != "-" and all(p in rows and rows[p].notna().any() for p in parts):
        cell += " (" + " + ".join(_cell(rows[p], digits) for p in parts) + ")"
    return cell


def side_by_side(ok: pd.DataFrame, cfg: Any, columns: list[str], tables: list[str]) -> list[str]:
    """Per table, each of our methods beside the config's baseline on the ``side_by_side`` scores
    (a two-model baseline's epsilon with its person and event models' parts in brackets)."""
    from worker import METHODS

    digits = {k: d for k, _, d in SCORES}
    names = {k: t.split(" (")[0] for k, t, _ in SCORES}
    out: list[str] = []
    for col in columns:
        method, _, mode = col.partition(" ")
        base = cfg.against.get("dp" if METHODS[method].dp else "plain") if method in METHODS else None
        peer = f"{base} {mode}".strip() if base else None
        if method not in METHODS or METHODS[method].venv is not None or peer not in set(ok.column):
            continue
        head = ["table", *(f"{names.get(k, k)}: {who}" for k in cfg.side_by_side for who in (col, peer))]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for t in tables:
            sub = ok[ok.table == t]
            cells = [_side_cell(sub[sub.column == who], k, digits.get(k, 3))
                     for k in cfg.side_by_side for who in (col, peer)]
            lines.append(f"| {t} | " + " | ".join(cells) + " |")
        out += [f"## {col} beside {peer}", "", *lines, ""]
    return out


def render(cfg: Any, records: list[dict[str, Any]]) -> str:
    """The markdown page of a config (``harness.Config``) for its records."""
    parts = pd.DataFrame(records)
    head = [f"# {cfg.title} (`benchmarks/configs/{cfg.name}.toml`)", "", cfg.about.strip(), ""]
    if parts.empty:
        return "\n".join([*head, "No runs yet.", ""])
    parts["mode"] = parts.get("mode", pd.Series(["default"] * len(parts))).fillna("default")
    several = parts["mode"].nunique() > 1
    parts["column"] = parts.method + (" " + parts["mode"] if several else "")
    order = {m: i for i, m in enumerate(cfg.methods)}
    columns = sorted(set(parts.column), key=lambda c: (order.get(c.split(" ")[0], len(order)), c))
    ok = parts[parts.status == "ok"]
    seen = set(parts.table)
    tables = [t for t in cfg.tables if t in seen] + sorted(seen - set(cfg.tables))
    seeds = sorted(set(parts.seed))
    out = [*head, (f"{len(ok)} of {len(parts)} runs finished; seeds {', '.join(map(str, seeds))}. Each cell is "
                   "the mean over seeds with [min, max] when there are several; the mean row averages the tables a "
                   "method finished (their count in brackets), so compare means only across equal counts."), ""]
    if cfg.against:
        out += [*against(ok, cfg, columns), ""]
    if getattr(cfg, "side_by_side", None) and cfg.against:
        out += side_by_side(ok, cfg, columns, tables)
    for key, title, digits in SCORES:
        if not cfg.scores or key in cfg.scores:
            out += [f"## {title}", "", *score_table(ok, key, digits, columns, tables), ""]
    notes = getattr(cfg, "notes", "").strip()
    closing = ["## What the numbers show", "", notes, ""] if notes else []
    return "\n".join(out + closing + _failures(parts) + _missing(cfg, parts) + _environment(ok, columns))


def _failures(parts: pd.DataFrame) -> list[str]:
    bad = parts[parts.status != "ok"]
    if bad.empty:
        return []
    out = ["## Runs that did not finish", "", "| table | method | seed | status | last error line |", "|---|---|---|---|---|"]
    for _, r in bad.iterrows():
        err = str(r.get("error") or "").strip().splitlines()
        out.append(f"| {r.table} | {r.column} | {r.seed} | {r.status} | {(err[-1] if err else '')[:160]} |")
    return [*out, ""]


def _missing(cfg: Any, parts: pd.DataFrame) -> list[str]:
    """The config's (table, method, mode, seed) cells without a record: not run yet."""
    have = set(zip(parts.table, parts.method, parts["mode"], parts.seed))
    modes = list(getattr(cfg, "modes", None) or {"default": {}})
    gone = [(t, m, mode, s) for s in cfg.seeds for t in cfg.tables for m in cfg.methods for mode in modes
            if (t, m, mode, s) not in have]
    if not gone:
        return []
    out = ["## Not run yet", "", f"{len(gone)} cells of the config have no record (the harness resumes them):", "",
           "| table | method | mode | seed |", "|---|---|---|---|"]
    return [*out, *(f"| {t} | {m} | {mode} | {s} |" for t, m, mode, s in gone), ""]


def _environment(ok: pd.DataFrame, columns: list[str]) -> list[str]:
    if "environment" not in ok or ok.empty:
        return []
    e = ok.sort_values("started")["environment"].iloc[-1] or {}
    env = {k: e.get(k) for k in ("git_commit", "python", "torch", "sdmetrics", "sklearn", "cpus") if k in e}
    commits = ok.assign(commit=[(e or {}).get("git_commit", "?") for e in ok["environment"]])
    per = {c: sorted(set(commits.loc[commits.column == c, "commit"])) for c in columns if c in set(ok.column)}
    return ["Environment (newest run): " + ", ".join(f"{k} {v}" for k, v in env.items()), "",
            "Code each method's runs used (git commit): " + "; ".join(f"{m} {', '.join(c)}" for m, c in per.items()), ""]
