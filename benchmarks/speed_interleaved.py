#!/usr/bin/env python
"""Interleaved speed ratios, tabsynth vs SDV's ``ctgan`` package, on bundled Adult (all rows, CPU).

The machine these benchmarks run on is shared and its load changes minute to minute, so timing
each library in its own process at a different time gives unreliable ratios. Here both libraries
live in one process and are timed alternately (ours, theirs, ours, theirs, ...), so each pair of
measurements sees nearly the same load; the ratio of each pair is reported, and the median ratio
over ``--rounds`` pairs is checked against the targets (issue 3).

Setup (untimed for the targets, reported as warm-up): each side is fitted once with epochs=1 on the
full table (ours: ``tabsynth.CTGAN/TVAE(epochs=1, batch_size=500, seed=0, verbose=False,
device="cpu")``; theirs: ``ctgan.CTGAN/TVAE(epochs=1, batch_size=500, enable_gpu=False)`` with
``discrete_columns`` = the object columns). Networks are each library's defaults (the paper's
sizes; identical on both sides, as in compare_models.py). Then, per model family:

* ``train_epoch`` (target): one training epoch, training loop only, no preprocessing.
  Ours: ``model._train(data)`` with ``epochs=1``, ``data`` the already encoded tensor (includes
  building the optimizers and the condition sampler). Theirs: ``model.fit(df, discrete_columns)``
  with epochs=1 while their ``DataTransformer`` is replaced, in their module, by one whose ``fit``
  is a no-op and whose ``transform`` returns the matrix encoded once beforehand; so their time
  covers input validation, building the data sampler, the networks and optimizers, and the epoch.
* ``fit_1epoch`` (info): a whole ``fit(df)`` with epochs=1 on each side, encoder fit+transform
  included (``--fit-rounds`` pairs). ``fit_1epoch - train_epoch`` is roughly the preprocessing.
* ``sample_100k`` (target): ``sample(100_000)`` (ours with ``seed=1``), decoding to a DataFrame
  included, from the models fitted for 1 epoch.

    .venv/bin/python benchmarks/speed_interleaved.py                  # 5 rounds, 2 threads
    .venv/bin/python benchmarks/speed_interleaved.py --rounds 3 --threads 1 --families tvae
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable


def _early_threads(argv: list[str]) -> int:
    """--threads, read before numpy/torch load so OpenMP/BLAS get the same budget."""
    n = 2
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            n = int(argv[i + 1])
        elif a.startswith("--threads="):
            n = int(a.split("=", 1)[1])
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    return n


_early_threads(sys.argv[1:])
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (RESULTS, THREADS, discrete_columns, environment, fmt, load_adult, md_table,  # noqa: E402
                     set_threads, write_results)

BATCH_SIZE = 500
SAMPLE_ROWS = 100_000
FAMILIES = ("ctgan", "tvae")
# (family, metric) -> goal for the median of ours/theirs
TARGETS = {("ctgan", "train_epoch"): 0.33, ("tvae", "train_epoch"): 0.5,
           ("ctgan", "sample_100k"): 0.2, ("tvae", "sample_100k"): 0.2}
WHAT = {
    "train_epoch": "one training epoch, loop only (ours `_train` on the encoded tensor; theirs `fit` with "
                   "their encoder's fit/transform replaced by a pre-fitted one and a pre-encoded matrix)",
    "fit_1epoch": "whole `fit(df)` with epochs=1, encoder fit+transform included",
    "sample_100k": "`sample(100000)` incl. decoding to a DataFrame",
}


def load1() -> float:
    return os.getloadavg()[0]


def timed(fn: Callable[[], Any]) -> tuple[float, float, float]:
    """(seconds, 1-min load before, 1-min load after) of ``fn()``; garbage collected first, untimed."""
    gc.collect()
    before = load1()
    t = time.perf_counter()
    fn()
    s = time.perf_counter() - t
    return s, before, load1()


# --- the two sides ----------------------------------------------------------------------------------
class Ours:
    def __init__(self, family: str, df, threads: int) -> None:
        import tabsynth

        cls = tabsynth.CTGAN if family == "ctgan" else tabsynth.TVAE
        self.df = df
        self.model = cls(epochs=1, batch_size=BATCH_SIZE, seed=0, verbose=False, device="cpu")

    def fit(self) -> None:
        self.model.fit(self.df)

    def prepare_loop(self) -> None:
        import torch

        self.model.set_params(epochs=1)
        self.data = torch.from_numpy(self.model.transformer_.transform(self.df)).to(self.model.device_)

    def train_epoch(self) -> None:
        self.model._train(self.data)

    def sample(self) -> None:
        out = self.model.sample(SAMPLE_ROWS, seed=1)
        assert len(out) == SAMPLE_ROWS


class Theirs:
    def __init__(self, family: str, df, threads: int) -> None:
        import ctgan
        import ctgan.synthesizers.ctgan as ctgan_mod
        import ctgan.synthesizers.tvae as tvae_mod

        self.family = family
        self.mod = ctgan_mod if family == "ctgan" else tvae_mod
        self.original_transformer = self.mod.DataTransformer
        self.df = df
        self.discrete = discrete_columns(df)
        if family == "ctgan":
            self.model = ctgan.CTGAN(epochs=1, batch_size=BATCH_SIZE, enable_gpu=False)
        else:
            self.model = ctgan.TVAE(epochs=1, batch_size=BATCH_SIZE, enable_gpu=False)
        self.model.set_random_state(0)
        self.reused_calls = 0

    def _transformer(self) -> Any:
        return self.model._transformer if self.family == "ctgan" else self.model.transformer

    def fit(self) -> None:
        assert self.mod.DataTransformer is self.original_transformer
        self.model.fit(self.df, discrete_columns=self.discrete)

    def prepare_loop(self) -> None:
        """A DataTransformer stand-in: the fitted encoder's state, fit a no-op, transform cached."""
        fitted = self._transformer()
        encoded = fitted.transform(self.df)
        owner = self

        class Reused(self.original_transformer):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:  # noqa: D107 - copy the fitted state, fit nothing
                self.__dict__.update(fitted.__dict__)
                owner.reused_calls += 1

            def fit(self, *a: Any, **k: Any) -> None:
                return None

            def transform(self, data: Any) -> Any:
                assert data is owner.df
                return encoded

        self.reused = Reused

    def train_epoch(self) -> None:
        calls = self.reused_calls
        self.mod.DataTransformer = self.reused
        try:
            self.model.fit(self.df, discrete_columns=self.discrete)
        finally:
            self.mod.DataTransformer = self.original_transformer
        assert self.reused_calls == calls + 1, "their fit did not use the pre-fitted encoder"

    def sample(self) -> None:
        out = self.model.sample(SAMPLE_ROWS)
        assert len(out) == SAMPLE_ROWS


