"""The real tables bundled with tabsynth (see ``datasets/README.md`` for sources and licences)."""

from __future__ import annotations

import os
from pathlib import Path

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


def names() -> list[str]:
    """Names accepted by :func:`load`."""
    return sorted(_FILES)


def data_dir() -> Path:
    """The folder holding the bundled files (``$TABSYNTH_DATASETS`` overrides)."""
    env = os.environ.get("TABSYNTH_DATASETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "datasets"


def path(name: str) -> Path:
    """Path of a bundled table's gzip CSV file."""
    if name not in _FILES:
        raise InputFileError(f"unknown dataset {name!r}; choose one of {', '.join(names())}")
    p = data_dir() / _FILES[name]
    if not p.exists():
        raise InputFileError(
            f"bundled dataset file {p} is missing; tabsynth must be installed from a source "
            "checkout (pip install -e .) or TABSYNTH_DATASETS must point at the datasets folder"
        )
    return p


def load(name: str) -> pd.DataFrame:
    """Load a bundled table by name (see :func:`names`; ``adult`` is ``adult_train``)."""
    return pd.read_csv(path(name), low_memory=False)
