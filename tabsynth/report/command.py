"""``tabsynth report``: the fidelity / utility / privacy-risk report from table files.

The CLI owner wires it in with ``add_parser(subparsers)`` and ``COMMANDS["report"] = run``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tabsynth.errors import ConfigError


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report", help="compare a synthetic table with the real one (HTML + JSON report)",
        description="Write a fidelity, utility and privacy-risk report comparing a synthetic table with the real "
                    "table it was made from. Also writes the JSON beside the HTML.")
    p.add_argument("--real", required=True, help="the real (training) table: .csv, .csv.gz or .parquet")
    p.add_argument("--synthetic", required=True, help="the synthetic table, same columns as --real")
    p.add_argument("--holdout", help="real rows NOT used to make the synthetic table (enables utility and the "
                                     "privacy attacks)")
    p.add_argument("--target", help="column to predict for the utility section (needs --holdout)")
    p.add_argument("--model", help="the model file (.tsyn) that made --synthetic: its differential-privacy "
                                   "statement fills the formal-privacy section")
    p.add_argument("--metadata", help="metadata JSON (tabsynth or SDV format); detected from --real when omitted")
    p.add_argument("--profile", choices=["healthcare", "finance"], help="default column roles and wording")
    p.add_argument("--max-rows", type=int, default=10_000, help="subsample larger tables to this many rows "
                                                                "(default 10000)")
    p.add_argument("--n-attacks", type=int, default=2000, help="attacks per privacy test (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("-o", "--output", default="report.html", help="HTML file to write (default report.html); the "
                                                                 "JSON goes beside it with suffix .json")
    return p


def run(args: argparse.Namespace) -> None:
    from tabsynth.io import read_table
    from tabsynth.report import evaluate

    out = Path(args.output)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--output {args.output}: give an .html file name (the .json is written beside it)")
    if args.target and not args.holdout:
        raise ConfigError(f"--target {args.target} needs --holdout: utility is measured on real rows the "
                          "generator never saw; pass them with --holdout FILE, or drop --target")
    model = None
    if args.model:
        from tabsynth.models import load

        model = load(args.model)
    real = read_table(args.real)
    synthetic = read_table(args.synthetic)
    holdout = read_table(args.holdout) if args.holdout else None
    report = evaluate(real, synthetic, holdout=holdout, target=args.target, metadata=args.metadata,
                      profile=args.profile, model=model, max_rows=args.max_rows, seed=args.seed,
                      n_attacks=args.n_attacks,
                      title=f"Synthetic data report: {Path(args.synthetic).name} vs {Path(args.real).name}")
    report.to_html(out)
    json_path = out.with_suffix(".json")
    report.to_json(json_path)
    scores = ", ".join(f"{k} {'n/a' if v is None else f'{v:.2f}'}" for k, v in report.scores.items())
    verdicts = ", ".join(f"{k} {v}" for k, v in report.verdicts.items())
    formal = report.to_dict()["formal_guarantee"]
    privacy = (f"epsilon {formal['epsilon']:.3g}, delta {formal['delta']:.3g}" if formal["is_dp"] else
               "none (trained without differential privacy)" if formal["status"] == "none" else
               "not known (pass --model to report the model's guarantee)")
    print(f"wrote {out} and {json_path}\nscores: {scores}\nverdicts: {verdicts}\nformal privacy: {privacy}")
