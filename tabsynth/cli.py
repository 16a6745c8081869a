"""The ``tabsynth`` command line. Exit status: 0 ok, 2 user error (one line on stderr), 1 internal."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from tabsynth.argtypes import non_negative_int, positive_int
from tabsynth.errors import TabsynthError
from tabsynth.models.registry import model_class, model_names
from tabsynth.public_domains import add_public_domain_args, public_metadata
from tabsynth.release import command as release_command
from tabsynth.threads import add_threads_arg, use_threads


class UserError(TabsynthError):
    """A command-line usage mistake (bad flag or argument)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage + error)
        raise UserError(f"{self.prog}: {message} (see --help)")


def _cmd_metadata(args: argparse.Namespace) -> None:
    from tabsynth.io import read_table
    from tabsynth.metadata import Metadata

    meta = Metadata.detect(read_table(args.data))
    if args.output:
        meta.to_json(args.output)
        kinds = ", ".join(f"{n}: {s.kind}" for n, s in meta.columns.items())
        print(f"wrote {args.output} ({len(meta)} columns: {kinds})")
    else:
        print(meta.to_json())


def _relaunch(nproc: int, argv: list[str]) -> int:
    """Run this same command in ``nproc`` processes on this node under torchrun; its exit status."""
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "tabsynth", *argv]
    return subprocess.call(cmd)


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _process(args: argparse.Namespace) -> tuple[int | None, Any]:
    """With ``--nproc N > 1``: the exit code of the command run again under torchrun, and no runtime;
    else None and this process's runtime, its torch threads set (``--threads``, or one per free core)."""
    from tabsynth.distributed import current

    if args.nproc > 1:
        return _relaunch(args.nproc, _without_nproc(args.argv)), None
    runtime = current()
    if not runtime.distributed or args.threads is not None:
        use_threads(args.threads)
    return None, runtime


def _cmd_fit(args: argparse.Namespace) -> int | None:
    from tabsynth.io import read_table

    code, runtime = _process(args)
    if runtime is None:
        return code
    if any(v is not None for v in (args.key, args.subjects, args.order_by, args.order_kind, args.max_events,
                                   args.order_bounds, args.non_decreasing)):
        _fit_two_tables(args, _fit_params(args))
        return None
    # under DP a CSV's cells are read as text: its kinds are declared, never inferred from cells
    data = args.data if runtime.distributed else read_table(args.data, text=args.epsilon is not None)
    meta = public_metadata(data, args)
    model = model_class(args.model)(**_fit_params(args))
    t0 = time.perf_counter()
    model.fit(data, metadata=meta)
    if not runtime.is_main:  # every rank holds the same model; rank 0 writes it
        return None
    model.save(args.output)
    where = f" in {runtime.world_size} processes" if runtime.distributed else ""
    rows = (f"about {model.n_rows_} rows (noisy count)" if model.privacy_spent().is_dp  # the exact count is private
            else f"{model.n_rows_} rows")
    print(f"fitted {args.model} on {rows}{where} in {time.perf_counter() - t0:.1f} s -> {args.output}")
    if args.quiet or not model.privacy_spent().is_dp:  # a verbose DP fit has printed it already
        print(f"privacy: {model.privacy_spent()}")
    return None


def _fit_params(args: argparse.Namespace) -> dict:
    params: dict = {"seed": args.seed, "verbose": not args.quiet, "device": args.device, "precision": args.precision}
    if args.epochs is not None:
        params["epochs"] = args.epochs
    if args.batch_size is not None:
        params["batch_size"] = args.batch_size
    if args.epsilon is not None:
        params.update(epsilon=args.epsilon, delta=args.delta, max_grad_norm=args.max_grad_norm)
    elif args.delta is not None:
        raise UserError("--delta needs --epsilon (differential privacy is on only when epsilon is set)")
    return params


