#!/usr/bin/env python
"""tabsynth CTGAN/TVAE vs SDV's ``ctgan`` package (CTGAN, TVAE) on bundled Adult, side by side.

Every fit runs in its own child process (this script re-invoked with --child) on CPU with torch
and BLAS limited to --threads (default 2) threads, so the fit's peak RSS (ru_maxrss of the child, read right after
fit) is comparable. Both sides use the same epochs, batch size 500 and the paper's network sizes
(each library's defaults; identical). Per model: fit seconds, seconds per epoch (fit / epochs,
nothing subtracted; the encoder's fit+transform is also shown separately), peak RSS, seconds to
sample 100,000 rows, and on 32,561 synthetic rows: sdmetrics QualityReport score (default
thresholds, and an all-pairs variant), TSTR ROC AUC for ``income`` on ``adult_test``
(HistGradientBoostingClassifier, native categorical handling, the real table's category lists for
every model), and the share of rows inside the real numeric ranges. A reference row compares the
real training table with the real holdout (adult_test), and a train-on-real row gives the TSTR
ceiling. Targets (issue 3) are checked as ratios ours/theirs, because the machine is noisy.

    .venv/bin/python benchmarks/compare_models.py --epochs 30
    .venv/bin/python benchmarks/compare_models.py --epochs 30 300 --models ours-ctgan theirs-ctgan
    .venv/bin/python benchmarks/compare_models.py --epochs 300 --seeds 0 1 2 --out results/cm_300
    .venv/bin/python benchmarks/compare_models.py --merge results/cm_a.json results/cm_b.json

With several ``--seeds`` (each fit seeded on both sides), the targets compare the means over seeds
and show each side's range; ``--merge`` rebuilds the tables from earlier runs' JSON (e.g. the peer's
fits, which do not change with tabsynth's code, run once and merged with later runs of ours).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (RESULTS, THREADS, Timer, discrete_columns, environment, fmt, git_state,  # noqa: E402
                     load_adult, md_table, peak_rss_mb, quality, ranges, set_threads, tstr_auc, write_results)

MODELS = ("ours-ctgan", "theirs-ctgan", "ours-tvae", "theirs-tvae")
BATCH_SIZE = 500
SAMPLE_SPEED_ROWS = 100_000
EVAL_ROWS = 32_561
# (metric, family) -> (comparison, goal) ; ratio goals are ours/theirs
TARGETS = {
    ("s_per_epoch", "ctgan"): ("ratio<=", 0.33),
    ("s_per_epoch", "tvae"): ("ratio<=", 0.5),
    ("sample_100k_s", "ctgan"): ("ratio<=", 0.2),
    ("sample_100k_s", "tvae"): ("ratio<=", 0.2),
    ("peak_rss_mb", "ctgan"): ("ratio<=", 1.0),
    ("peak_rss_mb", "tvae"): ("ratio<=", 1.0),
    ("quality", "ctgan"): ("ours>=theirs", None),
    ("quality", "tvae"): ("ours>=theirs", None),
    ("tstr_auc", "ctgan"): ("ours>=theirs", None),
    ("tstr_auc", "tvae"): ("ours>=theirs", None),
}
INFO = ("quality_allpairs", "fit_s", "preprocess_s", "train_s_per_epoch")
#: Timings and memory: taken from the --speed-seed fits (run on a quiet machine), not averaged with
#: extra seeds that may have run side by side with other jobs.
TIMING = ("s_per_epoch", "sample_100k_s", "peak_rss_mb", "fit_s", "preprocess_s", "train_s_per_epoch")


# --- child: one fit ---------------------------------------------------------------------------------
def _timed_subclass(base: type, record: dict[str, float]) -> type:
    """A subclass of an encoder class whose fit/transform add their wall time to ``record``."""

    class Timed(base):  # type: ignore[misc, valid-type]
        def fit(self, *a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return super().fit(*a, **k)
            finally:
                record["preprocess_fit_s"] = record.get("preprocess_fit_s", 0.0) + time.perf_counter() - t

        def transform(self, *a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return super().transform(*a, **k)
            finally:
                record["preprocess_transform_s"] = (record.get("preprocess_transform_s", 0.0)
                                                    + time.perf_counter() - t)

    Timed.__name__ = Timed.__qualname__ = base.__name__
    return Timed


def make_model(name: str, epochs: int, record: dict[str, float], seed: int = 0) -> Any:
    if name.startswith("ours-"):
        import tabsynth
        import tabsynth.models.base as base_mod

        base_mod.TableTransformer = _timed_subclass(base_mod.TableTransformer, record)
        cls = tabsynth.CTGAN if name == "ours-ctgan" else tabsynth.TVAE
        return cls(epochs=epochs, batch_size=BATCH_SIZE, seed=seed, verbose=False, device="cpu")
    import ctgan
    import ctgan.synthesizers.ctgan as ctgan_mod
    import ctgan.synthesizers.tvae as tvae_mod

    mod = ctgan_mod if name == "theirs-ctgan" else tvae_mod
    mod.DataTransformer = _timed_subclass(mod.DataTransformer, record)
    if name == "theirs-ctgan":
        model = ctgan.CTGAN(epochs=epochs, batch_size=BATCH_SIZE, enable_gpu=False)
    else:
        model = ctgan.TVAE(epochs=epochs, batch_size=BATCH_SIZE, cuda=False)
    model.set_random_state(seed)
    return model


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import torch

    set_threads(spec.get("threads", THREADS))
    seed = spec.get("seed", 0)
    torch.manual_seed(seed)
    np.random.seed(seed)
    name, epochs = spec["model"], spec["epochs"]
    code = git_state()  # the tabsynth code this child imports (others may edit it during a long run)
    df = load_adult(spec.get("rows"))
    discrete = discrete_columns(df)
    record: dict[str, float] = {}
    model = make_model(name, epochs, record, seed)
    rss_before = peak_rss_mb()
    load_start = os.getloadavg()[0]
    with Timer() as fit:
        if name.startswith("ours-"):
            model.fit(df)
        else:
            model.fit(df, discrete_columns=discrete)
    rss_fit = peak_rss_mb()
    load_end = os.getloadavg()[0]
    ours = name.startswith("ours-")
    with Timer() as samp:
        big = model.sample(SAMPLE_SPEED_ROWS, seed=1) if ours else model.sample(SAMPLE_SPEED_ROWS)
    assert len(big) == SAMPLE_SPEED_ROWS
    del big
    rss_sample = peak_rss_mb()
    synth = model.sample(EVAL_ROWS, seed=2) if ours else model.sample(EVAL_ROWS)
    if spec.get("keep_samples"):
        path = Path(spec["keep_samples"]) / f"{name}_e{epochs}_s{seed}.csv.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        synth.to_csv(path, index=False)

    import tabsynth as ts

    test = ts.datasets.load("adult_test")
    with Timer() as ev:
        q = quality(df, synth)
        auc = tstr_auc(synth, df, test)
        rng = ranges(df, synth)
    prep = record.get("preprocess_fit_s", 0.0) + record.get("preprocess_transform_s", 0.0)
    return {"model": name, "epochs": epochs, "seed": seed, "rows": len(df), "fit_s": fit.seconds,
            "s_per_epoch": fit.seconds / epochs, "preprocess_s": prep,
            "preprocess_fit_s": record.get("preprocess_fit_s"),
            "preprocess_transform_s": record.get("preprocess_transform_s"),
            "train_s_per_epoch": (fit.seconds - prep) / epochs,
            "rss_before_fit_mb": rss_before, "peak_rss_mb": rss_fit,
            "fit_rss_delta_mb": rss_fit - rss_before, "peak_rss_after_sampling_mb": rss_sample,
            "sample_100k_s": samp.seconds, "eval_rows": len(synth), **q, "tstr_auc": auc, **rng,
            "eval_s": ev.seconds, "torch_threads": torch.get_num_threads(),
            **code, "loadavg_1min_fit_start": load_start, "loadavg_1min_fit_end": load_end}


# --- parent -------------------------------------------------------------------------------------------
def reference(rows: int | None) -> dict[str, Any]:
    """Real training table vs the real holdout, and train-on-real TSTR."""
    import tabsynth as ts

    df = load_adult(rows)
    test = ts.datasets.load("adult_test")
    with Timer() as ev:
        out = {"model": "real (adult_train vs adult_test)", "rows": len(df), "eval_rows": len(test),
               **quality(df, test), "tstr_auc": tstr_auc(df, df, test), **ranges(df, test)}
    out["eval_s"] = ev.seconds
    return out


def spawn(spec: dict[str, Any], log: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec), "--child-out",
               str(result)]
        with open(log, "a") as fh:
            fh.write(f"\n=== {spec} ===\n")
            fh.flush()
            n = str(spec.get("threads", THREADS))
            env = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        if proc.returncode != 0 or not result.exists():
            return {"model": spec["model"], "epochs": spec["epochs"], "error": f"child exit {proc.returncode}; see {log}"}
        return json.loads(result.read_text())


def family(name: str) -> str:
    return name.split("-", 1)[1]


def build_markdown(args: argparse.Namespace, results: list[dict], ref: dict | None) -> tuple[str, list[dict]]:
    cols = [("fit (s)", "fit_s"), ("s/epoch", "s_per_epoch"), ("prep (s)", "preprocess_s"),
            ("train s/epoch", "train_s_per_epoch"), ("peak RSS MB", "peak_rss_mb"),
            ("RSS fit delta MB", "fit_rss_delta_mb"), ("sample 100k (s)", "sample_100k_s"),
            ("quality", "quality"), ("shapes", "column_shapes"), ("pair trends", "column_pair_trends"),
            ("quality all-pairs", "quality_allpairs"), ("pair trends all-pairs", "column_pair_trends_allpairs"),
            ("TSTR AUC", "tstr_auc"), ("rows in range", "rows_in_range"),
            ("neg capital-gain", "negative[capital-gain]"), ("neg capital-loss", "negative[capital-loss]"),
            ("load at fit end", "loadavg_1min_fit_end")]
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["model"], r["epochs"], r.get("seed", 0), r["error"]] + [None] * (len(cols) - 1))
            continue
        rows.append([r["model"], r["epochs"], r.get("seed", 0)] + [r.get(k) for _, k in cols])
    by, spread = aggregate(results)
    for (model, epochs), m in by.items():
        if m["n_seeds"] > 1:
            rows.append([model, epochs, f"mean of {m['n_seeds']}"] + [m.get(k) for _, k in cols])
    if ref is not None:
        rows.append([ref["model"], "-", "-"] + [ref.get(k) for _, k in cols])
    main = md_table(["model", "epochs", "seed"] + [c for c, _ in cols], rows)

    speed_seed = args.speed_seed
    timed = {(r["model"], r["epochs"]): r for r in results if "error" not in r and r.get("seed", 0) == speed_seed}

    def pick(model: str, epochs: int, metric: str) -> tuple[Any, str, list[float] | None]:
        """(value, seeds label, range) of one side's metric: timings from the speed seed, the rest averaged."""
        if metric in TIMING and (model, epochs) in timed:
            return timed[(model, epochs)].get(metric), f"seed {speed_seed}", None
        m = by[(model, epochs)]
        return m.get(metric), str(m["n_seeds"]), spread.get((model, epochs, metric))

    checks: list[dict] = []
    for epochs in sorted({e for _, e in by}):
        for fam in ("ctgan", "tvae"):
            o, t = by.get((f"ours-{fam}", epochs)), by.get((f"theirs-{fam}", epochs))
            if o is None or t is None:
                continue
            for (metric, f), (kind, goal) in TARGETS.items():
                if f != fam:
                    continue
                (ov, o_seeds, o_range), (tv, t_seeds, t_range) = (pick(o["model"], epochs, metric),
                                                                  pick(t["model"], epochs, metric))
                if ov is None or tv is None:
                    continue
                if kind == "ratio<=":
                    value = ov / tv
                    ok = value <= goal
                    goal_s = f"ours/theirs <= {goal:g}"
                else:
                    value = ov - tv
                    ok = ov >= tv
                    goal_s = "ours >= theirs"
                checks.append({"family": fam, "epochs": epochs, "metric": metric, "ours": ov, "theirs": tv,
                               "goal": goal_s, "value": value, "pass": bool(ok),
                               "seeds": f"{o_seeds} / {t_seeds}", "ours_range": o_range, "theirs_range": t_range})
            for metric in INFO:
                (ov, o_seeds, o_range), (tv, t_seeds, t_range) = (pick(o["model"], epochs, metric),
                                                                  pick(t["model"], epochs, metric))
                if ov is not None and tv is not None and tv:
                    checks.append({"family": fam, "epochs": epochs, "metric": metric, "ours": ov, "theirs": tv,
                                   "goal": "(info)", "value": ov / tv if metric != "quality_allpairs" else ov - tv,
                                   "pass": None, "seeds": f"{o_seeds} / {t_seeds}", "ours_range": o_range,
                                   "theirs_range": t_range})

    def rng(r: list[float] | None) -> str:
        return "-" if r is None or r[0] == r[1] else f"{fmt(r[0])}-{fmt(r[1])}"

    trows = [[c["family"], c["epochs"], c["metric"], c["seeds"], c["ours"], rng(c.get("ours_range")),
              c["theirs"], rng(c.get("theirs_range")), c["goal"],
              ("ratio " if c["goal"].startswith("ours/") or (c["goal"] == "(info)" and c["metric"] != "quality_allpairs")
               else "diff ") + fmt(c["value"]),
              "-" if c["pass"] is None else ("PASS" if c["pass"] else "FAIL")] for c in checks]
    targets = md_table(["model", "epochs", "metric", "seeds (ours / theirs)", "ours", "ours range", "theirs",
                        "theirs range", "goal", "ours vs theirs", "result"], trows)
    rows_txt = "all" if args.rows is None else str(args.rows)
    md = "\n\n".join([
        f"# tabsynth vs SDV ctgan on Adult (train rows: {rows_txt}; CPU, {args.threads} threads; batch {BATCH_SIZE})",
        main,
        "## Targets (issue 3)",
        targets,
        "Notes: s/epoch = whole `fit` / epochs (encoder fit+transform included); `prep` is the encoder's "
        "fit+transform inside `fit`; `train s/epoch` excludes it. Peak RSS = ru_maxrss of the child right after "
        "`fit` (imports and data included; `RSS fit delta` subtracts the peak before `fit`). Quality = sdmetrics "
        f"QualityReport overall score on {EVAL_ROWS} synthetic rows vs the training table (default thresholds: Column "
        "Pair Trends averages only pairs with real |corr| > 0.5 or association > 0.3); all-pairs = same report "
        "with thresholds 0. TSTR = ROC AUC on adult_test of HistGradientBoostingClassifier(random_state=0) "
        "trained on the synthetic rows (native categorical handling). The reference row compares adult_train "
        "with adult_test (TSTR there = train on real). `load at fit end` = 1-minute load average of the "
        f"machine ({os.cpu_count()} CPUs) when the fit ended: speed ratios are only meaningful at similar load. "
        "With several seeds (both sides seeded alike), quality targets compare the means over seeds (ranges: "
        f"min-max over seeds); timings and memory come from the seed-{args.speed_seed} fits, run "
        "one at a time on a quiet machine (extra seeds may have run alongside other jobs).",
    ])
    return md, checks


