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
    p.add_argument("--max-plots", type=int, default=20, help="distribution plots of the least faithful columns "
                                                             "(default 20)")
    p.add_argument("--n-attacks", type=int, default=2000, help="attacks per privacy test (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    two = p.add_argument_group("two tables", "--real, --synthetic and --holdout are event tables (several rows per "
                                             "person) of the persons in the --*subjects tables, linked by --key")
    two.add_argument("--key", help="the person id column linking each event table to its person table")
    two.add_argument("--subjects", help="the real person table (one row per person); without it the persons have "
                                        "no columns besides the key")
    two.add_argument("--synthetic-subjects", help="the synthetic person table (needed with --subjects)")
    two.add_argument("--holdout-subjects", help="the holdout person table (needed with --subjects and --holdout)")
    two.add_argument("--order-by", help="the events' sequence column (default: the row order within a person)")
    two.add_argument("--order-bounds", metavar="LOWER:UPPER",
                     help="person columns the --order-by value of every event stays between (either may be empty)")
    two.add_argument("--non-decreasing", metavar="COLUMN", action="append",
                     help="an event column declared never to fall within a person (checked); repeat for several")
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
    title = f"Synthetic data report: {Path(args.synthetic).name} vs {Path(args.real).name}"
    common = dict(holdout=None, target=args.target, profile=args.profile, model=model, max_rows=args.max_rows,
                  max_plots=args.max_plots, seed=args.seed, n_attacks=args.n_attacks, title=title)
    if getattr(args, "key", None) is not None:
        from tabsynth.report import evaluate_sequences

        real, synthetic, common["holdout"], bounds = _pairs(args)
        report = evaluate_sequences(real, synthetic, order_bounds=bounds, non_decreasing=args.non_decreasing,
                                    **common)
    else:
        _refuse_two_table_options(args)
        common["holdout"] = read_table(args.holdout) if args.holdout else None
        report = evaluate(read_table(args.real), read_table(args.synthetic), metadata=args.metadata, **common)
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


_TWO_TABLE_OPTIONS = ("subjects", "synthetic_subjects", "holdout_subjects", "order_by", "order_bounds",
                      "non_decreasing")


def _refuse_two_table_options(args: argparse.Namespace) -> None:
    given = [f"--{o.replace('_', '-')}" for o in _TWO_TABLE_OPTIONS if getattr(args, o, None) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)} describe event tables: name their person id column with --key")


def _pairs(args: argparse.Namespace):
    """The real, synthetic and holdout person + event pairs and the order bounds from the options."""
    from tabsynth.datasets import Sequences
    from tabsynth.io import read_table

    if args.metadata:
        raise ConfigError("--metadata is not taken with --key (the kinds of both tables are detected); drop it")
    if args.subjects is not None and (args.synthetic_subjects is None
                                      or (args.holdout is not None and args.holdout_subjects is None)):
        raise ConfigError("with --subjects give the person table of every event table: --synthetic-subjects, and "
                          "--holdout-subjects when --holdout is given")
    if args.subjects is None and (args.synthetic_subjects is not None or args.holdout_subjects is not None):
        raise ConfigError("--synthetic-subjects and --holdout-subjects need --subjects, the real person table")
    bounds = None
    if args.order_bounds is not None:
        if ":" not in args.order_bounds:
            raise ConfigError(f"--order-bounds {args.order_bounds!r}: write LOWER:UPPER person columns, either side "
                              "may be empty, e.g. --order-bounds :death_date")
        bounds = tuple(part or None for part in args.order_bounds.split(":", 1))

    def pair(events_path: str | None, subjects_path: str | None):
        if events_path is None:
            return None
        events = read_table(events_path)
        if subjects_path is not None:
            subjects = read_table(subjects_path)
        elif args.key in events.columns:
            subjects = events[[args.key]].drop_duplicates()
        else:
            raise ConfigError(f"--key {args.key!r} is not a column of {events_path}; name the person id column")
        return Sequences(subjects, events, args.key, args.order_by)

    return (pair(args.real, args.subjects), pair(args.synthetic, args.synthetic_subjects),
            pair(args.holdout, args.holdout_subjects), bounds)
