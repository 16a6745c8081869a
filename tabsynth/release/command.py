"""``tabsynth release``, ``tabsynth ledger`` and ``tabsynth verify``.

The CLI owner wires each in with its ``add_*_parser(subparsers)`` and ``COMMANDS[name] = run_*``;
``add_parser`` / ``run`` add and dispatch all three at once (``run`` reads ``args.command``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tabsynth.argtypes import number, positive_int
from tabsynth.errors import ConfigError
from tabsynth.models.registry import model_names
from tabsynth.public_domains import add_public_domain_args, public_metadata
from tabsynth.threads import add_threads_arg, use_threads

__all__ = ["add_parser", "add_release_parser", "add_ledger_parser", "add_two_table_args", "add_verify_parser",
           "order_bounds", "run", "run_release", "run_ledger", "run_verify", "COMMANDS"]


# --- parsers ----------------------------------------------------------------------------------
def add_release_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "release", help="make a DP synthetic release under a privacy budget ledger",
        description="Reserve the privacy budget in the ledger (refused before any training when it does not fit), "
                    "fit a model in differential-privacy mode, sample, and write a release folder: public/ (data, "
                    "model card, manifest) and internal/ (the custodian-only report).")
    p.add_argument("data", help="the private table (.csv, .csv.gz, .parquet)")
    p.add_argument("--epsilon", type=number, required=True, help="privacy budget this release spends (> 0)")
    p.add_argument("--delta", type=number,
                   help="delta this release may spend, at most 1e-5 (default: the budget's delta in proportion to "
                        "--epsilon, at most 1e-5; the fit spends at most min(that, n_hat^-1.5) for the noisy row "
                        "count n_hat)")
    p.add_argument("--ledger", required=True, help="privacy ledger file (SQLite, e.g. budget.db)")
    p.add_argument("--dataset-id", required=True, help="name of the source table in the ledger (e.g. adult-2026)")
    p.add_argument("-o", "--output", required=True, help="release folder to create (must not exist or be empty)")
    p.add_argument("--model", choices=model_names(), default="tabularar",
                   help="model family (default tabularar: the strongest under DP on the suite)")
    p.add_argument("--epochs", type=positive_int, help="training epochs (model default)")
    p.add_argument("--batch-size", type=positive_int, help="rows per training step (model default)")
    p.add_argument("--max-grad-norm", type=number, help="DP-SGD clipping norm (model default)")
    p.add_argument("--rows", type=positive_int,
                   help="synthetic rows to release (default: the noisy row count); with --key: persons (default: "
                        "the noisy person count)")
    p.add_argument("--seed", type=int, help="seed for a reproducible run")
    p.add_argument("--metadata", help="column kinds and public domains (metadata JSON); when omitted a CSV's cells "
                                      "are read as text and every column is categorical unless --public-bounds or "
                                      "--public-domain declares it (DP: no kind is read off the cells)")
    p.add_argument("--holdout", help="real rows not used for training, for the internal report")
    p.add_argument("--target", help="column to predict in the internal report's utility section")
    p.add_argument("--no-report", action="store_true", help="skip the internal report")
    p.add_argument("--budget-epsilon", type=number,
                   help="total epsilon budget of --dataset-id, set only when the dataset is new to the ledger "
                        "(creates the ledger file when there is none)")
    p.add_argument("--budget-delta", type=number, help="total delta budget (with --budget-epsilon)")
    add_public_domain_args(p)
    add_two_table_args(p)
    add_threads_arg(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return p


def add_two_table_args(p: argparse.ArgumentParser) -> None:
    """``--key``, ``--subjects``, ``--order-by``, ``--order-kind``, ``--max-events``, ``--order-bounds``."""
    p.add_argument("--key", help="DATA is an event table (several rows per person) linked by this person id column; "
                                 "under DP the person is then the unit of privacy")
    p.add_argument("--subjects", help="the person table of the events (one row per person, with the --key column)")
    p.add_argument("--order-by", help="the events' sequence column (a number or a date; default: the row order)")
    p.add_argument("--order-kind", choices=["number", "datetime"],
                   help="what --order-by (and --order-bounds' columns) hold when read as text, as a CSV is under DP "
                        "(default under DP: number; never read off the cells)")
    p.add_argument("--max-events", type=positive_int,
                   help="most events per person learned (default: the 99th percentile, under DP a noisy one; "
                        "the rest are left out)")
    p.add_argument("--order-bounds", metavar="LOWER:UPPER",
                   help="person columns the --order-by value of every event stays between (either may be empty)")
    p.add_argument("--non-decreasing", metavar="COLUMN", action="append",
                   help="an event column that never falls within a person (a disease stage); repeat for several")


def order_bounds(text: str | None) -> tuple[str | None, str | None] | None:
    """``LOWER:UPPER`` of ``--order-bounds`` as a pair (an empty side is None)."""
    if text is None:
        return None
    if ":" not in text:
        raise ConfigError(f"--order-bounds {text!r}: write LOWER:UPPER person columns, either side may be empty, "
                          "e.g. --order-bounds :death_date")
    lower, upper = text.split(":", 1)
    return lower or None, upper or None


def _two_table_kwargs(args: argparse.Namespace) -> dict:
    """The two-table arguments of :func:`~tabsynth.release.release` from the flags (empty without them)."""
    given = [args.key, args.subjects, args.order_by, args.order_kind, args.max_events, args.order_bounds,
             args.non_decreasing]
    if all(v is None for v in given):
        return {}
    if args.key is None:
        raise ConfigError("--subjects, --order-by, --order-kind, --max-events, --order-bounds and --non-decreasing "
                          "describe an event table: name its person id column with --key")
    if args.public_domain or args.public_bounds or args.holdout or args.target:
        raise ConfigError("--public-domain, --public-bounds, --holdout and --target are not taken with --key; "
                          "declare public domains in the sequence metadata JSON (--metadata) instead")
    from tabsynth.io import read_table

    declared = args.metadata is not None
    return {"key": args.key, "order_by": args.order_by, "max_events": args.max_events,
            "order_kind": args.order_kind or ("number" if args.order_by and not declared else None),
            "order_bounds": order_bounds(args.order_bounds), "n_subjects": args.rows,
            "non_decreasing": args.non_decreasing,
            "subjects": None if args.subjects is None else read_table(args.subjects, text=True)}


def add_ledger_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "ledger", help="show privacy budgets and spends of a ledger",
        description="Print each dataset's budget, spend and remaining budget, and the history of spends.")
    p.add_argument("ledger", help="privacy ledger file (e.g. budget.db)")
    p.add_argument("--dataset-id", help="show only this dataset")
    p.add_argument("--set-budget", nargs=2, type=number, metavar=("EPSILON", "DELTA"),
                   help="set or change the total budget of --dataset-id (never below what is spent)")
    p.add_argument("--person-key", metavar="KEY",
                   help="with --set-budget: the budget is per person, a person being the rows that share the value "
                        "of column KEY (default: per row, or the dataset's unit when it has one)")
    return p


def add_verify_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "verify", help="check a release folder against its manifest",
        description="Check every file of a release folder (or of a shipped public/ folder) against the SHA-256 "
                    "hashes in its manifest. Exit status 2 when a file is missing, extra or altered.")
    p.add_argument("release_dir", help="release folder written by tabsynth release (or its public/ folder)")
    return p


def add_parser(subparsers) -> None:
    """Add all three commands (``release``, ``ledger``, ``verify``)."""
    add_release_parser(subparsers)
    add_ledger_parser(subparsers)
    add_verify_parser(subparsers)


# --- commands ---------------------------------------------------------------------------------
def run_release(args: argparse.Namespace) -> None:
    from tabsynth.io import read_table
    from tabsynth.release.core import release

    if (args.budget_epsilon is None) != (args.budget_delta is None):
        raise ConfigError("give --budget-epsilon and --budget-delta together (the total budget of a new dataset)")
    budget = None if args.budget_epsilon is None else (args.budget_epsilon, args.budget_delta)
    use_threads(args.threads)
    is_new_file = not Path(args.ledger).exists()
    df = read_table(args.data, text=True)  # a CSV's kinds are declared, never inferred from its cells (DP)
    holdout = read_table(args.holdout, text=True) if args.holdout else None
    extra = {}
    if args.batch_size is not None:
        extra["batch_size"] = args.batch_size
    if args.max_grad_norm is not None:
        extra["max_grad_norm"] = args.max_grad_norm
    two = _two_table_kwargs(args)
    metadata = None if two else public_metadata(df, args)
    result = release(df, args.epsilon, args.ledger, args.output, args.model, dataset_id=args.dataset_id,
                     delta=args.delta, n_rows=None if two else args.rows, epochs=args.epochs, seed=args.seed, holdout=holdout,
                     target=args.target, metadata=metadata, report=not args.no_report,
                     verbose=not args.quiet, budget=budget, **two, **extra)
    if is_new_file:
        print(f"created a new privacy ledger {args.ledger}")
    print(f"release {result.release_id}: {result.path}")
    if args.quiet:  # a verbose DP fit has printed it already
        print(f"privacy: {result.privacy}")
    print(f"remaining budget of {result.dataset_id!r}: {result.remaining}")
    print(f"public files: {result.public_dir} (internal report for the custodian only: {result.internal_dir})")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def run_ledger(args: argparse.Namespace) -> None:
    from tabsynth.privacy.ledger import Ledger
    from tabsynth.privacy.unit import unit_label

    ledger = Ledger(args.ledger, create=False)
    if args.person_key is not None and args.set_budget is None:
        raise ConfigError("--person-key goes with --set-budget (it sets the unit the budget is counted in)")
    if args.set_budget is not None:
        if not args.dataset_id:
            raise ConfigError("--set-budget needs --dataset-id")
        unit = None if args.person_key is None else "person"
        b = ledger.set_budget(args.dataset_id, *args.set_budget, unit=unit, key=args.person_key)
        print(f"budget of {args.dataset_id!r} set to {b}")
    budgets = ledger.datasets()
    if args.dataset_id is not None and args.dataset_id not in budgets:
        raise ConfigError(f"dataset {args.dataset_id!r} is not in {args.ledger} "
                          f"(known: {', '.join(budgets) or 'none'})")
    ids = [args.dataset_id] if args.dataset_id else list(budgets)
    print(f"ledger {args.ledger}\ncomposition: {ledger.composition}\n")
    rows = []
    for ds in ids:
        spent, left = ledger.spent(ds), ledger.remaining(ds)
        b = budgets[ds]
        rows.append([ds, unit_label(b.unit, b.key), f"{b.epsilon:.6g}", f"{b.delta:.3g}", f"{spent.epsilon:.6g}",
                     f"{spent.delta:.3g}", f"{left.epsilon:.6g}", f"{left.delta:.3g}"])
    print(_table(["dataset", "unit", "budget eps", "budget delta", "spent eps", "spent delta", "left eps", "left delta"],
                 rows) if rows else "no datasets yet")
    history = [s for s in ledger.history() if s.dataset_id in ids]
    print()
    if not history:
        print("no spends yet")
        return
    print(_table(["id", "time (UTC)", "dataset", "release", "status", "epsilon", "delta", "mechanism", "source",
                  "tabsynth"],
                 [[str(s.id), s.time[:19].replace("T", " "), s.dataset_id, s.release_id, s.status,
                   f"{s.epsilon:.6g}", f"{s.delta:.3g}", s.mechanism, s.fingerprint[:12], s.tabsynth_version]
                  for s in history]))


def run_verify(args: argparse.Namespace) -> None:
    from tabsynth.release.bundle import BundleVerificationError, verify

    problems = verify(args.release_dir)
    if not problems:
        print(f"OK: {args.release_dir} matches its manifest")
        return
    print(f"FAILED: {args.release_dir}: {len(problems)} problem(s)")
    for p in problems:
        print(f"  {p}")
    raise BundleVerificationError(f"{args.release_dir} does not match its manifest ({len(problems)} problem(s): "
                                  f"{problems[0]}{'; ...' if len(problems) > 1 else ''})")


COMMANDS = {"release": run_release, "ledger": run_ledger, "verify": run_verify}


def run(args: argparse.Namespace) -> None:
    """Dispatch on ``args.command`` (one of ``release``, ``ledger``, ``verify``)."""
    COMMANDS[args.command](args)
