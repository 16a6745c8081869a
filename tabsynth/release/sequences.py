"""The two-table mode of ``release()``: a person table and its event table, the person the unit of privacy.

Both tables are read under the DP reading rules (a CSV's cells as text, docs/privacy.md rule 4), the
sequence column is read as its declared kind (``order_kind``; never guessed from its cells), the
public metadata JSON is made from the dtypes alone, and the model samples as many persons as its
noisy person count unless told otherwise.
"""

from __future__ import annotations

import os
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tabsynth.datasets import Sequences
from tabsynth.errors import ConfigError, TabsynthWarning
from tabsynth.metadata import ColumnSpec, Metadata
from tabsynth.metadata.public import declared_values
from tabsynth.metadata.sequence import SequenceMetadata
from tabsynth.models.sequence_api import TwoTableMixin
from tabsynth.models.sequence_schema import resolve_link
from tabsynth.release.checks import check_positive_int, read_frame

__all__ = ["ORDER_KINDS", "TwoTableRelease", "declare_order", "fit_two_tables", "prepare_two_tables",
           "sample_two_tables", "two_table_report"]

#: The kinds a sequence column may be declared: a number (day, year) or a date.
ORDER_KINDS = ("number", "datetime")


@dataclass
class TwoTableRelease:
    """The person side of a release with a key: the person table, the link and the public metadata."""

    subjects: pd.DataFrame | None
    key: str
    order_by: str | None
    order_bounds: tuple[str | None, str | None] | None
    max_events: int | None
    n_subjects: int | None
    metadata: SequenceMetadata
    non_decreasing: tuple[str, ...] = ()
    #: The metadata the user declared (None: the dtypes), which the fit reads.
    declared: SequenceMetadata | None = None


