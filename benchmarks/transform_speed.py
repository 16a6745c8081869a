#!/usr/bin/env python
"""Encoder speed on bundled Adult: tabsynth's TableTransformer vs SDV ctgan's DataTransformer.

Both run in this one process on CPU with torch/BLAS limited to 2 threads, interleaved, best of
``--repeats``. Reported: fit, transform, fit+transform and inverse_transform seconds and the ratio
ours/theirs (ratios, because the machine is noisy). Targets: ours fit+transform <= 0.5x theirs and
< 10 s.

    .venv/bin/python benchmarks/transform_speed.py [--repeats 1] [--rows N] [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (RESULTS, Timer, discrete_columns, environment, load_adult, md_table,  # noqa: E402
                     set_threads, write_results)

RATIO_TARGET = 0.5
ABS_TARGET_S = 10.0


def _time(transformer, fit, df) -> dict:
    """Seconds of fit, transform and inverse_transform of one transformer on ``df``."""
    with Timer() as f:
        fit(transformer)
    with Timer() as tr:
        m = transformer.transform(df)
    with Timer() as inv:
        back = transformer.inverse_transform(m)
    assert back.shape == df.shape
    return {"fit": f.seconds, "transform": tr.seconds, "inverse_transform": inv.seconds,
            "output_dim": int(m.shape[1])}


def time_ours(df):
    from tabsynth.transform import TableTransformer

    return _time(TableTransformer(), lambda t: t.fit(df), df)


def time_theirs(df, discrete):
    from ctgan.data_transformer import DataTransformer

    return _time(DataTransformer(), lambda t: t.fit(df, discrete_columns=discrete), df)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=1, help="runs per side; the best is kept (default 1)")
    ap.add_argument("--rows", type=int, default=None, help="subsample Adult to this many rows (default all)")
    ap.add_argument("--out", type=Path, default=RESULTS / "transform_speed",
                    help="output path without suffix; .json and .md are written (default %(default)s)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")

    set_threads()
    df = load_adult(args.rows)
    discrete = discrete_columns(df)
    runs = {"ours": [], "theirs": []}
    for r in range(args.repeats):
        runs["ours"].append(time_ours(df))
        runs["theirs"].append(time_theirs(df, discrete))
        print(f"repeat {r + 1}/{args.repeats}: ours {runs['ours'][-1]}, theirs {runs['theirs'][-1]}",
              file=sys.stderr)

    def best(side: str, key: str) -> float:
        if key == "fit+transform":
            return min(x["fit"] + x["transform"] for x in runs[side])
        return min(x[key] for x in runs[side])

    rows = []
    summary = {}
    for key in ("fit", "transform", "fit+transform", "inverse_transform"):
        o, t = best("ours", key), best("theirs", key)
        summary[key] = {"ours_s": o, "theirs_s": t, "ratio": o / t}
        rows.append([key, o, t, o / t])
    ft = summary["fit+transform"]
    targets = [
        ["fit+transform ours/theirs", f"<= {RATIO_TARGET}", ft["ratio"], ft["ratio"] <= RATIO_TARGET],
        ["fit+transform ours (s)", f"< {ABS_TARGET_S:g}", ft["ours_s"], ft["ours_s"] < ABS_TARGET_S],
    ]
    md = "\n\n".join([
        f"# Transformer speed on Adult ({len(df)} rows, {df.shape[1]} columns, CPU, 2 threads, "
        f"best of {args.repeats})",
        md_table(["step", "ours (s)", "theirs (s)", "ours/theirs"], rows),
        md_table(["target", "goal", "value", "PASS"],
                 [[a, b, c, "PASS" if d else "FAIL"] for a, b, c, d in targets]),
        f"Encoded width: ours {runs['ours'][0]['output_dim']}, theirs {runs['theirs'][0]['output_dim']}. "
        "Ours: `tabsynth.transform.TableTransformer()`; theirs: `ctgan.data_transformer.DataTransformer()` "
        "with discrete_columns = object columns.",
    ])
    payload = {"benchmark": "transform_speed", "rows": len(df), "repeats": args.repeats,
               "environment": environment(), "runs": runs, "summary": summary,
               "targets": [dict(zip(["target", "goal", "value", "pass"], t)) for t in targets]}
    write_results(args.out, payload, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