def aggregate(results: list[dict]) -> tuple[dict, dict]:
    """Mean of every numeric field per (model, epochs) over its seeds, and the (min, max) of each."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in results:
        if "error" not in r:
            groups.setdefault((r["model"], r["epochs"]), []).append(r)
    means, spread = {}, {}
    for key, rs in groups.items():
        m: dict[str, Any] = {"model": key[0], "epochs": key[1], "n_seeds": len(rs)}
        for field in rs[0]:
            values = [r.get(field) for r in rs]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                m[field] = sum(values) / len(values)
                spread[(key[0], key[1], field)] = [min(values), max(values)]
        means[key] = m
    return means, spread


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, nargs="+", default=[30], help="epoch budgets, e.g. 30 300 (default 30)")
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                    help="models to run, in this order (default all four)")
    ap.add_argument("--rows", type=int, default=None, help="train on a random subsample of Adult (default all)")
    ap.add_argument("--out", type=Path, default=RESULTS / "compare_models",
                    help="output path without suffix; .json, .md and .log are written (default %(default)s)")
    ap.add_argument("--threads", type=int, default=THREADS,
                    help="torch/BLAS threads per fit (default %(default)s; on a loaded 2-core machine 1 is far "
                         "less noisy, OpenMP waits on descheduled threads)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="fit seeds, each model fitted once per seed on both sides (default 0)")
    ap.add_argument("--speed-seed", type=int, default=0,
                    help="the seed whose fits give the timing and memory targets (default %(default)s)")
    ap.add_argument("--merge", type=Path, nargs="+", default=None,
                    help="no fits: rebuild the tables from these earlier JSON results into --out")
    ap.add_argument("--no-reference", action="store_true", help="skip the real-vs-holdout reference row")
    ap.add_argument("--keep-samples", type=Path, default=None,
                    help="folder to write each model's 32,561 evaluation rows to (csv.gz)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        result = run_child(json.loads(args.child))
        Path(args.child_out).write_text(json.dumps(result))
        return 0
    if any(e < 1 for e in args.epochs):
        ap.error("--epochs must be positive")

    set_threads(THREADS)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge:
        return merge(args)
    log = args.out.with_suffix(".log")
    log.write_text("")
    ref = None
    if not args.no_reference:
        ref = reference(args.rows)
        print(f"reference: quality {ref['quality']:.3f}, TSTR {ref['tstr_auc']:.3f}", file=sys.stderr)
    results: list[dict] = []
    t0 = time.perf_counter()
    for epochs, seed, name in [(e, s, m) for e in args.epochs for s in args.seeds for m in args.models]:
        spec = {"model": name, "epochs": epochs, "seed": seed, "rows": args.rows, "threads": args.threads,
                "keep_samples": str(args.keep_samples) if args.keep_samples else None}
        r = spawn(spec, log)
        results.append(r)
        short = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                 if k in ("model", "epochs", "fit_s", "s_per_epoch", "peak_rss_mb", "sample_100k_s",
                          "quality", "tstr_auc", "rows_in_range", "error")}
        print(f"[{time.perf_counter() - t0:7.0f}s] {short}", file=sys.stderr, flush=True)
        md, checks = build_markdown(args, results, ref)
        payload = {"benchmark": "compare_models", "args": {k: (str(v) if isinstance(v, Path) else v)
                                                           for k, v in vars(args).items()
                                                           if not k.startswith("child")},
                   "environment": environment(), "reference": ref, "results": results, "checks": checks}
        args.out.with_suffix(".json").write_text(json.dumps(payload, default=str))  # partial, rewritten below
    md, checks = build_markdown(args, results, ref)
    write_results(args.out, payload | {"checks": checks}, md)
    return 0 if all("error" not in r for r in results) else 1


def merge(args: argparse.Namespace) -> int:
    """Tables from earlier runs' JSON files; a later file's (model, epochs, seed) replaces an earlier one's."""
    results: dict[tuple, dict] = {}
    ref, sources = None, []
    for path in args.merge:
        payload = json.loads(path.read_text())
        ref = ref or payload.get("reference")
        sources.append({"file": str(path), "args": payload.get("args"), "environment": payload.get("environment")})
        for r in payload["results"]:
            results[(r["model"], r["epochs"], r.get("seed", 0))] = r
    order = {m: i for i, m in enumerate(MODELS)}
    rows = sorted(results.values(), key=lambda r: (r["epochs"], r.get("seed", 0), order.get(r["model"], 9)))
    md, checks = build_markdown(args, rows, ref)
    md += "\n\nMerged from: " + ", ".join(f"`{Path(s['file']).name}`" for s in sources) + "."
    write_results(args.out, {"benchmark": "compare_models", "merged_from": sources, "reference": ref,
                             "results": rows, "checks": checks}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