def declare_order(events: pd.DataFrame, subjects: pd.DataFrame | None, order_by: str | None,
                  order_bounds: tuple[str | None, str | None] | None,
                  order_kind: str | None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Both tables with the sequence column and its bound columns read as ``order_kind`` where they
    hold text (a CSV read under DP): each cell on its own, one that does not parse missing
    (docs/privacy.md rule 4b). Columns that already hold numbers or dates are left as they are."""
    if order_kind is not None and order_kind not in ORDER_KINDS:
        raise ConfigError(f"order_kind must be 'number' or 'datetime', got {order_kind!r}")
    if order_by is None:
        return events, subjects
    events = _declared(events, [order_by], order_kind)
    bounds = [b for b in (order_bounds or ()) if b is not None]
    if subjects is not None and bounds:
        subjects = _declared(subjects, [b for b in bounds if b in subjects.columns], order_kind)
    return events, subjects


def _declared(df: pd.DataFrame, columns: list[str], order_kind: str | None) -> pd.DataFrame:
    """``df`` with the text ``columns`` read as ``order_kind``."""
    text = [c for c in columns if c in df.columns and (df[c].dtype == object or pd.api.types.is_string_dtype(df[c]))]
    if not text:
        return df
    if order_kind is None:
        raise ConfigError(f"the sequence column {text[0]!r} holds text (a CSV read under differential privacy keeps "
                          "its cells as text: no kind is read off them); declare what it holds: "
                          "order_kind='number' or order_kind='datetime' (CLI: --order-kind number|datetime)")
    kind, dtype = ("numerical", "float64") if order_kind == "number" else ("datetime", "datetime64[ns]")
    meta = Metadata([ColumnSpec(c, kind, dtype=dtype) for c in text])
    out = df.copy()
    out[text] = declared_values(df[text], meta)
    return out


def prepare_two_tables(cls: type, events: pd.DataFrame, *, subjects: Any, key: Any, order_by: Any, order_bounds: Any,
                       max_events: Any, order_kind: Any, n_subjects: Any, n_rows: Any, metadata: Any, holdout: Any,
                       target: Any, non_decreasing: Any = None) -> tuple[pd.DataFrame, TwoTableRelease]:
    """The checked event table and the person side of a release with ``key``; nothing read but dtypes
    (and the declared :class:`SequenceMetadata` in ``metadata``, when given)."""
    if not issubclass(cls, TwoTableMixin):
        raise ConfigError(f"key=... asks for a person table and its event table, and only TabularAR has the "
                          f"two-table mode; {cls.__name__} has not: use model='tabularar' (the default)")
    if not isinstance(key, str) or not key:
        raise ConfigError(f"key must name the person id column, got {key!r}")
    declared = sequence_metadata(metadata)
    if declared is not None:
        link = resolve_link(declared, key, order_by, order_bounds, non_decreasing)
        key, order_by, order_bounds, non_decreasing = link.key, link.order_by, link.order_bounds, link.non_decreasing
        metadata = None
    for name, value, fix in (("n_rows", n_rows, "give n_subjects, the number of persons to release"),
                             ("metadata", metadata, "give ts.SequenceMetadata (or its JSON), or the tables with the "
                                                    "dtypes to use (pd.to_numeric, pd.to_datetime); the release's "
                                                    "metadata JSON is made from them"),
                             ("holdout", holdout, "leave it unset; the internal report then compares the training "
                                                  "persons only"),
                             ("target", target, "leave it unset")):
        if value is not None:
            raise ConfigError(f"{name} is not taken in a release with key (a person table and its event table): {fix}")
    if subjects is not None:
        subjects = read_frame(subjects, "subjects", private=True)
    if order_bounds is not None:
        if order_by is None or not isinstance(order_bounds, (tuple, list)) or len(order_bounds) != 2:
            raise ConfigError(f"order_bounds must be a pair (lower, upper) of person columns, either None, and "
                              f"needs order_by; got {order_bounds!r}")
        order_bounds = (order_bounds[0], order_bounds[1])
    rising = tuple([non_decreasing] if isinstance(non_decreasing, str) else non_decreasing or ())
    if declared is None:
        events, subjects = declare_order(events, subjects, order_by, order_bounds, order_kind)
        meta = SequenceMetadata.from_dtypes(events, subjects, key=key, order_by=order_by, order_bounds=order_bounds,
                                            non_decreasing=rising)
    else:
        meta = declared
    return events, TwoTableRelease(subjects=subjects, key=key, order_by=order_by, order_bounds=order_bounds,
                                   max_events=check_positive_int(max_events, "max_events"),
                                   n_subjects=check_positive_int(n_subjects, "n_subjects"), metadata=meta.public(),
                                   non_decreasing=rising, declared=declared)


def sequence_metadata(metadata: Any) -> SequenceMetadata | None:
    """``metadata`` as :class:`SequenceMetadata` when it is one or names its JSON file, else None."""
    if isinstance(metadata, SequenceMetadata):
        return metadata
    if isinstance(metadata, (str, os.PathLike)):
        path = Path(metadata)
        if path.is_file() and '"tabsynth-sequences"' in path.read_text(encoding="utf-8"):
            return SequenceMetadata.from_json(path)
    return None


def fit_two_tables(two: TwoTableRelease, synth: Any, events: pd.DataFrame) -> None:
    """Fit ``synth`` on both tables (under DP per person in a release)."""
    synth.fit(events, two.declared, subjects=two.subjects, key=two.key, order_by=two.order_by,
              max_events=two.max_events, order_bounds=two.order_bounds, non_decreasing=two.non_decreasing)


def sample_two_tables(two: TwoTableRelease, synth: Any, seed: int | None) -> Sequences:
    """``n_subjects`` persons and their events, by default as many persons as the noisy person count."""
    n = synth.n_subjects_ if two.n_subjects is None else two.n_subjects
    pair = synth.sample(n_subjects=max(int(n), 1), seed=seed)
    return Sequences(pair.subjects.reset_index(drop=True), pair.events.reset_index(drop=True), two.key, two.order_by)


def two_table_report(two: TwoTableRelease, events: pd.DataFrame, synthetic: Sequences, synth: Any,
                     model_name: str) -> tuple[Any, str | None]:
    """The custodian's internal report comparing the persons (it reads the real rows), or why it failed."""
    from tabsynth.report.sequence_report import evaluate_sequences

    subjects = two.subjects if two.subjects is not None else pd.DataFrame({two.key: pd.unique(events[two.key])})
    try:
        rep = evaluate_sequences(Sequences(subjects, events, two.key, two.order_by), synthetic, model=synth,
                                 order_bounds=two.order_bounds, non_decreasing=list(two.non_decreasing),
                                 title=f"Internal report (custodian only): {model_name} release")
        return rep, None
    except Exception as exc:  # noqa: BLE001 - the DP spend already happened: keep the synthetic data
        warnings.warn(f"the internal report failed ({type(exc).__name__}: {exc}); the release goes on without it "
                      "(see internal/report_error.txt)", TabsynthWarning, stacklevel=4)
        return None, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
