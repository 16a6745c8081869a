"""The privacy budget as a reviewer reads it: each part's settings as labelled text and its
per-column figures as small tables, and the list of what the DP preprocessing changed.

The statement's ``details`` are free-form (numbers, flags, lists of pairs, per-column dicts);
they stay as they are in the JSON and are laid out here for the HTML only.
"""

from __future__ import annotations

from typing import Any

from tabsynth.report._common import num_text

#: Detail keys shown in their own section rather than inside the budget table.
OWN_SECTION = ("changes",)
#: Longest list printed in full inside a cell; longer ones are folded.
SHORT_LIST = 8


def _label(key: str) -> str:
    return str(key).replace("_", " ")


def _text(value: Any) -> str:
    if value is None:
        return "not set"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return "; ".join(f"{_label(k)}: {_text(v)}" for k, v in value.items()) if value else "none"
    return num_text(value)


def _table(title: str, first: str, rows: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """A dict of scalars, a dict of dicts or a list of dicts as header + text rows."""
    if isinstance(rows, dict):
        items = [{first: k, **(v if isinstance(v, dict) else {"value": v})} for k, v in rows.items()]
    else:
        items = [r if isinstance(r, dict) else {"value": r} for r in rows]
    keys = list(dict.fromkeys(k for r in items for k in r))
    return {"title": title, "columns": [_label(k) for k in keys],
            "rows": [[_text(r.get(k)) for k in keys] for r in items]}


def part_view(details: dict[str, Any]) -> dict[str, Any]:
    """One part's details split into settings (label, text), lists and tables."""
    settings, lists, tables = [], [], []
    for key, value in details.items():
        if key in OWN_SECTION:
            continue
        if isinstance(value, dict) and value and any(isinstance(v, dict) for v in value.values()):
            tables.append(_table(_label(key), "column", value))
        elif isinstance(value, dict) and len(value) > 3:
            tables.append(_table(_label(key), "column", value))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
            tables.append(_table(_label(key), "item", list(value)))
        elif isinstance(value, (list, tuple)) and len(value) > SHORT_LIST:
            lists.append({"title": _label(key), "count": len(value), "all": [_text(v) for v in value],
                          "head": ", ".join(_text(v) for v in value[:SHORT_LIST])})
        else:
            settings.append({"label": _label(key), "text": _text(value)})
    return {"settings": settings, "lists": lists, "tables": tables}


def dp_changes(parts: dict[str, Any]) -> list[dict[str, Any]] | None:
    """What the DP preprocessing changed (``details["changes"]`` of its part), or None when the
    statement does not list it."""
    pre = parts.get("preprocessing")
    details = getattr(pre, "details", None) or {}
    changes = details.get("changes")
    if not changes:
        return None
    rows = []
    for c in changes:
        if c.get("material") is False:  # told in the statement, not worth a reviewer's row
            continue
        extra = {k: _text(v) for k, v in c.items() if k not in ("column", "what", "fix", "material")}
        fix = c.get("fix")
        rows.append({"column": str(c.get("column")), "what": _text(c.get("what")),
                     "fix": [f"{_label(k)}: {_text(v)}" for k, v in fix.items()] if isinstance(fix, dict)
                     else [_text(fix)], "extra": extra})
    return rows or None
