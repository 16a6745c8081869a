#!/usr/bin/env python
"""Quick DP sweep on bundled Adult (public data; docs/privacy.md rule 14): fit one DP config, print quality + TSTR.

    PYTHONPATH=. python benchmarks/dp_sweep.py tvae 1 '{"lr": 0.01}' ['{"batch_size": 4000}' ...]

Each JSON is one config (keyword arguments of tabsynth.TVAE/CTGAN); results append to
``--log`` (JSON lines). Quality = sdmetrics QualityReport overall score (default thresholds),
TSTR = ROC AUC on adult_test, as in dp_quality.py (32,561 synthetic rows).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import THREADS, load_adult, set_threads, sdv_metadata, tstr_auc  # noqa: E402


def score(real, synth) -> dict:
    from sdmetrics.reports.single_table import QualityReport

    rep = QualityReport()
    rep.generate(real, synth[list(real.columns)], sdv_metadata(real), verbose=False)
    props = rep.get_properties().set_index("Property")["Score"]
    return {"quality": float(rep.get_score()), "shapes": float(props["Column Shapes"]),
            "pairs": float(props["Column Pair Trends"])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=["tvae", "ctgan"])
    ap.add_argument("epsilon", type=float)
    ap.add_argument("configs", nargs="+")
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, nargs="+", default=[0], help="one fit per seed and config")
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--log", type=Path, default=HERE / "results" / "dp_sweep.jsonl")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    set_threads(args.threads)
    import tabsynth

    real = load_adult()
    test = tabsynth.datasets.load("adult_test")
    cls = tabsynth.TVAE if args.model == "tvae" else tabsynth.CTGAN
    for cfg, seed in ((c, s) for c in args.configs for s in args.seed):
        kw = json.loads(cfg)
        model = cls(**kw, epsilon=args.epsilon, delta=args.delta, seed=seed, verbose=False, device="cpu")
        t = time.perf_counter()
        model.fit(real)
        fit_s = time.perf_counter() - t
        synth = model.sample(len(real), seed=2)
        spent = model.privacy_spent()
        tr = spent.parts.get("training")
        rec = {"model": args.model, "epsilon": args.epsilon, "seed": seed, "config": kw, **score(real, synth),
               "tstr_auc": tstr_auc(synth, real, test), "epsilon_spent": spent.epsilon, "fit_s": round(fit_s, 1),
               "sigma": tr.details.get("noise_multiplier") if tr else None,
               "steps": tr.details.get("steps") if tr else None,
               "parts": {k: round(p.epsilon, 4) for k, p in spent.parts.items()}}
        print(json.dumps(rec), flush=True)
        args.log.parent.mkdir(parents=True, exist_ok=True)
        with open(args.log, "a") as fh:
            fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
