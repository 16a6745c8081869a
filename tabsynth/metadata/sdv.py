"""Read SDV single-table metadata JSON (``METADATA_SPEC_VERSION: SINGLE_TABLE_V1``)."""

from __future__ import annotations

from typing import Any

from tabsynth.errors import MetadataError
from tabsynth.metadata.column import ColumnSpec

_SDTYPES = {"numerical": "numerical", "categorical": "categorical", "boolean": "boolean",
            "datetime": "datetime", "id": "id"}


def is_sdv(d: dict[str, Any]) -> bool:
    """True when ``d`` looks like SDV metadata (single- or multi-table)."""
    if "METADATA_SPEC_VERSION" in d or "tables" in d:
        return True
    cols = d.get("columns")
    return isinstance(cols, dict) and any(isinstance(c, dict) and "sdtype" in c for c in cols.values())


def from_sdv(d: dict[str, Any]) -> tuple[list[ColumnSpec], str | None]:
    """Column specs and primary key from SDV metadata.

    SDV's PII sdtypes (email, phone_number, address, ...) become ``id`` columns: they are not
    modelled and are regenerated, never copied.
    """
    if "tables" in d:
        tables = d["tables"]
        if len(tables) != 1:
            raise MetadataError(
                f"SDV metadata holds {len(tables)} tables ({', '.join(tables)}); tabsynth models one "
                "table: pass that table's entry alone"
            )
        d = next(iter(tables.values()))
    columns = d.get("columns")
    if not isinstance(columns, dict):
        raise MetadataError("SDV metadata has no 'columns' mapping")
    specs = []
    for name, c in columns.items():
        sdtype = c.get("sdtype")
        kind = _SDTYPES.get(sdtype, "id")
        if kind == "numerical" and str(c.get("computer_representation", "")).lower().startswith(("int", "uint")):
            kind = "integer"
        extra = {"sdtype": sdtype} if sdtype not in _SDTYPES else {}
        specs.append(
            ColumnSpec(
                name=name,
                kind=kind,
                datetime_format=c.get("datetime_format") if kind == "datetime" else None,
                extra=extra,
            )
        )
    return specs, d.get("primary_key")
