#!/usr/bin/env python
"""Scaling curves (issue 6): seconds per epoch and peak memory against rows and columns, DP and not,
plus streaming 5 million synthetic rows to Parquet with bounded memory.

Tables are grown from bundled Adult: rows resampled with replacement, numeric values jittered
(Gaussian noise of 5% of the column's spread, rounded for integer columns, kept non-negative where
Adult is), and extra columns made from copies of Adult's columns (numeric copies rescaled and
jittered, categorical copies with 10% of the values swapped for another category of the column), so
the 50- and 150-column tables keep Adult's mix of kinds. Each configuration runs in its own child
process (so peak RSS is that fit's own) with the same thread budget.

Measured per configuration: ``epoch_s`` is the training loop's time (model ``_train`` /
``_train_private``, preprocessing excluded) divided by its epochs; ``fit_s`` is the whole ``fit``;
``peak_rss_mb`` the child's peak resident memory (table included). DP runs use the same batch size
as the non-DP runs, so ``dp_overhead`` = DP epoch seconds / non-DP epoch seconds is per-step cost.

    .venv/bin/python benchmarks/scaling.py                          # CPU grid + 5M-row sample
    .venv/bin/python benchmarks/scaling.py --device cuda            # the GPU check (where a GPU is lent)
    .venv/bin/python benchmarks/scaling.py --rows 10000 100000 --columns 15 --models tvae --no-sample
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import RESULTS, environment, fmt, md_table, peak_rss_mb, set_threads, write_results

#: Targets of issue 6.
ROW_RATIO_MAX = 11.0  # epoch seconds at 1M rows over 100k rows
DP_OVERHEAD_MAX = 3.0  # DP epoch seconds over non-DP epoch seconds, same batch, CPU
SAMPLE_ROWS = 5_000_000
SAMPLE_RSS_MAX_MB = 1536.0


def grow(rows: int, columns: int, seed: int = 0):
    """An Adult-shaped table of ``rows`` x ``columns`` (see the module docstring)."""
    import numpy as np
    import pandas as pd

    import tabsynth as ts

    rng = np.random.default_rng(seed)
    base = ts.datasets.load("adult")
    df = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    out: dict[str, Any] = {}
    names = list(base.columns)
    for k in range(columns):
        name = names[k % len(names)]
        s = df[name]
        copy = k // len(names)
        col = name if copy == 0 else f"{name}_{copy}"
        if pd.api.types.is_numeric_dtype(s.dtype):
            x = s.to_numpy(dtype=np.float64) * (1.0 + 0.5 * copy)
            x = x + rng.normal(0.0, 0.05 * (np.std(x) or 1.0), rows)
            if (base[name] >= 0).all():
                x = np.abs(x)
            out[col] = np.round(x).astype(np.int64) if pd.api.types.is_integer_dtype(s.dtype) else x
        else:
            values = s.to_numpy(dtype=object).copy()
            cats = pd.unique(base[name].dropna())
            swap = rng.random(rows) < 0.10
            values[swap] = rng.choice(cats, int(swap.sum()))
            out[col] = values
    return pd.DataFrame(out)


def _child(cfg: dict[str, Any]) -> dict[str, Any]:
    set_threads(cfg["threads"])
    import torch

    import tabsynth as ts

    if cfg["kind"] == "sample":
        model = ts.CTGAN(epochs=1, batch_size=500, seed=0, verbose=False, device=cfg["device"]).fit(
            ts.datasets.load("adult").head(5000))
        rss_before = peak_rss_mb()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "synthetic.parquet"
            t0 = time.perf_counter()
            model.sample_to_file(cfg["rows"], path, batch_rows=100_000, seed=1)
            seconds = time.perf_counter() - t0
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path).metadata
            written, row_groups, size_mb = meta.num_rows, meta.num_row_groups, path.stat().st_size / 2**20
        return {"seconds": seconds, "rows_written": written, "row_groups": row_groups, "file_mb": size_mb,
                "peak_rss_mb": peak_rss_mb(), "peak_rss_before_sampling_mb": rss_before}

    df = grow(cfg["rows"], cfg["columns"])
    cls = ts.CTGAN if cfg["model"] == "ctgan" else ts.TVAE
    params: dict[str, Any] = dict(epochs=cfg["epochs"], batch_size=cfg["batch_size"], seed=0, verbose=False,
                                  device=cfg["device"])
    if cfg["dp"]:
        params.update(epsilon=cfg["epsilon"], delta=1.0 / (10 * cfg["rows"]) ** 1.5)
    model = cls(**params)
    timing: dict[str, float] = {}
    hook = "_train_private" if cfg["dp"] else "_train"
    inner = getattr(model, hook)

    def timed(*args: Any, **kwargs: Any) -> Any:
        if model.device_.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        result = inner(*args, **kwargs)
        if model.device_.type == "cuda":
            torch.cuda.synchronize()
        timing["train"] = time.perf_counter() - t
        return result

    setattr(model, hook, timed)
    t0 = time.perf_counter()
    model.fit(df)
    fit_s = time.perf_counter() - t0
    out = {"fit_s": fit_s, "epoch_s": timing["train"] / cfg["epochs"], "peak_rss_mb": peak_rss_mb(),
           "encoded_width": model.transformer_.output_dim_}
    if torch.cuda.is_available() and model.device_.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if cfg["dp"]:
        out["epsilon_spent"] = model.privacy_spent().epsilon
    return out


def run_child(cfg: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = {**os.environ, **{v: str(cfg["threads"]) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                              "OPENBLAS_NUM_THREADS")}}
    try:
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)], capture_output=True,
                              text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--columns", type=int, nargs="+", default=[15, 50, 150])
    ap.add_argument("--column-rows", type=int, default=100_000, help="rows of the column sweep")
    ap.add_argument("--models", nargs="+", default=["ctgan", "tvae"], choices=["ctgan", "tvae"])
    ap.add_argument("--epochs", type=int, default=2, help="epochs per fit (2 amortises per-fit setup)")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--epsilon", type=float, default=1000.0,
                    help="DP runs' budget (cost per step does not depend on it; large so no config is refused)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--no-sample", action="store_true", help="skip the 5M-row sample_to_file check")
    ap.add_argument("--sample-rows", type=int, default=SAMPLE_ROWS)
    ap.add_argument("--out", default=str(RESULTS / "scaling"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return

    base = dict(epochs=args.epochs, batch_size=args.batch_size, device=args.device, threads=args.threads,
                epsilon=args.epsilon)
    shapes = [(r, min(args.columns)) for r in args.rows]
    shapes += [(args.column_rows, c) for c in args.columns if (args.column_rows, c) not in shapes]
    runs = []
    for model in args.models:
        for rows, cols in shapes:
            for dp in (False, True):
                cfg = {**base, "kind": "fit", "model": model, "rows": rows, "columns": cols, "dp": dp}
                t0 = time.perf_counter()
                res = run_child(cfg, args.timeout)
                print(f"{model} {'DP ' if dp else ''}{rows} x {cols}: {res} ({time.perf_counter() - t0:.0f} s)",
                      flush=True)
                runs.append({**cfg, **res})

    def epoch(model: str, rows: int, cols: int, dp: bool) -> float | None:
        for r in runs:
            if (r["model"], r["rows"], r["columns"], r["dp"]) == (model, rows, cols, dp):
                return r.get("epoch_s")
        return None

    checks = []
    lo_rows = 100_000 if 100_000 in args.rows else None
    hi_rows = 1_000_000 if 1_000_000 in args.rows else None
    for model in args.models:
        for dp in (False, True):
            a, b = (epoch(model, lo_rows, min(args.columns), dp), epoch(model, hi_rows, min(args.columns), dp)) \
                if lo_rows and hi_rows else (None, None)
            if a and b:
                checks.append({"check": f"{model}{' DP' if dp else ''}: epoch s, 1M / 100k rows", "value": b / a,
                               "target": f"<= {ROW_RATIO_MAX:g}", "pass": b / a <= ROW_RATIO_MAX})
        for rows, cols in shapes:
            plain, private = epoch(model, rows, cols, False), epoch(model, rows, cols, True)
            if plain and private:
                ratio = private / plain
                checks.append({"check": f"{model}: DP overhead at {rows} x {cols}", "value": ratio,
                               "target": f"<= {DP_OVERHEAD_MAX:g}",
                               "pass": ratio <= DP_OVERHEAD_MAX or args.device != "cpu"})
    sample = None
    if not args.no_sample:
        sample = run_child({**base, "kind": "sample", "rows": args.sample_rows}, args.timeout)
        print(f"sample_to_file {args.sample_rows}: {sample}", flush=True)
        if "error" not in sample:
            checks.append({"check": f"sample_to_file {args.sample_rows:,} rows: peak RSS MB",
                           "value": sample["peak_rss_mb"], "target": f"< {SAMPLE_RSS_MAX_MB:g}",
                           "pass": sample["peak_rss_mb"] < SAMPLE_RSS_MAX_MB
                           and sample["rows_written"] == args.sample_rows})

    rows_md = [[r["model"], "yes" if r["dp"] else "no", f"{r['rows']:,}", r["columns"],
                fmt(r.get("epoch_s"), 2), fmt(r.get("fit_s"), 1), fmt(r.get("peak_rss_mb"), 0),
                r.get("error", "")] for r in runs]
    md = [f"# Scaling (device {args.device}, {args.threads} threads, batch {args.batch_size}, "
          f"{args.epochs} epoch(s) per fit)", "",
          md_table(["model", "DP", "rows", "columns", "s / epoch", "fit s", "peak RSS MB", "error"], rows_md), "",
          md_table(["check", "value", "target", "pass"],
                   [[c["check"], fmt(c["value"], 2), c["target"], "PASS" if c["pass"] else "FAIL"] for c in checks])]
    if sample and "error" not in sample:
        md += ["", f"sample_to_file: {sample['rows_written']:,} rows in {sample['seconds']:.0f} s, "
               f"{sample['row_groups']} row groups, {sample['file_mb']:.0f} MB file, peak RSS "
               f"{sample['peak_rss_mb']:.0f} MB ({sample['peak_rss_before_sampling_mb']:.0f} MB before sampling)."]
    md += ["", __doc__.split("\n\n")[1].replace("\n", " "), "",
           "Per-epoch seconds grow linearly in rows when the ratio 1M / 100k is near 10."]
    write_results(Path(args.out), {"environment": environment(), "args": vars(args), "runs": runs,
                                   "checks": checks, "sample": sample}, "\n".join(md))
    _plot(runs, Path(args.out).with_suffix(".png"))


def _plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    cols_min = min(r["columns"] for r in runs)
    rows_col = max((r["rows"] for r in runs if r["columns"] != cols_min), default=None)
    for model in sorted({r["model"] for r in runs}):
        for dp in (False, True):
            label = f"{model}{' DP' if dp else ''}"
            pts = sorted((r["rows"], r["epoch_s"]) for r in runs if r["model"] == model and r["dp"] == dp
                         and r["columns"] == cols_min and r.get("epoch_s"))
            if pts:
                axes[0].plot(*zip(*pts), marker="o", label=label, linestyle="--" if dp else "-")
            pts = sorted((r["columns"], r["epoch_s"]) for r in runs if r["model"] == model and r["dp"] == dp
                         and r["rows"] == rows_col and r.get("epoch_s"))
            if pts:
                axes[1].plot(*zip(*pts), marker="o", label=label, linestyle="--" if dp else "-")
    axes[0].set(xscale="log", yscale="log", xlabel=f"rows ({cols_min} columns)", ylabel="seconds per epoch")
    axes[1].set(xlabel=f"columns ({rows_col:,} rows)" if rows_col else "columns", ylabel="seconds per epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
