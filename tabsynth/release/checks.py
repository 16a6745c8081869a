"""The checks ``release()`` makes before it touches the budget, so that nothing is spent on a mistake."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabsynth.errors import ConfigError, DataError, PrivacyConfigError, PrivacyError
from tabsynth.models.registry import model_names
from tabsynth.privacy.config import MAX_RELEASE_DELTA, check_delta, check_epsilon
from tabsynth.privacy.ledger import Ledger
from tabsynth.privacy.randomness import reproducible_noise_active
from tabsynth.privacy.unit import unit_mismatch

__all__ = ["check_budget", "check_metadata", "check_names", "check_positive_int", "check_release_delta",
           "check_unit", "open_ledger", "read_frame", "read_holdout"]


def check_positive_int(value: Any, name: str) -> int | None:
    """``value`` as an int (None stays None), or :class:`ConfigError` unless it is a positive integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def read_frame(data: Any, name: str, private: bool = False) -> pd.DataFrame:
    """A checked table from a DataFrame or a table file; :class:`DataError` for anything else.

    ``private``: the table a DP fit reads; a CSV's cells are read as text and only the structure is
    checked, since the fit reads each cell as its declared kind and a bad one as missing
    (docs/privacy.md rules 4a, 4b): no single row changes a dtype or refuses the release."""
    from tabsynth.io import read_table
    from tabsynth.metadata import check_frame

    if isinstance(data, (str, os.PathLike)):
        data = read_table(data, text=private)
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"{name} must be a pandas DataFrame or a table file, got {type(data).__name__}")
    return check_frame(data, values=not private)


def check_names(dataset_id: Any, model: Any) -> None:
    """The dataset id and model family, and that no test-only noise mode is on."""
    if not isinstance(dataset_id, str) or not dataset_id.strip():
        raise ConfigError(f"dataset_id must be a non-empty string naming the source table, got {dataset_id!r}")
    if model not in model_names():
        raise ConfigError(f"model must be one of {', '.join(model_names())}, got {model!r}")
    if reproducible_noise_active():
        raise PrivacyConfigError("release() refuses to run inside reproducible_noise(): that test mode derives the "
                                 "DP noise from a seed, so the release would not be private")


def read_holdout(holdout: Any, df: pd.DataFrame) -> pd.DataFrame:
    """The holdout table, which must have the columns of ``df`` in the same order."""
    holdout = read_frame(holdout, "holdout")
    if list(holdout.columns) != list(df.columns):
        raise DataError("holdout must have the same columns as data, in the same order; "
                        f"differences: {sorted(set(map(str, df.columns)) ^ set(map(str, holdout.columns)))}")
    return holdout


def check_metadata(metadata: Any, df: pd.DataFrame) -> Any:
    """``metadata`` as a :class:`~tabsynth.metadata.Metadata` (read from JSON when needed) that fits ``df``."""
    from tabsynth.metadata import Metadata

    metadata = metadata if isinstance(metadata, Metadata) else Metadata.from_json(metadata)
    metadata.check_frame(df)
    return metadata


def check_release_delta(delta: Any) -> float:
    """A given release delta: above 0 (DP-SGD needs one) and at most :data:`MAX_RELEASE_DELTA`.

    Checked before any reservation against a constant, never the row count (docs/privacy.md rule 3);
    the fit then refuses a delta at or above ``1/n_hat`` for its noisy row count."""
    delta = check_delta(delta)
    if delta <= 0:
        raise PrivacyConfigError("delta must be greater than 0 for DP-SGD training; leave it unset for the default "
                                 "(the ledger's delta in proportion to epsilon)")
    if delta > MAX_RELEASE_DELTA:
        raise PrivacyConfigError(
            f"delta={delta:g} is above {MAX_RELEASE_DELTA:g}, the most a release may spend (a fixed cap, so that "
            "whether a delta is refused says nothing about the table). Use a delta of at most "
            f"{MAX_RELEASE_DELTA:g}, or leave it unset for the budget's share")
    return delta


def check_budget(budget: Any) -> tuple[float, float]:
    """``budget=(epsilon, delta)`` as checked floats."""
    if not isinstance(budget, (tuple, list)) or len(budget) != 2:
        raise ConfigError(f"budget must be a pair (epsilon, delta), e.g. budget=(3.0, 1e-5), got {budget!r}")
    return check_epsilon(budget[0], "budget epsilon"), check_delta(budget[1], "budget delta")


def open_ledger(ledger: Ledger | str | os.PathLike, dataset_id: str, budget: tuple[float, float] | None,
                unit: str = "row", key: str | None = None) -> Ledger:
    """The ledger, created with ``budget`` (in ``unit``) for a new dataset; a different existing budget is refused."""
    if not isinstance(ledger, Ledger):
        if budget is None and not Path(ledger).exists():
            raise PrivacyError(f"{ledger}: no ledger file there; check the path, or create the ledger by giving the "
                               "dataset's total budget (budget=(epsilon, delta); CLI: --budget-epsilon E "
                               "--budget-delta D)")
        ledger = Ledger(ledger)
    if budget is not None:
        now = ledger.set_budget(dataset_id, *budget, unit=unit, key=key, only_if_new=True)
        if (now.epsilon, now.delta) != budget:
            raise ConfigError(
                f"dataset {dataset_id!r} already has a budget of epsilon={now.epsilon:.6g}, delta={now.delta:.6g} "
                f"in {ledger.path}; drop the budget (CLI: --budget-epsilon/--budget-delta), or change it "
                f"deliberately with: tabsynth ledger {ledger.path} --dataset-id {dataset_id} --set-budget E D")
    return ledger


def check_unit(ledger: Ledger, dataset_id: str, unit: str = "row", key: str | None = None) -> None:
    """Refuse a release whose privacy unit (``"row"``, or ``"person"`` with its ``key`` column) is not
    the unit of ``dataset_id``'s budget, before anything is reserved (the reservation checks it again)."""
    have = ledger.budget(dataset_id)
    if (have.unit, have.key) != (unit, key):
        raise unit_mismatch(dataset_id, (have.unit, have.key), (unit, key))
