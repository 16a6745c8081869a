"""The ``tabsynth`` command line. Exit status: 0 ok, 2 user error (one line on stderr), 1 internal."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tabsynth.errors import TabsynthError


class UserError(TabsynthError):
    """A command-line usage mistake (bad flag or argument)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage + error)
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


def _cmd_demo(args: argparse.Namespace) -> None:
    from tabsynth import datasets
    from tabsynth.demo import run_demo

    run_demo(Path(args.out), datasets.load("adult"), verbose=not args.quiet)


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "metadata": _cmd_metadata,
    "demo": _cmd_demo,
}


def build_parser() -> argparse.ArgumentParser:
    from tabsynth import __version__

    parser = _Parser(prog="tabsynth", description="Private, useful synthetic tables.")
    parser.add_argument("--version", action="version", version=f"tabsynth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("metadata", help="detect column kinds and write metadata JSON",
                       description="Detect column kinds, dtypes and nullability of a table.")
    p.add_argument("data", help="input table (.csv, .csv.gz, .parquet)")
    p.add_argument("-o", "--output", help="metadata JSON to write (printed when omitted)")

    p = sub.add_parser("demo", help="run the main job on the bundled Adult table",
                       description="Run the main job end to end on bundled UCI Adult.")
    p.add_argument("--out", default="out/demo", help="folder for the demo's outputs (default: out/demo)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 2
        COMMANDS[args.command](args)
        return 0
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
