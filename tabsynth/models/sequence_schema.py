"""What a two-table fit reads off declared :class:`~tabsynth.metadata.SequenceMetadata`: the link
(key, sequence column, its bounds, the columns that never fall) and each model's metadata.

The person model learns the person table without its key, plus what the fit adds beside it (the
number of events, or under DP each person's first sequence value). The event encoders read the
events as the model learns them: the sequence column as gaps, a column that never falls as rises.
Declared bounds carry over to both (a gap or a rise of a column within ``[low, high]`` lies within
public bounds of its own), so a DP fit reads them for free.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tabsynth.errors import ConfigError
from tabsynth.metadata import ColumnSpec, Metadata
from tabsynth.metadata.detect import detect_column, dtype_spec
from tabsynth.metadata.sequence import SequenceMetadata
from tabsynth.models.sequence_rises import rise_bounds


@dataclass(frozen=True)
class Link:
    """How the two tables are linked, from the fit's arguments and the declared metadata."""

    metadata: SequenceMetadata | None
    key: str | None
    order_by: str | None
    order_bounds: tuple[str | None, str | None] | None
    non_decreasing: tuple[str, ...]


def resolve_link(metadata: Any, key: str | None, order_by: str | None, order_bounds: Any,
                 non_decreasing: Any) -> Link:
    """The link: each argument left None is taken from ``metadata`` (a :class:`SequenceMetadata` or
    its JSON file), and one given in both places must agree, else a :class:`ConfigError`."""
    if isinstance(non_decreasing, str):
        non_decreasing = [non_decreasing]
    if metadata is None:
        return Link(None, key, order_by, order_bounds, tuple(non_decreasing or ()))
    if isinstance(metadata, (str, os.PathLike)):
        metadata = SequenceMetadata.from_json(metadata)
    if not isinstance(metadata, SequenceMetadata):
        raise ConfigError(f"a person table and its event table take ts.SequenceMetadata (or its JSON file), not "
                          f"{type(metadata).__name__}: build it with ts.SequenceMetadata.from_dtypes(events, persons, "
                          "key=...) and declare columns on its persons and events")
    declared: dict[str, Any] = {"key": metadata.key, "order_by": metadata.order_by,
                                "order_bounds": metadata.order_bounds, "non_decreasing": metadata.non_decreasing}
    given: dict[str, Any] = {"key": key, "order_by": order_by, "order_bounds": order_bounds,
                             "non_decreasing": non_decreasing}
    for name, value in given.items():
        if value is None:
            continue
        same = tuple(value) == tuple(declared[name]) if name in ("order_bounds", "non_decreasing") else \
            value == declared[name]
        if not same:
            raise ConfigError(f"{name}={value!r} disagrees with the metadata's {declared[name]!r}; leave {name} unset "
                              "(the metadata declares it) or change the metadata")
    bounds = metadata.order_bounds if any(b is not None for b in metadata.order_bounds) else None
    return Link(metadata, metadata.key, metadata.order_by, bounds, tuple(metadata.non_decreasing))


def _table(specs: Sequence[ColumnSpec], source: str) -> Metadata:
    return Metadata(list(specs), primary_key=None, source=source)


def person_metadata(meta: SequenceMetadata | None, frame: pd.DataFrame, added: Mapping[str, ColumnSpec | None],
                    ) -> Metadata | None:
    """The person model's metadata for ``frame`` (the person table without its key, plus the
    ``added`` columns: a spec, or None to detect it from its values outside DP); None without
    declared metadata (the model detects, or under DP takes the dtypes)."""
    if meta is None:
        return None
    specs = [meta.persons.columns[c] for c in frame.columns if c not in added]
    for name, spec in added.items():
        specs.append(spec if spec is not None else detect_column(name, frame[name]))
    return _table(specs, meta.persons.source)


def event_metadata(meta: SequenceMetadata | None, frame: pd.DataFrame, gaps: str | None, integer: bool,
                   private: bool) -> Metadata | None:
    """The event encoders' metadata for ``frame`` (the events as learned: ``gaps`` names the
    sequence column, now gaps, ``integer`` whether they are whole); None under DP without declared
    metadata (the dtypes are used)."""
    if meta is None:
        if private:
            return None
        detected = Metadata.detect(frame)
        return detected if gaps is None else detected.with_column(gaps, **_gap_changes(None, frame[gaps], integer))
    specs = []
    for name in frame.columns:
        spec = meta.events.columns[name]
        if name == gaps:
            spec = spec.with_changes(**_gap_changes(spec, frame[name], integer))
        elif name in meta.non_decreasing and spec.bounds is not None:
            spec = spec.with_changes(bounds=rise_bounds(spec.bounds))
        specs.append(spec)
    return _table(specs, meta.events.source)


def _gap_changes(spec: ColumnSpec | None, s: pd.Series, integer: bool) -> dict[str, Any]:
    """A gap column's description: a number, its bounds ``[0, high - low]`` when ``spec`` declares
    public bounds of the sequence column."""
    bounds = None
    if spec is not None and spec.bounds is not None and spec.domain_source != "observed":
        low, high = spec.bounds
        if spec.kind == "datetime":
            low, high = (pd.Timestamp(low).value / 86_400e9, pd.Timestamp(high).value / 86_400e9)
        bounds = (0.0, float(high) - float(low))
    kind = "integer" if integer else "numerical"
    return dict(kind=kind, dtype=str(s.dtype), bounds=bounds, categories=None, datetime_format=None, timezone=None,
                resolution=None, domain_source="public" if bounds is not None else None)


def start_spec(meta: SequenceMetadata | None, name: str, s: pd.Series) -> ColumnSpec:
    """Under DP, the person column of each person's first sequence value: the sequence column's
    declared description (its public bounds included) under the new name, else from the dtype."""
    if meta is not None and meta.order_by is not None:
        spec = meta.events.columns[meta.order_by]
        return spec.with_changes(name=name, nullable=True)
    return dtype_spec(name, s.dtype)


def declared_rise_bounds(meta: SequenceMetadata | None, names: Sequence[str]) -> dict[str, tuple[float, float] | None]:
    """Each never-falling column's declared public bounds (None where none are declared)."""
    out: dict[str, tuple[float, float] | None] = {}
    for name in names:
        spec = meta.events.columns.get(name) if meta is not None else None
        public = spec is not None and spec.bounds is not None and spec.domain_source != "observed"
        out[name] = (float(spec.bounds[0]), float(spec.bounds[1])) if public and spec is not None and spec.bounds \
            else None
    return out