# --- measurement ----------------------------------------------------------------------------------------
def pairs(ours: Callable[[], Any], theirs: Callable[[], Any], rounds: int, label: str) -> list[dict[str, float]]:
    out = []
    for r in range(rounds):
        o, o_l0, o_l1 = timed(ours)
        t, t_l0, t_l1 = timed(theirs)
        row = {"round": r + 1, "ours_s": o, "theirs_s": t, "ratio": o / t, "load_before": o_l0,
               "load_between": o_l1, "load_after": t_l1}
        out.append(row)
        print(f"  {label} round {r + 1}: ours {o:.2f}s theirs {t:.2f}s ratio {o / t:.3f} "
              f"(load {o_l0:.2f} -> {t_l1:.2f})", file=sys.stderr, flush=True)
    return out


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    ratios = [r["ratio"] for r in rows]
    return {"median_ratio": statistics.median(ratios), "min_ratio": min(ratios), "max_ratio": max(ratios),
            "median_ours_s": statistics.median(r["ours_s"] for r in rows),
            "median_theirs_s": statistics.median(r["theirs_s"] for r in rows), "n": len(rows),
            # best-case times are the least disturbed by other jobs' load; their ratio is a cross-check
            "min_ours_s": min(r["ours_s"] for r in rows), "min_theirs_s": min(r["theirs_s"] for r in rows),
            "ratio_of_min_times": min(r["ours_s"] for r in rows) / min(r["theirs_s"] for r in rows),
            "load_first": rows[0]["load_before"], "load_last": rows[-1]["load_after"]}


#: The dense matrix products (what a layer's weights cost); everything else is activations, losses,
#: sampling, optimiser and Python overhead.
GEMM_OPS = {"aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm", "aten::_addmm_activation"}
#: Work either library does by the method's definition besides the matrix products: the Adam update of
#: every parameter and the Gaussian noise fed to the generator / decoder.
FLOOR_OPS = GEMM_OPS | {"aten::_fused_adam_", "aten::normal_"}


