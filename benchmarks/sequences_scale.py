"""Two-table sampling at scale: 100,000 persons with about 20 events each, streamed to Parquet.

Fits TabularAR's two-table mode on a small generated pair (2,000 persons, 20 events each: a
category, a drifting lab value, a day gap), then times ``sample_to_file`` of ``--persons`` persons
``--batch`` persons at a time and reads the process's peak resident memory. One thread.

    python benchmarks/sequences_scale.py --persons 100000 --out benchmarks/results/sequences_scale.md
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

import tabsynth as ts


def pair(n: int = 2_000, events: int = 20, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    persons = pd.DataFrame({"id": np.arange(n), "sex": rng.choice(["f", "m"], n), "age": rng.integers(20, 80, n)})
    owner = np.repeat(persons["id"].to_numpy(), events)
    pos = np.tile(np.arange(events), n)
    base = np.repeat(rng.normal(5, 1, n), events)
    ev = pd.DataFrame({"id": owner, "day": pos * 30 + rng.integers(0, 7, len(owner)),
                       "lab": (base + 0.05 * pos + rng.normal(0, 0.3, len(owner))).round(1),
                       "code": rng.choice(list("ABCDE"), len(owner))})
    return persons, ev


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    persons, events = pair()
    t0 = time.process_time()
    model = ts.TabularAR(epochs=args.epochs, seed=0, verbose=False).fit(events, subjects=persons, key="id",
                                                                        order_by="day")
    fit_cpu, after_fit = time.process_time() - t0, peak_mb()
    with tempfile.TemporaryDirectory() as tmp:
        w0, c0 = time.perf_counter(), time.process_time()
        paths = model.sample_to_file(args.persons, Path(tmp) / "syn.parquet", batch_rows=args.batch, seed=1)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        n_persons = pq.ParquetFile(paths.subjects).metadata.num_rows
        n_events = pq.ParquetFile(paths.events).metadata.num_rows
        sizes = pd.read_parquet(paths.events, columns=["id"]).groupby("id").size()
    lines = [
        "# Two-table sampling at scale",
        "",
        f"`python benchmarks/sequences_scale.py --persons {args.persons} --batch {args.batch}` (one thread; the "
        "machine was shared with other work, so times are upper bounds).",
        "",
        "| persons | events | events per person (mean, max) | batch (persons) | sample wall s | sample CPU s | "
        "events per s | peak RSS after fit MB | peak RSS after sampling MB | fit CPU s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {n_persons:,} | {n_events:,} | {sizes.mean():.1f}, {sizes.max()} | {args.batch:,} | {wall:.0f} | {cpu:.0f} | "
        f"{n_events / wall:,.0f} | {after_fit:.0f} | {peak_mb():.0f} | {fit_cpu:.0f} |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