def _fit_two_tables(args: argparse.Namespace, params: dict) -> None:
    """``tabsynth fit events.csv --subjects persons.csv --key id --order-by day``: both tables, one model."""
    from tabsynth.io import read_table
    from tabsynth.release.sequences import declare_order

    if args.key is None:
        raise UserError("--subjects, --order-by, --order-kind, --max-events, --order-bounds and --non-decreasing "
                        "describe an event table: name its person id column with --key")
    if args.model != "tabularar":
        raise UserError("a person table with its event table is fitted by --model tabularar (the default)")
    if args.public_domain or args.public_bounds:
        raise UserError("--public-domain and --public-bounds are not taken with --key; declare public domains in the "
                        "sequence metadata JSON (--metadata) instead")
    model = model_class(args.model)(**params)
    t0 = time.perf_counter()
    private = args.epsilon is not None  # under DP a CSV's cells are read as text: kinds declared, never inferred
    subjects = read_table(args.subjects, text=private) if args.subjects is not None else None
    events = read_table(args.data, text=private)
    bounds = release_command.order_bounds(args.order_bounds)
    meta = None
    if args.metadata is not None:  # the declared kinds read the cells (under DP each on its own)
        from tabsynth.metadata import SequenceMetadata

        meta = SequenceMetadata.from_json(args.metadata)
    else:
        kind = args.order_kind or ("number" if private and args.order_by else None)
        events, subjects = declare_order(events, subjects, args.order_by, bounds, kind)
    model.fit(events, meta, subjects=subjects, key=args.key, order_by=args.order_by, max_events=args.max_events,
              order_bounds=bounds, non_decreasing=args.non_decreasing)
    model.save(args.output)
    counts = (f"about {model.n_subjects_} persons (noisy count)" if private  # the exact counts are private
              else f"{model.n_subjects_} persons and {model.n_rows_} events")
    print(f"fitted {args.model} on {counts} in {time.perf_counter() - t0:.1f} s -> {args.output}")
    if args.quiet and private:
        print(f"privacy: {model.privacy_spent()}")


def _parse_conditions(items: list[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    out = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--condition {item!r}: write COLUMN=VALUE, e.g. --condition sex=Female")
        key, value = item.split("=", 1)
        out[key] = value
    return out


def _cmd_sample(args: argparse.Namespace) -> int | None:
    from tabsynth.models import load

    code, runtime = _process(args)
    if runtime is None:
        return code
    if args.num_rows == 0 and runtime.is_main:
        print(f"tabsynth: note: -n 0 asked: {args.output} gets the header only, no rows", file=sys.stderr)
    model = load(args.model)
    t0 = time.perf_counter()
    path = model.sample_to_file(args.num_rows, args.output, batch_rows=args.batch_rows, seed=args.seed,
                                conditions=_parse_conditions(args.condition))
    if hasattr(model, "two_tables_"):
        print(f"wrote {args.num_rows} persons to {path.subjects} and their events to {path.events} in "
              f"{time.perf_counter() - t0:.1f} s")
    elif runtime.is_main:
        parts = f" (one Parquet part per process, {runtime.world_size} parts)" if runtime.distributed else ""
        print(f"wrote {args.num_rows} rows to {path}{parts} in {time.perf_counter() - t0:.1f} s")
    return None


def _cmd_demo(args: argparse.Namespace) -> None:
    from tabsynth import datasets
    from tabsynth.demo import run_demo

    use_threads(args.threads)
    df, holdout = datasets.load("adult"), datasets.load("adult_test")
    if args.rows is not None:
        df = df.sample(min(args.rows, len(df)), random_state=0).reset_index(drop=True)
        holdout = holdout.sample(min(args.rows, len(holdout)), random_state=0).reset_index(drop=True)
    run_demo(Path(args.out), df, epochs=args.epochs, holdout=holdout, target="income", verbose=not args.quiet)


def _cmd_families(args: argparse.Namespace) -> None:
    from tabsynth.models.registry import describe

    rows = describe()
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    for name, target, summary in rows:
        print(f"{name:<{width[0]}}  {target:<{width[1]}}  {summary}")


def _cmd_report(args: argparse.Namespace) -> None:
    from tabsynth.report import command as report_command

    report_command.run(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], int | None]] = {
    "report": _cmd_report,
    "metadata": _cmd_metadata,
    "fit": _cmd_fit,
    "sample": _cmd_sample,
    "demo": _cmd_demo,
    "families": _cmd_families,
    **release_command.COMMANDS,
}


_SAMPLE_OUTPUT = ("output table (.csv, .csv.gz, .parquet); a model of a person table and its events writes "
                  "OUT_subjects and OUT_events beside it")


