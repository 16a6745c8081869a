"""The two-table calls of TabularAR: ``fit(events, subjects=..., key=..., order_by=...)``,
``sample(n_subjects=...)`` / ``sample(subjects=df)``, ``sample_to_file`` for both tables, and the
model file of a two-table fit. A model fitted on one table is untouched by all of this."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import torch

from tabsynth.datasets import Sequences
from tabsynth.errors import ConfigError
from tabsynth.io import read_table
from tabsynth.models.device import resolve_device, seeded
from tabsynth.models.persistence import FORMAT, FORMAT_VERSION, model_config, model_tensors, restore_model, write_model_file
from tabsynth.models.sequence import TwoTables
from tabsynth.models.sequence_data import SequenceColumn, check_tables, count_column, kept_counts, split_long
from tabsynth.models.sequence_rises import detect_rising, observed_bounds
from tabsynth.models.sequence_schema import Link, declared_rise_bounds, person_metadata, resolve_link
from tabsynth.privacy import PrivacySpent
from tabsynth.privacy.config import DPConfig

if TYPE_CHECKING:  # the mixin sits before BaseSynthesizer in the family's bases
    from tabsynth.models.base import BaseSynthesizer as _Family
else:
    _Family = object


class TwoTableMixin(_Family):
    """Adds the two-table mode to a flat model family (TabularAR)."""

    def fit(self, data: Any, metadata: Any = None, *, subjects: pd.DataFrame | str | os.PathLike | None = None,
            key: str | None = None, order_by: str | None = None, max_events: int | None = None,
            subject_columns: Sequence[str] | str | None = None,
            order_bounds: tuple[str | None, str | None] | None = None,
            non_decreasing: Sequence[str] | str | None = None) -> Any:
        """Learn ``data``; with ``key`` it is an event table (several rows per person), learned with the
        person table ``subjects`` (one row per person; None: persons without attributes), the events
        of a person in ``order_by`` order (None: their row order), at most ``max_events`` per person
        (default: the 99th percentile). A single long table with the person columns repeated on every
        event names them in ``subject_columns`` (``"auto"``: those constant within every person).
        ``order_bounds=(lower, upper)`` names person columns (either may be None) that every event's
        ``order_by`` value lies between (e.g. no visit after ``death_date``); ``non_decreasing`` names
        event columns that never fall within a person (a disease stage); generated events meet both.
        Left None outside DP, the numeric event columns that never fall within any person in the data
        (and rise for one) are learned so too (``two_tables_.rising`` lists them); ``[]`` turns that off.
        ``metadata`` may be a :class:`~tabsynth.metadata.SequenceMetadata` (or its JSON file): it
        declares the link and both tables' columns. Returns ``self``."""
        from tabsynth.metadata.sequence import SequenceMetadata

        two = (subjects, order_by, max_events, subject_columns, order_bounds, non_decreasing)
        sequence_meta = isinstance(metadata, SequenceMetadata) or _is_sequence_json(metadata)
        if key is None and not sequence_meta and all(v is None for v in two):
            self.__dict__.pop("two_tables_", None)
            return super().fit(data, metadata)
        link = resolve_link(metadata, key, order_by, order_bounds, non_decreasing)
        if link.key is None:
            raise ConfigError("subjects, subject_columns, order_by, max_events and non_decreasing describe an event "
                              "table: name its person id column with key=..., e.g. fit(events, subjects=persons, "
                              "key='id')")
        self._validate_params()
        key, order_by = link.key, link.order_by
        events = read_table(data) if isinstance(data, (str, os.PathLike)) else data
        subjects = read_table(subjects) if isinstance(subjects, (str, os.PathLike)) else subjects
        if subject_columns is None and subjects is None and link.metadata is not None and isinstance(events, pd.DataFrame):
            declared = [c for c in link.metadata.person_columns if c in events.columns]
            subject_columns = declared or None
        if subject_columns is not None:
            if subjects is not None:
                raise ConfigError("give the person table as subjects=... or name its columns in a long table "
                                  "with subject_columns=..., not both")
            subjects, events = split_long(events, key, order_by, subject_columns)
        persons = check_tables(events, subjects, key, order_by, private=self._private)
        events, persons = _declared(link.metadata, events, persons, self._private)
        _check_rising(link.non_decreasing, events, key, order_by, self._private)
        lower, upper = _bounds(link.order_bounds, order_by, persons, key)
        column = SequenceColumn(order_by, lower=lower, upper=upper)
        if non_decreasing is None and not self._private:
            found = detect_rising(events.drop(columns=[key]), pd.Index(persons[key]).get_indexer(events[key]),
                                  None if order_by is None else column.values(events[order_by]),
                                  exclude=[c for c in (order_by, *link.non_decreasing) if c is not None])
            link = dataclasses.replace(link, non_decreasing=(*link.non_decreasing, *found))
        self._fit_two_tables(events, persons, key, column, max_events, link)
        return self

    def _fit_two_tables(self, events: pd.DataFrame, persons: pd.DataFrame, key: str, column: SequenceColumn,
                        max_events: int | None, link: Link) -> None:
        from tabsynth.distributed import current

        self._runtime = current()
        self.device_ = resolve_device(self.device)
        dp = self.dp_config()
        if dp is not None:
            from tabsynth.models.sequence_private import fit_private

            if self.verbose:
                print(f"tabsynth TabularAR: fitting a person table and its event table ({events.shape[1]} columns) "
                      f"on {self.device_} under differential privacy per person")
            tables = TwoTables(self, None, key, column, list(persons.columns), list(events.columns))
            tables.metadata = link.metadata
            tables.rising = declared_rise_bounds(link.metadata, link.non_decreasing)
            with seeded(self.seed, self.device_):
                self.privacy_ = fit_private(tables, self, events, persons, max_events, dp)
            if self.verbose:
                print(f"privacy: {self.privacy_}")
        else:
            learned = persons.copy()
            count = count_column(persons)
            learned[count] = kept_counts(events, persons, key, max_events)
            attrs = learned.drop(columns=[key])
            person_model = type(self)(**self.get_params()).fit(attrs, person_metadata(link.metadata, attrs,
                                                                                     {count: None}))
            if self.verbose:
                print(f"tabsynth TabularAR: fitting the events of {len(persons)} persons ({len(events)} events x "
                      f"{events.shape[1]} columns) on {self.device_}")
            tables = TwoTables(self, person_model, key, column, list(persons.columns), list(events.columns))
            tables.count_column = count
            tables.metadata = link.metadata
            declared = declared_rise_bounds(link.metadata, link.non_decreasing)
            observed = observed_bounds(events, link.non_decreasing)
            tables.rising = {c: declared[c] or observed[c] for c in link.non_decreasing}
            with seeded(self.seed, self.device_):
                tables.fit(events, learned, max_events)
            self.n_rows_, self.n_subjects_ = len(events), len(persons)
            self.privacy_ = None
        self.two_tables_ = tables
        self.loss_history_ = tables.loss_history
        self._sample_calls = 0

    def _check_fitted(self) -> None:
        if not hasattr(self, "two_tables_"):
            super()._check_fitted()

    def privacy_spent(self) -> Any:
        if hasattr(self, "two_tables_"):
            return self.privacy_ or PrivacySpent.none()
        return super().privacy_spent()

    def _call_seed(self, seed: int | None) -> int:
        if seed is not None:
            return int(seed)
        base = self.seed if self.seed is not None else int(cast(int, np.random.SeedSequence().entropy) % 2**31)
        self._sample_calls += 1
        return int(np.random.default_rng([base, self._sample_calls - 1]).integers(2**31))

    def sample(self, n: int | None = None, seed: int | None = None, conditions: dict[str, Any] | None = None, *,
               max_tries: int = 20, n_subjects: int | None = None, subjects: pd.DataFrame | None = None) -> Any:
        """``n`` rows of a one-table model; for a two-table model ``(persons, events)``: ``n_subjects``
        new persons (``conditions`` on person columns honoured by each) or the given person rows
        ``subjects``, and their events, linked by fresh keys."""
        if not hasattr(self, "two_tables_"):
            if n_subjects is not None or subjects is not None:
                raise ConfigError("n_subjects and subjects are for a model fitted on a person table and its event "
                                  "table: fit(events, subjects=persons, key=...) first, or ask for n rows")
            if n is None:
                raise ConfigError("a model fitted on one table samples n rows: give sample(n)")
            return super().sample(n, seed, conditions, max_tries=max_tries)
        n_subjects = self._two_table_count(n, n_subjects, subjects)
        return self.two_tables_.sample(n_subjects, subjects, self._call_seed(seed), conditions, max_tries)

    def _two_table_count(self, n: Any, n_subjects: Any, subjects: Any) -> int | None:
        if n is not None and n_subjects is not None and n != n_subjects:
            raise ConfigError(f"n={n!r} and n_subjects={n_subjects!r} disagree; give n_subjects alone")
        n_subjects = n if n_subjects is None else n_subjects
        if (n_subjects is None) == (subjects is None):
            raise ConfigError("a two-table model samples n_subjects=... new persons or the events of the person "
                              "rows subjects=df: give exactly one of them")
        if subjects is None:
            return self._check_n(n_subjects)
        return None

    def sample_to_file(self, n: int, path: str | os.PathLike, batch_rows: int = 100_000, *, seed: int | None = None,
                       conditions: dict[str, Any] | None = None, max_tries: int = 20) -> Any:
        """One table: as for a flat model. Two tables: ``n`` persons streamed ``batch_rows`` persons at a
        time to ``<stem>_subjects<suffix>`` and ``<stem>_events<suffix>`` beside ``path``; returns the
        pair of paths."""
        if not hasattr(self, "two_tables_"):
            return super().sample_to_file(n, path, batch_rows, seed=seed, conditions=conditions, max_tries=max_tries)
        from tabsynth.io import TableWriter

        n = self._check_n(n)
        if not isinstance(batch_rows, (int, np.integer)) or batch_rows < 1:
            raise ConfigError(f"batch_rows must be a positive integer, got {batch_rows!r}")
        paths = two_table_paths(path)
        tables = self.two_tables_
        base = self._call_seed(seed)
        with TableWriter(paths[0], columns=tables.person_columns) as persons_out, \
                TableWriter(paths[1], columns=tables.event_columns) as events_out:
            for start in range(0, max(n, 1), batch_rows):
                size = min(batch_rows, n - start)
                seed_part = int(np.random.default_rng([base, start]).integers(2**31))
                pair = tables.sample(size, None, seed_part, conditions, max_tries, id_offset=start)
                persons_out.write(pair.subjects)
                events_out.write(pair.events)
        return Sequences(*paths, tables.key, tables.column.name)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model as one file: JSON config and torch tensors, never a pickle."""
        if not hasattr(self, "two_tables_"):
            return super().save(path)
        tables = self.two_tables_
        person = tables.persons
        params: dict[str, Any] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.get_params().items()}
        if self.privacy_ is not None:
            params["seed"] = None  # never published under DP (docs/privacy.md rule 15)
        if params.get("dp") is not None:
            params["dp"] = params["dp"].to_dict()
        head = {**(model_config(person) if person is not None else {}), "format": FORMAT,
                "format_version": FORMAT_VERSION, "class": type(self).__name__, "params": params}
        tensors = {f"events.{k}": v.detach().cpu() for k, v in tables.net.state_dict().items()}
        if person is not None:
            tensors.update({f"persons.{k}": v for k, v in model_tensors(person).items()})
        two = {**tables.to_dict(), "n_rows": self.n_rows_, "n_subjects": self.n_subjects_,
               "person_params": None if person is None else model_config(person)["params"],
               "has_persons": person is not None, "privacy": self.privacy_spent().to_dict()}
        return write_model_file(path, {**head, "two_tables": two}, tensors)

    @classmethod
    def _restore_two_tables(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], device: str | None) -> Any:
        two = config["two_tables"]
        params: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(config["params"]).items()}
        if params.get("dp") is not None:
            params["dp"] = DPConfig.from_dict(params["dp"])
        if device is not None:
            params["device"] = device
        model = cls(**params)
        model._validate_params()
        model.device_ = resolve_device(model.device)
        person = None
        if two["has_persons"]:
            inner = {k: v for k, v in config.items() if k != "two_tables"}
            inner["params"] = two.get("person_params") or inner["params"]
            person = restore_model(cls, inner, {k[8:]: v for k, v in tensors.items() if k.startswith("persons.")},
                                   device)
        state = {k[7:]: v for k, v in tensors.items() if k.startswith("events.")}
        model.two_tables_ = TwoTables.from_dict(model, person, two, state)
        model.n_rows_, model.n_subjects_ = two["n_rows"], two["n_subjects"]
        model.loss_history_ = model.two_tables_.loss_history
        spent = PrivacySpent.from_dict(two["privacy"]) if two.get("privacy") else None
        model.privacy_ = spent if spent is not None and spent.is_dp else None
        model._sample_calls = 0
        return model


def _is_sequence_json(metadata: Any) -> bool:
    """Whether ``metadata`` names a JSON file of sequence metadata (a one-table metadata file is not)."""
    if not isinstance(metadata, (str, os.PathLike)):
        return False
    try:
        return '"tabsynth-sequences"' in Path(metadata).read_text()
    except OSError:
        return False


def _declared(meta: Any, events: pd.DataFrame, persons: pd.DataFrame, private: bool
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables checked against declared metadata; under DP each cell read as its declared kind
    (one that does not parse is missing, never named)."""
    if meta is None:
        return events, persons
    meta.check_frames(events, persons, values=not private)
    if not private:
        return events, persons
    from tabsynth.metadata.public import declared_values

    return declared_values(events, meta.events), declared_values(persons, meta.persons)


