"""`SequenceMetadata`: a person table and its event table, described together.

It declares what the two-table mode needs besides each table's columns: the key that links the
tables (an id, regenerated and never learned), the event table's sequence column (``order_by``, a
number or a date) and the person columns that bound it (``order_bounds``), and which columns belong
to the person and which to the events. It is written next to a two-table release as one JSON file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tabsynth.errors import DataError, MetadataError
from tabsynth.metadata.column import ColumnSpec
from tabsynth.metadata.table import Metadata

__all__ = ["ORDER_KINDS", "SequenceMetadata"]

FORMAT = "tabsynth-sequences"
SCHEMA_VERSION = 1
#: The sequence column's kind, from its column kind: a number (day, year) or a date.
ORDER_KINDS = {"numerical": "number", "integer": "number", "datetime": "datetime"}


@dataclass(frozen=True)
class SequenceMetadata:
    """The person table (``persons``), the event table (``events``) and how they are linked.

    ``key``: the id column of both tables (kind ``"id"``; the person table's primary key).
    ``order_by``: the event column that orders a person's events (None: the rows' order), of kind
    ``order_kind`` (``"number"`` or ``"datetime"``, read off its column when None).
    ``order_bounds``: ``(lower, upper)`` person columns (either None) every event's ``order_by``
    value lies between. ``non_decreasing``: event columns (numbers) that never fall within a person
    (a disease stage, cumulative experience). A column other than the key belongs to one table only.
    Invalid metadata raises :class:`~tabsynth.errors.MetadataError` saying what to fix.
    """

    persons: Metadata
    events: Metadata
    key: str
    order_by: str | None = None
    order_kind: str | None = None
    order_bounds: tuple[str | None, str | None] = (None, None)
    non_decreasing: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("persons", "events"):
            if not isinstance(getattr(self, name), Metadata):
                raise MetadataError(f"{name} must be a tabsynth Metadata, got {type(getattr(self, name)).__name__}")
        self._check_key()
        object.__setattr__(self, "order_kind", self._checked_order())
        object.__setattr__(self, "order_bounds", self._checked_bounds())
        object.__setattr__(self, "non_decreasing", self._checked_non_decreasing())
        shared = [c for c in self.persons.columns if c in self.events.columns and c != self.key]
        if shared:
            raise MetadataError(f"columns {shared} are in both tables; a column other than the key belongs to the "
                                "person or to the events: drop or rename it in one of them")

    # --- checks ------------------------------------------------------------------------------
    def _check_key(self) -> None:
        key = self.key
        if not isinstance(key, str) or not key:
            raise MetadataError(f"key must name the column that links the tables, got {key!r}")
        for where, meta in (("person", self.persons), ("event", self.events)):
            if key not in meta.columns:
                raise MetadataError(f"key {key!r} is not a column of the {where} table (columns: "
                                    f"{', '.join(meta.columns)}); name the person id column the same in both tables")
            if meta.columns[key].kind != "id":
                raise MetadataError(f"key {key!r} has kind {meta.columns[key].kind!r} in the {where} table; the key "
                                    "is an id (regenerated, never learned): declare its kind 'id' in both tables")
        if self.persons.primary_key != key:
            raise MetadataError(f"the person table's primary key must be the key {key!r} (one row per person), "
                                f"not {self.persons.primary_key!r}")
        if self.events.primary_key == key:
            raise MetadataError(f"the event table's primary key cannot be the key {key!r}: a person has several "
                                "events; leave the event table's primary_key unset (or name an event id column)")

    def _checked_order(self) -> str | None:
        """The sequence column's kind, checked against its column."""
        name = self.order_by
        if name is None:
            if self.order_kind is not None:
                raise MetadataError(f"order_kind {self.order_kind!r} needs order_by, the sequence column it describes")
            return None
        if name not in self.events.columns or name == self.key:
            raise MetadataError(f"order_by {name!r} must be a column of the event table other than the key; "
                                f"columns: {', '.join(self.events.columns)}")
        kind = ORDER_KINDS.get(self.events.columns[name].kind)
        if kind is None:
            raise MetadataError(f"order_by {name!r} has kind {self.events.columns[name].kind!r}; the sequence column "
                                "is a number or a date: declare its kind numerical, integer or datetime (parse "
                                "dates with pd.to_datetime)")
        if self.order_kind not in (None, kind):
            raise MetadataError(f"order_kind {self.order_kind!r} does not match order_by {name!r}, a {kind} column; "
                                f"set order_kind to {kind!r} or leave it unset")
        return kind

    def _checked_bounds(self) -> tuple[str | None, str | None]:
        bounds = self.order_bounds
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise MetadataError(f"order_bounds must be a pair (lower, upper) of person columns or None, got {bounds!r}")
        if any(b is not None for b in bounds) and self.order_by is None:
            raise MetadataError("order_bounds bound the sequence column: name it with order_by")
        for name in bounds:
            if name is None:
                continue
            if name not in self.persons.columns or name == self.key:
                raise MetadataError(f"order_bounds names {name!r}, which is not a column of the person table "
                                    f"besides the key; columns: {', '.join(self.persons.columns)}")
            if ORDER_KINDS.get(self.persons.columns[name].kind) != self.order_kind:
                raise MetadataError(f"order_bounds column {name!r} has kind {self.persons.columns[name].kind!r}; it "
                                    f"bounds {self.order_by!r}, a {self.order_kind} column, so it must be one too")
        return (bounds[0], bounds[1])

    def _checked_non_decreasing(self) -> tuple[str, ...]:
        names = self.non_decreasing
        if isinstance(names, str) or not isinstance(names, (tuple, list)):
            raise MetadataError(f"non_decreasing must be a list of event columns, got {names!r}")
        for name in names:
            spec = self.events.columns.get(name)
            if spec is None or name in (self.key, self.order_by):
                raise MetadataError(f"non_decreasing names {name!r}, which is not an event column besides the key "
                                    f"and order_by; columns: {', '.join(self.event_columns)}")
            if spec.kind not in ("numerical", "integer"):
                raise MetadataError(f"non_decreasing column {name!r} has kind {spec.kind!r}; a column that never "
                                    "falls is a number: declare its kind numerical or integer")
        return tuple(dict.fromkeys(names))

    # --- access ------------------------------------------------------------------------------
    @property
    def person_columns(self) -> list[str]:
        """The person table's columns besides the key: what belongs to the person."""
        return [c for c in self.persons.columns if c != self.key]

    @property
    def event_columns(self) -> list[str]:
        """The event table's columns besides the key (the sequence column included)."""
        return [c for c in self.events.columns if c != self.key]

    def public(self) -> SequenceMetadata:
        """A copy without the domains read off the rows (``domain_source="observed"``): what a DP
        release may publish. Declared (public) domains, kinds, dtypes and the link are kept."""
        def strip(meta: Metadata, primary: str | None) -> Metadata:
            specs = [s.with_changes(bounds=None, categories=None, domain_source=None)
                     if s.domain_source == "observed" else s for s in meta.columns.values()]
            return Metadata(specs, primary_key=primary, source=meta.source)

        return SequenceMetadata(strip(self.persons, self.key), strip(self.events, self.events.primary_key), self.key,
                                self.order_by, self.order_kind, self.order_bounds, self.non_decreasing)

    def check_frames(self, events: pd.DataFrame, subjects: pd.DataFrame, values: bool = True) -> None:
        """Raise :class:`MetadataError` unless both tables have exactly the described columns."""
        self.events.check_frame(events, values=values)
        self.persons.check_frame(subjects, values=values)

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def detect(cls, events: pd.DataFrame, subjects: pd.DataFrame | None = None, *, key: str,
               order_by: str | None = None, order_bounds: tuple[str | None, str | None] | None = None,
               non_decreasing: Sequence[str] = (), text: str = "pii") -> SequenceMetadata:
        """Detect both tables' columns from their values (:meth:`Metadata.detect`: outside DP only, its
        observed domains are private) and link them. ``subjects`` None: persons with no attributes,
        one per key of ``events``. A key, ``order_by`` or bound missing from its table raises
        :class:`~tabsynth.errors.DataError`."""
        events, subjects = _check_tables(events, subjects, key, order_by, order_bounds)
        return cls._link(Metadata.detect(subjects, text=text), Metadata.detect(events, text=text), key, order_by,
                         order_bounds, non_decreasing)

    @classmethod
    def from_dtypes(cls, events: pd.DataFrame, subjects: pd.DataFrame | None = None, *, key: str,
                    order_by: str | None = None,
                    order_bounds: tuple[str | None, str | None] | None = None,
                    non_decreasing: Sequence[str] = ()) -> SequenceMetadata:
        """Describe both tables from their column names and dtypes alone, reading no value
        (:meth:`Metadata.from_dtypes`: the schema a DP fit may use for free)."""
        events, subjects = _check_tables(events, subjects, key, order_by, order_bounds)
        return cls._link(Metadata.from_dtypes(subjects), Metadata.from_dtypes(events), key, order_by, order_bounds,
                         non_decreasing)

    @classmethod
    def _link(cls, persons: Metadata, events: Metadata, key: str, order_by: str | None,
              order_bounds: tuple[str | None, str | None] | None,
              non_decreasing: Sequence[str] = ()) -> SequenceMetadata:
        """The two tables' metadata with the key as an id (the person table's primary key)."""
        return cls(_with_key(persons, key, primary=True), _with_key(events, key, primary=False), key, order_by,
                   order_bounds=order_bounds if order_bounds is not None else (None, None),
                   non_decreasing=non_decreasing if isinstance(non_decreasing, str)  # type: ignore[arg-type]
                   else tuple(non_decreasing))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SequenceMetadata:
        """Inverse of :meth:`to_dict`; the person and event column lists, when given, must match the tables."""
        if not isinstance(d, Mapping):
            raise MetadataError(f"sequence metadata must be a JSON object, got {type(d).__name__}")
        if d.get("format", FORMAT) != FORMAT or d.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
            raise MetadataError(f"not tabsynth sequence metadata (format {d.get('format')!r}, schema_version "
                                f"{d.get('schema_version')!r}; expected {FORMAT!r}, {SCHEMA_VERSION})")
        tables = {}
        for name in ("persons", "events"):
            if not isinstance(d.get(name), Mapping):
                raise MetadataError(f"sequence metadata needs {name!r}: the {name[:-1]} table's metadata object")
            tables[name] = Metadata.from_dict(d[name])
        bounds: Any = d.get("order_bounds") or {}
        if isinstance(bounds, Mapping):
            bounds = (bounds.get("lower"), bounds.get("upper"))
        key: Any = d.get("key")
        rising: Any = d.get("non_decreasing") or ()
        meta = cls(tables["persons"], tables["events"], key, d.get("order_by"), d.get("order_kind"),
                   tuple(bounds) if isinstance(bounds, (list, tuple)) else bounds,
                   tuple(rising) if isinstance(rising, list) else rising)
        for name in ("person_columns", "event_columns"):
            if name in d and list(d[name]) != getattr(meta, name):
                raise MetadataError(f"{name} {list(d[name])} do not match the table's columns besides the key "
                                    f"{getattr(meta, name)}; list the same columns in both places")
        return meta

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> SequenceMetadata:
        """Read a JSON file written by :meth:`to_json`, or parse a JSON string."""
        if isinstance(source, os.PathLike) or (isinstance(source, str) and not source.lstrip().startswith("{")):
            p = Path(source)
            if not p.exists():
                raise MetadataError(f"sequence metadata file {source} not found")
            source = p.read_text()
        try:
            d = json.loads(source)
        except json.JSONDecodeError as exc:
            raise MetadataError(f"sequence metadata is not valid JSON: {exc}") from exc
        return cls.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the link (key, sequence column, bounds, whose columns) and both tables."""
        return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "key": self.key, "order_by": self.order_by,
                "order_kind": self.order_kind,
                "order_bounds": {"lower": self.order_bounds[0], "upper": self.order_bounds[1]},
                "non_decreasing": list(self.non_decreasing),
                "person_columns": self.person_columns, "event_columns": self.event_columns,
                "persons": self.persons.to_dict(), "events": self.events.to_dict()}

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """Write JSON to ``path`` (when given) and return it."""
        text = json.dumps(self.to_dict(), indent=2, default=str)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text


def _with_key(meta: Metadata, key: str, primary: bool) -> Metadata:
    """``meta`` with ``key`` an id column: the person table's primary key, never the event table's."""
    spec = meta.columns[key]
    specs = [ColumnSpec(key, "id", dtype=spec.dtype, nullable=spec.nullable) if s.name == key else s
             for s in meta.columns.values()]
    other = None if meta.primary_key == key else meta.primary_key
    return Metadata(specs, primary_key=key if primary else other, source=meta.source)


def _check_tables(events: Any, subjects: Any, key: Any, order_by: Any,
                  order_bounds: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two tables (a person table of the event keys when ``subjects`` is None), or a
    :class:`DataError` for a key, sequence column or bound that is not where it must be."""
    for name, df in (("events", events), ("subjects", subjects)):
        if not isinstance(df, pd.DataFrame) and (df is not None or name == "events"):
            raise DataError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    if not isinstance(key, str) or key not in events.columns:
        raise DataError(f"key {key!r} is not a column of the event table; columns: {', '.join(map(str, events.columns))}")
    if subjects is None:
        subjects = pd.DataFrame({key: pd.unique(events[key])})
    elif key not in subjects.columns:
        raise DataError(f"key {key!r} is not a column of the person table; name the person id column the same in "
                        "both tables")
    if order_by is not None and (order_by not in events.columns or order_by == key):
        raise DataError(f"order_by {order_by!r} must be a column of the event table other than the key; columns: "
                        f"{', '.join(map(str, events.columns))}")
    for name in order_bounds if isinstance(order_bounds, (tuple, list)) else ():
        if name is not None and (name not in subjects.columns or name == key):
            raise DataError(f"order_bounds names {name!r}, which is not a column of the person table besides the "
                            f"key; columns: {', '.join(map(str, subjects.columns))}")
    return events, subjects
