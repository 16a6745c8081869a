"""``--public-domain col=a,b,c`` and ``--public-bounds col=lo:hi``: public domains from the command line."""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from tabsynth.errors import ConfigError

__all__ = ["add_public_domain_args", "public_metadata"]


def add_public_domain_args(p: argparse.ArgumentParser) -> None:
    """Add the two repeatable flags to a ``fit`` or ``release`` parser."""
    p.add_argument("--public-domain", action="append", metavar="COLUMN=A,B,...",
                   help="declare a categorical column's categories public (no DP budget is spent on them, none "
                        "is dropped), e.g. --public-domain credit=good,bad; repeat for several columns")
    p.add_argument("--public-bounds", action="append", metavar="COLUMN=LOW:HIGH",
                   help="declare a numeric or datetime column's range public, e.g. --public-bounds year=1990:2010 "
                        "or --public-bounds visit=2020-01-01:2024-12-31; repeat for several columns")


def _split(item: str, flag: str, example: str) -> tuple[str, str]:
    column, sep, values = item.partition("=")
    if not sep or not column or not values:
        raise ConfigError(f"{flag} {item!r}: write {example}")
    return column, values


def _category(token: str, observed: dict[str, Any], series: pd.Series | None) -> Any:
    """A category written on the command line, as the column holds it (observed values first)."""
    if token in observed:
        return observed[token]
    if series is not None and pd.api.types.is_bool_dtype(series):
        if token.lower() in ("true", "false"):
            return token.lower() == "true"
    elif series is not None and pd.api.types.is_numeric_dtype(series):
        try:
            number = float(token)
        except ValueError:
            raise ConfigError(f"--public-domain: column {series.name!r} holds numbers; {token!r} is not one") from None
        return int(number) if pd.api.types.is_integer_dtype(series) and number.is_integer() else number
    return token


def _bounds(column: str, text: str, kind: str) -> tuple[Any, Any]:
    """``LOW:HIGH``; a datetime's times may hold colons too, so every split point is tried."""
    cuts = [i for i, ch in enumerate(text) if ch == ":"]
    for i in cuts:
        lo, hi = text[:i].strip(), text[i + 1:].strip()
        try:
            if kind == "datetime":
                pd.Timestamp(lo), pd.Timestamp(hi)
                return lo, hi
            return float(lo), float(hi)
        except ValueError:
            continue
    raise ConfigError(f"--public-bounds {column}={text}: write COLUMN=LOW:HIGH with two "
                      f"{'dates' if kind == 'datetime' else 'numbers'}, e.g. year=1990:2010")


def public_metadata(data: Any, args: argparse.Namespace) -> Any:
    """The metadata of ``--metadata`` with the flags' public domains; None when neither is given, so
    the model finds it itself. Without ``--metadata`` the flags go on top of the schema detected from
    ``data`` (a table or its file), or under DP (``--epsilon``) of the dtypes alone, never detected
    (docs/privacy.md rule 4), where a flag declares its column's kind too."""
    from tabsynth.io import read_table
    from tabsynth.metadata import Metadata

    domains, bounds = args.public_domain or [], args.public_bounds or []
    if not domains and not bounds:
        return Metadata.from_json(args.metadata) if args.metadata else None
    private = getattr(args, "epsilon", None) is not None
    if not isinstance(data, pd.DataFrame):
        data = read_table(data, text=private)
    if args.metadata:
        meta = Metadata.from_json(args.metadata)
    else:
        meta = Metadata.from_dtypes(data) if private else Metadata.detect(data)
    declares = private and not args.metadata
    for item in domains:
        column, values = _split(item, "--public-domain", "COLUMN=A,B,..., e.g. credit=good,bad")
        spec = meta.columns.get(column)
        if declares and spec is not None and spec.kind not in ("categorical", "boolean"):
            meta, spec = _declare(meta, column, "categorical")
        observed = {str(v): v for v in (spec.categories or ())} if spec is not None else {}
        series = data[column] if column in data.columns else None
        cats = [_category(t.strip(), observed, series) for t in values.split(",") if t.strip()]
        meta = meta.with_public_domain(column, categories=cats)
    for item in bounds:
        column, text = _split(item, "--public-bounds", "COLUMN=LOW:HIGH, e.g. year=1990:2010")
        spec = meta.columns.get(column)
        if declares and spec is not None and spec.kind in ("categorical", "boolean"):
            meta, spec = _declare(meta, column, "datetime" if _dates_only(column, text) else "numerical")
        meta = meta.with_public_domain(column, bounds=_bounds(column, text, spec.kind if spec else "numerical"))
    return meta


def _declare(meta: Any, column: str, kind: str) -> tuple[Any, Any]:
    """``meta`` with ``column`` declared of ``kind`` (a flag's domain says what the column holds)."""
    meta = meta.with_column(column, kind=kind, dtype="float64" if kind == "numerical" else meta.columns[column].dtype)
    return meta, meta.columns[column]


def _dates_only(column: str, text: str) -> bool:
    """Whether ``LOW:HIGH`` holds dates but not numbers."""
    try:
        _bounds(column, text, "numerical")
        return False
    except ConfigError:
        return True