def _check_rising(names: tuple[str, ...], events: pd.DataFrame, key: str, order_by: str | None,
                  private: bool) -> None:
    for name in names:
        if name not in events.columns or name in (key, order_by):
            raise ConfigError(f"non_decreasing names {name!r}, which is not an event column besides the key and "
                              f"order_by; columns: {', '.join(c for c in events.columns if c not in (key, order_by))}")
        dtype = events[name].dtype
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            how = "its dtype" if private else "its values"
            raise ConfigError(f"non_decreasing column {name!r} is not numeric ({how}: {dtype}); a column that never "
                              "falls is a number: convert it with pd.to_numeric")


def _bounds(order_bounds: Any, order_by: str | None, persons: pd.DataFrame, key: str) -> tuple[str | None, str | None]:
    """``lower`` and ``upper`` person columns of ``order_bounds``, or a :class:`ConfigError`."""
    if order_bounds is None:
        return None, None
    if order_by is None:
        raise ConfigError("order_bounds bound the sequence column: name it with order_by=...")
    if not isinstance(order_bounds, (tuple, list)) or len(order_bounds) != 2:
        raise ConfigError(f"order_bounds must be a pair (lower, upper) of person columns or None, got {order_bounds!r}")
    for name in order_bounds:
        if name is not None and (name not in persons.columns or name == key):
            raise ConfigError(f"order_bounds names {name!r}, which is not a column of the person table; columns: "
                              f"{', '.join(c for c in persons.columns if c != key)}")
    return order_bounds[0], order_bounds[1]


def two_table_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``<stem>_subjects<suffix>`` and ``<stem>_events<suffix>`` beside ``path`` (``.csv.gz`` kept whole)."""
    p = Path(path)
    name = p.name
    suffix = ".csv.gz" if name.endswith(".csv.gz") else p.suffix
    stem = name[: len(name) - len(suffix)] if suffix else name
    return p.with_name(f"{stem}_subjects{suffix}"), p.with_name(f"{stem}_events{suffix}")
