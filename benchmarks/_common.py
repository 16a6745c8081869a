"""Helpers shared by the side-by-side benchmarks (tabsynth vs SDV's ``ctgan`` package).

SDV's ``ctgan`` (Business Source License) is imported only by the benchmark scripts, never by
tabsynth; no code of it is copied here.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
THREADS = 2

# Same thread budget for torch, BLAS and OpenMP in every process, before numpy/torch load.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))


def set_threads(n: int = THREADS) -> None:
    import torch

    torch.set_num_threads(n)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def environment() -> dict[str, Any]:
    import torch

    out = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
           "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "device": "cpu"}
    out.update(git_state())
    for pkg in ("tabsynth", "ctgan", "rdt", "sdmetrics", "sklearn", "pandas", "numpy"):
        try:
            out[pkg] = __import__(pkg).__version__
        except Exception:  # noqa: BLE001 - version lookup only
            out[pkg] = None
    return out


def git_state() -> dict[str, Any]:
    """Commit of the checkout and whether tabsynth/ has uncommitted edits (read-only git calls)."""
    import subprocess

    def run(*cmd: str) -> str | None:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:  # noqa: BLE001 - git may be missing
            return None

    dirty = run("status", "--porcelain", "--", "tabsynth")
    return {"git_commit": run("rev-parse", "--short", "HEAD"), "tabsynth_dirty": bool(dirty) if dirty is not None else None}


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start


def load_adult(rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    import tabsynth as ts

    df = ts.datasets.load("adult")
    if rows is not None and rows < len(df):
        df = df.sample(n=rows, random_state=seed).reset_index(drop=True)
    return df


def discrete_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if df[c].dtype == object]


def numeric_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and df[c].dtype != bool]


def sdv_metadata(df: pd.DataFrame) -> dict[str, Any]:
    num = set(numeric_columns(df))
    return {"columns": {c: {"sdtype": "numerical" if c in num else "categorical"} for c in df.columns}}


# --- quality ------------------------------------------------------------------------------------
def quality(real: pd.DataFrame, synth: pd.DataFrame) -> dict[str, float]:
    """sdmetrics QualityReport overall score (default thresholds) and the all-pairs variant.

    The all-pairs variant is the same report with both association thresholds set to 0, so Column
    Pair Trends averages CorrelationSimilarity over every numeric pair and ContingencySimilarity
    (numeric columns discretised as the report does) over every other pair, and the overall score
    is the mean of Column Shapes and that Column Pair Trends, as in the report.
    """
    from sdmetrics.reports.single_table import QualityReport

    meta = sdv_metadata(real)
    synth = synth[list(real.columns)]
    out: dict[str, float] = {}
    for tag, thresholds in (("", None), ("_allpairs", (0, 0))):
        report = QualityReport()
        if thresholds is not None:
            report.real_correlation_threshold, report.real_association_threshold = thresholds
        report.generate(real, synth, meta, verbose=False)
        props = report.get_properties().set_index("Property")["Score"]
        out[f"quality{tag}"] = float(report.get_score())
        out[f"column_shapes{tag}"] = float(props["Column Shapes"])
        out[f"column_pair_trends{tag}"] = float(props["Column Pair Trends"])
    return out


# --- train on synthetic, test on real --------------------------------------------------------------
def _tstr_frame(df: pd.DataFrame, real: pd.DataFrame, target: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Native categorical features with the real training table's category lists (same for all)."""
    x = pd.DataFrame(index=range(len(df)))
    for c in real.columns:
        if c == target:
            continue
        col = df[c].reset_index(drop=True)
        if real[c].dtype == object:
            cats = sorted(real[c].dropna().unique())
            x[c] = pd.Categorical(col.where(col.isin(cats)), categories=cats)
        else:
            x[c] = pd.to_numeric(col, errors="coerce").astype("float64")
    y = (df[target].astype(str).str.strip().str.rstrip(".") == ">50K").to_numpy()
    return x, y


def tstr_auc(train: pd.DataFrame, real: pd.DataFrame, test: pd.DataFrame, target: str = "income") -> float:
    """ROC AUC on ``test`` of a HistGradientBoostingClassifier trained on ``train``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    x_tr, y_tr = _tstr_frame(train, real, target)
    x_te, y_te = _tstr_frame(test, real, target)
    if len(np.unique(y_tr)) < 2:
        return float("nan")
    clf = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    clf.fit(x_tr, y_tr)
    return float(roc_auc_score(y_te, clf.predict_proba(x_te)[:, 1]))


# --- value ranges -------------------------------------------------------------------------------
def ranges(real: pd.DataFrame, synth: pd.DataFrame) -> dict[str, float]:
    """Share of rows whose numeric values all lie in the real [min, max]; per-column shares too."""
    inside = np.ones(len(synth), dtype=bool)
    out: dict[str, float] = {}
    for c in numeric_columns(real):
        v = pd.to_numeric(synth[c], errors="coerce").to_numpy(dtype="float64")
        lo, hi = real[c].min(), real[c].max()
        ok = np.isnan(v) | ((v >= lo) & (v <= hi))
        inside &= ok
        out[f"in_range[{c}]"] = float(ok.mean())
    out["rows_in_range"] = float(inside.mean())
    for c in ("capital-gain", "capital-loss"):
        if c in synth.columns:
            v = pd.to_numeric(synth[c], errors="coerce").to_numpy(dtype="float64")
            out[f"negative[{c}]"] = float(np.mean(v < 0))
    return out


# --- output -------------------------------------------------------------------------------------
def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "nan"
        return f"{v:.{digits}f}"
    return str(v)


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def write_results(out: Path, payload: dict[str, Any], markdown: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = out.with_suffix(".json")
    md_path = out.with_suffix(".md")
    json_path.write_text(json.dumps(_clean(payload), indent=2, default=_json_default, allow_nan=False) + "\n")
    md_path.write_text(markdown + "\n")
    print(markdown)
    print(f"\nwrote {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path} "
          f"and {md_path.name}")


def _clean(o: Any) -> Any:
    """NaN and inf become null so the JSON stays standard."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if np.isfinite(o) else None
    return o


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if np.isnan(o) else float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def run_child(cmd: list[str], key: dict, out: "Path", env: dict | None = None, timeout: float = 3600) -> str:
    """Run one fit in a child process (``cmd`` prints its JSON record last), append that record, or
    ``key`` with the child's error, as one line to ``out``; return the line."""
    import json
    import subprocess

    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    line = (proc.stdout.strip().splitlines()[-1] if proc.returncode == 0
            else json.dumps({**key, "error": proc.stderr[-500:]}))
    with out.open("a") as fh:
        fh.write(line + "\n")
    print(line, flush=True)
    return line


def table_rows(part: Any, column: str, keys: list, cell: Any) -> list[str]:
    """Markdown rows, one per table of the frame ``part``: ``cell(rows)`` for the rows whose ``column``
    is each of ``keys`` in turn ("-" where there are none)."""
    lines = []
    for table, rows_t in part.groupby("table"):
        cells = ["-" if (r := rows_t[rows_t[column] == k]).empty else cell(r) for k in keys]
        lines.append(f"| {table} | " + " | ".join(cells) + " |")
    return lines