def gemm_seconds(fn: Callable[[], Any]) -> dict[str, float]:
    """Wall seconds ``fn()`` spends inside matrix products (torch.profiler self time of the GEMM ops) and
    the profiled total: the part of our time no loop or decoding change can remove at these layer sizes."""
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    total = time.perf_counter() - t
    ops = prof.key_averages()
    gemm = sum(e.self_cpu_time_total for e in ops if e.key in GEMM_OPS) / 1e6
    floor = sum(e.self_cpu_time_total for e in ops if e.key in FLOOR_OPS) / 1e6
    return {"gemm_s": gemm, "floor_s": floor, "profiled_total_s": total}


def run_family(family: str, df, args: argparse.Namespace) -> dict[str, Any]:
    ours, theirs = Ours(family, df, args.threads), Theirs(family, df, args.threads)
    print(f"{family}: setup fits (epochs=1)", file=sys.stderr, flush=True)
    setup = pairs(ours.fit, theirs.fit, 1, f"{family} setup fit")
    ours.prepare_loop()
    theirs.prepare_loop()
    res: dict[str, Any] = {"setup_fit_1epoch": setup}
    res["train_epoch"] = pairs(ours.train_epoch, theirs.train_epoch, args.rounds, f"{family} train_epoch")
    if args.fit_rounds:
        res["fit_1epoch"] = pairs(ours.fit, theirs.fit, args.fit_rounds, f"{family} fit_1epoch")
    res["sample_100k"] = pairs(ours.sample, theirs.sample, args.rounds, f"{family} sample_100k")
    res["summary"] = {m: summarise(res[m]) for m in ("train_epoch", "fit_1epoch", "sample_100k") if m in res}
    res["gemm"] = {"train_epoch": gemm_seconds(ours.train_epoch), "sample_100k": gemm_seconds(ours.sample)}
    return res


# --- report -----------------------------------------------------------------------------------------------
def checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for fam, res in results.items():
        for metric, s in res["summary"].items():
            goal = TARGETS.get((fam, metric))
            gemm = res.get("gemm", {}).get(metric, {}).get("gemm_s")
            floor = res.get("gemm", {}).get(metric, {}).get("floor_s")
            goal_s = None if goal is None else goal * s["median_theirs_s"]
            out.append({"family": fam, "metric": metric, **s, "goal": goal, "goal_s": goal_s, "ours_gemm_s": gemm,
                        "ours_floor_s": floor,
                        "pass": None if goal is None else bool(s["median_ratio"] <= goal)})
    return out


def build_markdown(args: argparse.Namespace, results: dict[str, Any], chk: list[dict[str, Any]],
                   load_start: tuple[float, ...], load_end: tuple[float, ...] | None, rows: int) -> str:
    summary = md_table(
        ["family", "metric", "pairs", "ours median (s)", "theirs median (s)", "median ratio", "min", "max",
         "min(ours)/min(theirs)", "goal", "goal time (s)", "ours GEMM (s)", "ours GEMM+Adam+noise (s)", "result"],
        [[c["family"], c["metric"], c["n"], c["median_ours_s"], c["median_theirs_s"], c["median_ratio"],
          c["min_ratio"], c["max_ratio"], c["ratio_of_min_times"], "-" if c["goal"] is None else f"<= {c['goal']:g}",
          c.get("goal_s"), c.get("ours_gemm_s"), c.get("ours_floor_s"),
          "-" if c["pass"] is None else ("PASS" if c["pass"] else "FAIL")] for c in chk])
    detail = []
    for fam, res in results.items():
        for metric in ("setup_fit_1epoch", "train_epoch", "fit_1epoch", "sample_100k"):
            if metric not in res:
                continue
            detail.append([[fam, metric, r["round"], r["ours_s"], r["theirs_s"], r["ratio"], r["load_before"],
                            r["load_after"]] for r in res[metric]])
    per_round = md_table(["family", "metric", "round", "ours (s)", "theirs (s)", "ours/theirs", "load before",
                          "load after"], [r for block in detail for r in block])
    la = lambda t: "-" if t is None else " / ".join(f"{v:.2f}" for v in t)  # noqa: E731
    what = "\n".join(f"- `{k}`: {v}" for k, v in WHAT.items())
    return "\n\n".join([
        f"# Interleaved speed ratios, tabsynth vs SDV ctgan, Adult ({rows} rows; CPU, {args.threads} threads; "
        f"batch {BATCH_SIZE})",
        f"Load average (1/5/15 min) at start: {la(load_start)}; at end: {la(load_end)} ({os.cpu_count()} CPUs).",
        "## Summary (ratio = ours/theirs; PASS/FAIL on the median ratio)",
        summary,
        "## What is timed",
        what + "\n- `setup_fit_1epoch`: the first whole `fit(df)`, epochs=1, of each side (warm-up, includes "
        "first-call overheads); not used for targets.\n\nEach pair is timed back to back (ours first, then "
        "theirs) in one process; ratios are per pair. Theirs `train_epoch` also includes input validation and "
        "building their data sampler, networks and optimizers; ours includes building the optimizers and the "
        "condition sampler (our networks are built once, in the setup fit). `min(ours)/min(theirs)` (info) is "
        "the ratio of the best times, the least disturbed by other jobs; PASS/FAIL uses the median pair ratio.\n\n"
        "`goal time` = goal x theirs median: the time ours would have to reach. `ours GEMM` = the seconds our "
        "timed call spends inside matrix products (one extra profiled call; torch.profiler self time of "
        f"{', '.join(sorted(GEMM_OPS))}): the networks' arithmetic at the issue's layer sizes, batch and fp32, "
        "which no change to the loop or to decoding removes. Where it exceeds the goal time, the goal cannot be "
        "met at these sizes and precision. `GEMM+Adam+noise` adds the other work the method itself fixes "
        f"({', '.join(sorted(FLOOR_OPS - GEMM_OPS))}): the Adam update of every parameter and the Gaussian noise "
        "the generator or decoder is fed; the rest of our time (activations, losses, category draws, decoding to "
        "a DataFrame, Python) is what a faster implementation can still cut.",
        "## Per round",
        per_round,
    ])


