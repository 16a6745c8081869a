"""`Metadata`: the immutable description of a table that every other part reads."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from tabsynth.errors import MetadataError
from tabsynth.metadata.column import ColumnSpec
from tabsynth.metadata.detect import detect_column, dtype_spec
from tabsynth.metadata.sdv import from_sdv, is_sdv
from tabsynth.metadata.validation import check_frame

SCHEMA_VERSION = 1


class Metadata:
    """Column kinds, dtypes, nullability and domains of one table; immutable, validated on creation.

    Build it with :meth:`detect`, :meth:`from_json` (tabsynth or SDV JSON) or from ``ColumnSpec``
    objects. Change it through methods that return a new object (:meth:`with_public_domain`,
    :meth:`with_column`). Invalid metadata raises :class:`MetadataError` listing every problem.
    """

    __slots__ = ("_columns", "_primary_key")

    def __init__(self, columns: Iterable[ColumnSpec], primary_key: str | None = None) -> None:
        specs = tuple(columns)
        problems: list[str] = []
        if not specs:
            problems.append("metadata must describe at least one column")
        seen: set[str] = set()
        for spec in specs:
            if not isinstance(spec, ColumnSpec):
                problems.append(f"expected ColumnSpec objects, got {type(spec).__name__}")
                continue
            if spec.name in seen:
                problems.append(f"column {spec.name!r} is described twice")
            seen.add(spec.name)
            problems.extend(spec.problems())
        if primary_key is not None:
            pk = next((s for s in specs if isinstance(s, ColumnSpec) and s.name == primary_key), None)
            if pk is None:
                problems.append(f"primary key {primary_key!r} is not a column")
            elif pk.kind != "id":
                problems.append(f"primary key {primary_key!r} must have kind 'id', not {pk.kind!r}")
        if problems:
            head = "invalid metadata" if len(problems) == 1 else f"invalid metadata ({len(problems)} problems)"
            raise MetadataError(f"{head}: " + "; ".join(problems))
        object.__setattr__(self, "_columns", MappingProxyType({s.name: s for s in specs}))
        object.__setattr__(self, "_primary_key", primary_key)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Metadata is immutable; use with_column / with_public_domain")

    # --- access -------------------------------------------------------------------------------
    @property
    def columns(self) -> Mapping[str, ColumnSpec]:
        """Read-only mapping from column name to :class:`ColumnSpec`, in table order."""
        return self._columns

    @property
    def column_names(self) -> list[str]:
        return list(self._columns)

    @property
    def primary_key(self) -> str | None:
        return self._primary_key

    def names_of_kind(self, *kinds: str) -> list[str]:
        """Names of the columns whose kind is one of ``kinds``."""
        return [n for n, s in self._columns.items() if s.kind in kinds]

    def __len__(self) -> int:
        return len(self._columns)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Metadata)
            and tuple(self._columns.values()) == tuple(other._columns.values())
            and self._primary_key == other._primary_key
        )

    def __hash__(self) -> int:
        return hash((tuple(self._columns.values()), self._primary_key))

    def __repr__(self) -> str:
        kinds = ", ".join(f"{n}: {s.kind}" for n, s in self._columns.items())
        return f"Metadata({kinds})"

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def detect(cls, df: pd.DataFrame) -> "Metadata":
        """Detect kinds, dtypes, nullability and *observed* domains from a DataFrame."""
        check_frame(df)
        specs = [detect_column(name, df[name]) for name in df.columns]
        ids = [s.name for s in specs if s.kind == "id"]
        return cls(specs, primary_key=ids[0] if len(ids) == 1 else None)

    @classmethod
    def from_dtypes(cls, df: pd.DataFrame) -> "Metadata":
        """Describe a table from its column names and dtypes alone, reading no value: the schema a
        DP fit may use for free. Object and string columns are categorical, integer dtypes
        integer; declare other kinds with :meth:`with_column`."""
        check_frame(df)
        return cls([dtype_spec(name, df[name].dtype) for name in df.columns])

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Metadata":
        """Build from a tabsynth or SDV metadata dict."""
        if not isinstance(d, Mapping):
            raise MetadataError(f"metadata must be a JSON object, got {type(d).__name__}")
        d = dict(d)
        if is_sdv(d):
            specs, pk = from_sdv(d)
            return cls(specs, primary_key=pk)
        cols = d.get("columns")
        if not isinstance(cols, Mapping):
            raise MetadataError("metadata needs a 'columns' object mapping names to column descriptions")
        version = d.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise MetadataError(f"metadata schema_version {version} is not supported (expected {SCHEMA_VERSION})")
        bad = [n for n, c in cols.items() if not isinstance(c, Mapping)]
        if bad:
            raise MetadataError(f"column descriptions must be objects; fix {bad}")
        return cls([ColumnSpec.from_dict(n, dict(c)) for n, c in cols.items()], d.get("primary_key"))

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> "Metadata":
        """Read a JSON file (tabsynth or SDV single-table format), or parse a JSON string."""
        text: str
        if isinstance(source, os.PathLike) or (isinstance(source, str) and not source.lstrip().startswith("{")):
            p = Path(source)
            if not p.exists():
                raise MetadataError(f"metadata file {source} not found")
            text = p.read_text()
        else:
            text = source
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MetadataError(f"metadata is not valid JSON: {exc}") from exc
        return cls.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tabsynth format)."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION,
                               "columns": {n: s.to_dict() for n, s in self._columns.items()}}
        if self._primary_key is not None:
            out["primary_key"] = self._primary_key
        return out

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """Write JSON to ``path`` (when given) and return it."""
        text = json.dumps(self.to_dict(), indent=2, default=str)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    # --- changes ----------------------------------------------------------------------------
    def with_column(self, name: str, **changes: Any) -> "Metadata":
        """A copy with some fields of one column replaced."""
        self._require(name)
        specs = [s.with_changes(**changes) if s.name == name else s for s in self._columns.values()]
        return Metadata(specs, self._primary_key)

    def with_public_domain(
        self,
        name: str,
        *,
        bounds: tuple[Any, Any] | None = None,
        categories: Iterable[Any] | None = None,
    ) -> "Metadata":
        """Declare a column's domain public (known without looking at the private rows).

        Under DP a public domain costs no budget and is used as given; values outside it are
        clipped (numbers) or dropped into ``other`` (categories).
        """
        if bounds is None and categories is None:
            raise MetadataError(f"with_public_domain({name!r}) needs bounds or categories")
        spec = self._require(name)
        changes: dict[str, Any] = {"domain_source": "public"}
        changes["bounds"] = tuple(bounds) if bounds is not None else None
        changes["categories"] = tuple(categories) if categories is not None else None
        if spec.kind in ("categorical", "boolean") and bounds is not None:
            raise MetadataError(f"column {name!r} is {spec.kind}: give categories, not bounds")
        if spec.kind in ("numerical", "integer", "datetime") and categories is not None:
            raise MetadataError(f"column {name!r} is {spec.kind}: give bounds, not categories")
        return self.with_column(name, **changes)

    def _require(self, name: str) -> ColumnSpec:
        if name not in self._columns:
            raise MetadataError(f"unknown column {name!r}; known columns: {', '.join(self._columns)}")
        return self._columns[name]

    # --- checks -------------------------------------------------------------------------------
    def check_frame(self, df: pd.DataFrame) -> None:
        """Raise :class:`MetadataError` if ``df``'s columns do not match this metadata."""
        check_frame(df)
        missing = [c for c in self._columns if c not in df.columns]
        extra = [c for c in df.columns if c not in self._columns]
        problems = []
        if missing:
            problems.append(f"columns in the metadata but not in the table: {missing}")
        if extra:
            problems.append(f"columns in the table but not in the metadata: {extra}")
        if problems:
            raise MetadataError(
                "metadata does not match the table: " + "; ".join(problems)
                + "; detect it again with Metadata.detect(df) or edit the JSON"
            )
