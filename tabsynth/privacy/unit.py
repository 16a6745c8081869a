"""The privacy unit: what two neighbouring data sets differ by.

``"row"``: one row of the table. ``"person"``: one person, with their row in the person table and
all their events, identified by the key column ``key``. The ledger records a dataset's unit with
its budget, and every statement (:class:`~tabsynth.privacy.PrivacySpent`) names its unit: a budget
per person and a spend per row cannot be added up, so the ledger refuses to mix them.
"""

from __future__ import annotations

from typing import Any

from tabsynth.errors import PrivacyConfigError

__all__ = ["UNITS", "check_unit", "neighbours", "unit_change", "unit_label", "unit_mismatch"]

#: The privacy units tabsynth states guarantees for.
UNITS = ("row", "person")


def check_unit(unit: Any, key: Any = None, *, need_key: bool = False) -> tuple[str, str | None]:
    """``(unit, key)`` checked: ``"row"`` without a key, or ``"person"`` with the name of its key column.

    ``need_key``: a person unit must name its key (the ledger records which column a person is)."""
    if unit not in UNITS:
        raise PrivacyConfigError(f"the privacy unit must be one of {', '.join(map(repr, UNITS))}, got {unit!r}")
    if unit == "row":
        if key is not None:
            raise PrivacyConfigError(f"a key ({key!r}) goes with the unit 'person' only; a per-row unit has no key: "
                                     "pass unit='person' with the key, or drop the key")
        return "row", None
    if key is None and need_key:
        raise PrivacyConfigError("a per-person unit needs the name of the person key column, e.g. "
                                 "unit='person', key='id'")
    if key is not None and (not isinstance(key, str) or not key.strip()):
        raise PrivacyConfigError(f"the person key must be a column name (a non-empty string), got {key!r}")
    return "person", key


def unit_label(unit: str, key: str | None = None) -> str:
    """``"per row"``, ``"per person (key 'id')"`` or ``"per person"`` when the key is not known."""
    if unit == "row":
        return "per row"
    return f"per person (key {key!r})" if key else "per person"


def neighbours(unit: str, key: str | None = None) -> str:
    """The sentence that says what neighbouring data sets differ by, as cards and reports state it."""
    if unit == "row":
        return "Neighbouring data sets differ by one row"
    where = f", key {key!r}" if key else ""
    return f"Neighbouring data sets differ by one person (their row in the person table and all their events{where})"


def unit_mismatch(dataset_id: str, have: tuple[str, str | None], want: tuple[str, str | None]) -> PrivacyConfigError:
    """The error for a release whose unit is not its dataset's, with what to do instead."""
    return PrivacyConfigError(
        f"dataset {dataset_id!r}'s budget is {unit_label(*have)}; this release is {unit_label(*want)}. Spends with "
        "different units cannot be added up, so the release is refused and nothing was spent. Release it "
        f"{unit_label(*have)} (the way the dataset's earlier releases were made), or give it another dataset id "
        "with its own budget when it really is another table.")


def unit_change(dataset_id: str, have: tuple[str, str | None], want: tuple[str, str | None],
                counted: int) -> PrivacyConfigError:
    """The error for a new unit on a dataset whose ``counted`` spends were made in its old one."""
    return PrivacyConfigError(
        f"dataset {dataset_id!r} has {counted} counted spends {unit_label(*have)}; its budget cannot become "
        f"{unit_label(*want)}, since spends in different units do not add up. Keep its unit (leave unit unset), "
        "or record the other unit's budget under a new dataset id.")