def rerender(src: Path, out: Path) -> int:
    import json

    payload = json.loads(src.read_text())
    results = payload["results"]
    for res in results.values():
        res["summary"] = {m: summarise(res[m]) for m in ("train_epoch", "fit_1epoch", "sample_100k") if m in res}
    payload["checks"] = checks(results)
    run_args = argparse.Namespace(**payload["args"])
    md = build_markdown(run_args, results, payload["checks"], tuple(payload["loadavg_start"]),
                        tuple(payload["loadavg_end"]), payload["rows"])
    write_results(out, payload, md)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved pairs per timed item (default 5)")
    ap.add_argument("--fit-rounds", type=int, default=2,
                    help="interleaved pairs of whole 1-epoch fits, preprocessing included (default 2; 0 skips)")
    ap.add_argument("--threads", type=int, default=THREADS, help="torch/BLAS/OpenMP threads (default 2)")
    ap.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    ap.add_argument("--rows", type=int, default=None, help="random subsample of Adult (default all rows)")
    ap.add_argument("--out", type=Path, default=RESULTS / "speed_interleaved",
                    help="output path without suffix (default %(default)s)")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="re-render the summary and Markdown of a saved run's JSON (no timing) to --out")
    args = ap.parse_args(argv)
    if args.from_json is not None:
        return rerender(args.from_json, args.out)
    if args.rounds < 1 or args.fit_rounds < 0 or args.threads < 1:
        ap.error("--rounds and --threads must be >= 1, --fit-rounds >= 0")

    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    set_threads(args.threads)
    load_start = os.getloadavg()
    df = load_adult(args.rows)
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    payload: dict[str, Any] = {}
    for fam in args.families:
        results[fam] = run_family(fam, df, args)
        chk = checks(results)
        payload = {"benchmark": "speed_interleaved", "args": {k: (str(v) if isinstance(v, Path) else v)
                                                             for k, v in vars(args).items()},
                   "environment": environment(), "rows": len(df), "what_is_timed": WHAT,
                   "loadavg_start": load_start, "loadavg_end": os.getloadavg(), "results": results, "checks": chk,
                   "elapsed_s": time.perf_counter() - t0}
        md = build_markdown(args, results, chk, load_start, None, len(df))
        write_results(args.out, payload, md)
    md = build_markdown(args, results, payload["checks"], load_start, payload["loadavg_end"], len(df))
    write_results(args.out, payload, md)
    for c in payload["checks"]:
        print(f"{c['family']:5s} {c['metric']:11s} median {fmt(c['median_ratio'])} "
              f"[{fmt(c['min_ratio'])}, {fmt(c['max_ratio'])}] "
              f"{'-' if c['pass'] is None else ('PASS' if c['pass'] else 'FAIL')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
