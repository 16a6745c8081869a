#!/usr/bin/env python
"""Profile tabsynth's CTGAN (or TVAE) fit on Adult: cProfile by Python function and torch.profiler by op.

CPU, 2 threads. One fit of ``--epochs`` epochs (encoder included) runs under cProfile, then a
second identical fit under torch.profiler; the top entries are printed and written to
benchmarks/results/profile_<model>.txt.

    .venv/bin/python benchmarks/profile_epoch.py [--model ctgan|tvae] [--epochs 1] [--rows N] [--top 15]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, Timer, load_adult, set_threads  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("ctgan", "tvae"), default="ctgan")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--out", type=Path, default=None, help="text report (default results/profile_<model>.txt)")
    args = ap.parse_args(argv)

    import torch
    from torch.profiler import ProfilerActivity, profile

    import tabsynth

    set_threads()
    df = load_adult(args.rows)
    cls = tabsynth.CTGAN if args.model == "ctgan" else tabsynth.TVAE

    def fit() -> None:
        cls(epochs=args.epochs, batch_size=500, seed=0, verbose=False, device="cpu").fit(df)

    out = io.StringIO()
    pr = cProfile.Profile()
    with Timer() as t1:
        pr.enable()
        fit()
        pr.disable()
    out.write(f"# cProfile: {args.model} fit, {args.epochs} epoch(s), {len(df)} rows: {t1.seconds:.2f} s "
              f"(under the profiler)\n")
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(args.top)
    out.write(s.getvalue())
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(args.top * 2)
    out.write(s.getvalue())

    with Timer() as t2:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fit()
    out.write(f"\n# torch.profiler: same fit, {t2.seconds:.2f} s (under the profiler)\n")
    out.write(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    text = out.getvalue()
    print(text)
    path = args.out or RESULTS / f"profile_{args.model}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
    del torch
    return 0


if __name__ == "__main__":
    sys.exit(main())