def build_parser() -> argparse.ArgumentParser:
    from tabsynth.version import __version__

    parser = _Parser(prog="tabsynth", description="Private, useful synthetic tables.")
    parser.add_argument("--version", action="version", version=f"tabsynth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("metadata", help="detect column kinds and write metadata JSON",
                       description="Detect column kinds, dtypes and nullability of a table.")
    p.add_argument("data", help="input table (.csv, .csv.gz, .parquet)")
    p.add_argument("-o", "--output", help="metadata JSON to write (printed when omitted)")

    p = sub.add_parser("fit", help="fit a model on a table and save it",
                       description="Fit a model (a family of tabsynth families) on a table and save it (no pickle).")
    p.add_argument("data", help="input table (.csv, .csv.gz, .parquet)")
    p.add_argument("-o", "--output", required=True, help="model file to write (e.g. model.tsyn)")
    p.add_argument("--model", choices=model_names(), default="tabularar",
                   help="model family (default tabularar: the strongest on the suite, with and without DP)")
    p.add_argument("--epochs", type=positive_int,
                   help="training epochs (default without DP: CTGAN and TVAE 300, TabularAR at most 100 with "
                        "early stopping; under DP: sized by the DP step rule)")
    p.add_argument("--batch-size", type=positive_int, help="rows per training step")
    p.add_argument("--metadata", help="metadata JSON (tabsynth or SDV format); detected when omitted, or under DP "
                                      "taken from the dtypes alone (a CSV's cells read as text: every column "
                                      "categorical unless declared here or by the flags below)")
    release_command.add_two_table_args(p)
    p.add_argument("--epsilon", type=float, help="train with differential privacy at this epsilon (whole pipeline)")
    p.add_argument("--delta", type=float, help="DP delta (default min(1e-5, n^-1.5)); needs --epsilon")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="DP-SGD per-sample clipping norm (default 1)")
    p.add_argument("--seed", type=int, help="seed for a reproducible fit")
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="mixed precision without DP (bf16 on CPU or GPU, fp16 on CUDA); default fp32")
    add_public_domain_args(p)
    add_threads_arg(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--nproc", type=positive_int, default=1,
                   help="train in this many processes on this node (torchrun, data parallel; input must be "
                        "Parquet); for several nodes run torchrun -m tabsynth fit ... yourself")

    _add_sample_parser(sub)
    from tabsynth.report import command as report_command

    report_command.add_parser(sub)
    release_command.add_parser(sub)

    _add_demo_parser(sub)
    _add_families_parser(sub)
    return parser


def _add_sample_parser(sub) -> None:
    p = sub.add_parser("sample", help="sample synthetic rows from a saved model",
                       description="Stream synthetic rows from a saved model to a file.")
    p.add_argument("model", help="model file written by tabsynth fit")
    p.add_argument("-n", "--num-rows", type=non_negative_int, required=True, help="rows (or persons) to generate")
    p.add_argument("-o", "--output", required=True, help=_SAMPLE_OUTPUT)
    p.add_argument("--condition", action="append", metavar="COLUMN=VALUE",
                   help="fix a categorical/boolean column; repeat for several")
    p.add_argument("--seed", type=int, help="seed for reproducible samples")
    p.add_argument("--batch-rows", type=positive_int, default=100_000, help="rows per written batch")
    add_threads_arg(p)
    p.add_argument("--nproc", type=positive_int, default=1,
                   help="sample in this many processes (torchrun); OUTPUT is then a Parquet dataset directory")


def _add_families_parser(sub) -> None:
    sub.add_parser("families", help="list the model families --model accepts",
                   description="List the model families: the built-in ones and those of installed packages "
                               "(entry points of the group tabsynth.families): name, class, summary.")


def _add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on the bundled Adult table",
                       description="Run the main job end to end on bundled UCI Adult: detect metadata, fit a "
                                   "TabularAR, sample and write the report. Its time grows with the machine's "
                                   "load; --epochs and --rows make it shorter.")
    p.add_argument("--out", default="out/demo", help="folder for the demo's outputs (default: out/demo)")
    p.add_argument("--epochs", type=positive_int, default=10,
                   help="TabularAR epochs at most (default 10; early stopping may end sooner)")
    p.add_argument("--rows", type=positive_int, help="use a random sample of this many rows (default: all)")
    add_threads_arg(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """One line per warning, without the library's source path (CLI users cannot act on it)."""
    print(f"tabsynth: warning: {' '.join(str(message).split())}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    done = False
    shown, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(argv)
        args.argv = argv
        if not args.command:
            parser.print_help()
            return 2
        rc = COMMANDS[args.command](args) or 0
        done = rc == 0
        return rc
    except TabsynthError as exc:
        message = " ".join(str(exc).split())
        print(f"tabsynth: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tabsynth: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if os.environ.get("TABSYNTH_DEBUG"):
            raise
        print(f"tabsynth: internal error: {type(exc).__name__}: {exc} (set TABSYNTH_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown
        _leave_process_group(synced=done)


def _leave_process_group(synced: bool) -> None:
    """Tear down torchrun's process group before exit, after a barrier when every rank finished its
    command (a group left to the interpreter's shutdown can abort a rank whose peer already left; after
    a failure, no barrier, since a rank that failed alone must not wait for the others)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if synced:
            dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
