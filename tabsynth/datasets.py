"""The real tables bundled with tabsynth (see ``datasets/README.md`` for sources and licences)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, overload

import pandas as pd

from tabsynth.errors import InputFileError

_FILES = {
    "adult": "adult_train.csv.gz",
    "adult_train": "adult_train.csv.gz",
    "adult_test": "adult_test.csv.gz",
    "german_credit": "german_credit.csv.gz",
    "credit_data": "credit_data.csv.gz",
    "flchain": "flchain.csv.gz",
    "hmda": "hmda.csv.gz",
    "telco_churn": "telco_churn.csv.gz",
    "nmes1988": "nmes1988.csv.gz",
    "rotterdam": "rotterdam.csv.gz",
    "nass_cds": "nass_cds.csv.gz",
    "yrbss": "yrbss.csv.gz",
}

#: The target column of each bundled table, for utility evaluation.
TARGETS = {
    "adult": "income",
    "adult_train": "income",
    "adult_test": "income",
    "german_credit": "credit",
    "credit_data": "Status",
    "flchain": "death",
    "hmda": "deny",
    "telco_churn": "churn",
    "nmes1988": "insurance",
    "rotterdam": "death",
    "nass_cds": "dead",
    "yrbss": "gender",
}


#: The tables with several rows per person: (key, sequence column or None) of each, shipped as
#: ``sequences/<name>_subjects.csv.gz`` and ``sequences/<name>_events.csv.gz``.
SEQUENCES = {
    "pbcseq": ("id", "day"),
    "rwm5yr": ("id", "year"),
    "nlswork": ("idcode", "year"),
    "headache": ("id", "time"),
    "cracker": ("id", None),
}

#: Suggested targets of the sequence tables: (person-table target or None, event-table target).
SEQUENCE_TARGETS = {
    "pbcseq": ("status", "stage"),
    "rwm5yr": (None, "outwork"),
    "nlswork": (None, "union"),
    "headache": (None, "headache"),
    "cracker": (None, "choice"),
}


class Sequences(tuple):
    """A person table and its event table, a pair: ``persons, events = load("pbcseq")``.

    ``key`` links them (one row per person in ``subjects``); ``order_by`` is the events' sequence
    column, or None where the row order within a person is the sequence.
    """

    key: str
    order_by: str | None

    def __new__(cls, subjects: pd.DataFrame, events: pd.DataFrame, key: str,
                order_by: str | None = None) -> Sequences:
        pair = super().__new__(cls, (subjects, events))
        pair.key, pair.order_by = key, order_by
        return pair

    @property
    def subjects(self) -> pd.DataFrame:
        """One row per person."""
        return self[0]

    @property
    def events(self) -> pd.DataFrame:
        """One row per event, linked to ``subjects`` by ``key``."""
        return self[1]

    def head(self, n: int = 5) -> Sequences:
        """The first ``n`` persons and their events."""
        subjects = self[0].head(n)
        return Sequences(subjects, self[1][self[1][self.key].isin(subjects[self.key])], self.key, self.order_by)

    def joined(self) -> pd.DataFrame:
        """One long table: each event with its person's columns (persons without events left out)."""
        subjects, events = self
        person = [c for c in subjects.columns if c != self.key]
        return events.merge(subjects, on=self.key, how="left", sort=False)[
            [self.key, *[c for c in events.columns if c != self.key], *person]]

    def __repr__(self) -> str:
        def part(x: object) -> str:
            return f"<{len(x)} rows>" if isinstance(x, pd.DataFrame) else repr(x)

        return (f"Sequences(subjects={part(self[0])}, events={part(self[1])}, key={self.key!r}, "
                f"order_by={self.order_by!r})")


def names() -> list[str]:
    """Names of the flat tables (one row per person) accepted by :func:`load`."""
    return sorted(_FILES)


def sequence_names() -> list[str]:
    """Names of the person + event tables accepted by :func:`load` (it returns :class:`Sequences`)."""
    return sorted(SEQUENCES)


def data_dir() -> Path:
    """The folder holding the bundled files (``$TABSYNTH_DATASETS`` overrides)."""
    env = os.environ.get("TABSYNTH_DATASETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "datasets"


def path(name: str, part: str | None = None) -> Path:
    """Path of a bundled table's gzip CSV file; for a sequence table, ``part`` is ``"subjects"`` or
    ``"events"``."""
    if name in SEQUENCES:
        if part not in ("subjects", "events"):
            raise InputFileError(f"{name!r} is a person table and an event table: ask for part='subjects' "
                                 "or part='events'")
        relative = Path("sequences") / f"{name}_{part}.csv.gz"
    elif name in _FILES:
        relative = Path(_FILES[name])
    else:
        raise InputFileError(f"unknown dataset {name!r}; choose one of {', '.join(names() + sequence_names())}")
    p = data_dir() / relative
    if not p.exists():
        raise InputFileError(
            f"bundled dataset file {p} is missing; tabsynth must be installed from a source "
            "checkout (pip install -e .) or TABSYNTH_DATASETS must point at the datasets folder"
        )
    return p


#: The names in :data:`SEQUENCES`, for the type of :func:`load`.
SequenceName = Literal["pbcseq", "rwm5yr", "nlswork", "headache", "cracker"]


@overload
def load(name: SequenceName) -> Sequences: ...


@overload
def load(name: str) -> pd.DataFrame: ...


def load(name: str) -> pd.DataFrame | Sequences:
    """Load a bundled table by name (see :func:`names`; ``adult`` is ``adult_train``). A sequence
    table (:data:`SEQUENCES`) comes as :class:`Sequences`, a named pair ``(subjects, events)``."""
    if name in SEQUENCES:
        key, order_by = SEQUENCES[name]
        return Sequences(pd.read_csv(path(name, "subjects"), low_memory=False),
                         pd.read_csv(path(name, "events"), low_memory=False), key, order_by)
    return pd.read_csv(path(name), low_memory=False)
