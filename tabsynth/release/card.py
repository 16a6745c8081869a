"""The Markdown model card of a release (``public/model_card.md``), written from public facts only.

Each section is one function of the public manifest and the synthetic rows, so the card never
reads the real data (docs/privacy.md rule 17).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tabsynth.privacy.unit import neighbours, unit_label

__all__ = ["model_card"]

#: The sections every card carries unchanged: intended use, known limits (after the unit's) and how to verify.
_USE = (
    "## Intended use", "",
    "- Exploratory analysis, prototyping, teaching, software testing and sharing the shape of the data "
    "with people who may not see the real rows.",
    "- Aggregate statistics and models whose conclusions are checked against the real data by the "
    "custodian before decisions rest on them.",
    "- Not for decisions about individuals, and not as a substitute for the real data in final "
    "scientific, clinical or financial conclusions.", "",
    "## Known limits", "",
)
_LIMITS_AND_FILES = (
    "- Differential privacy bounds what the table reveals about any one row; it does not stop "
    "inferences about groups that hold in the population.",
    "- Noise lowers fidelity: rare categories, small subgroups, outliers and distribution tails are "
    "weakened or missing, and relations between many columns are only approximate.",
    "- Column names and kinds, and any domain the custodian declared public in the metadata, are "
    "treated as public; they are not protected.",
    "- The number of synthetic rows (of persons, for a person table and its events) is a setting; by default "
    "it is the noisy row (person) count measured inside the private preprocessing (the exact count is used "
    "nowhere and disclosed nowhere).",
    "- The budget is tracked per dataset id. Releases from the same people under another dataset id, "
    "or from another ledger, are not composed with this one.", "",
    "## Files and verification", "",
    "`manifest.json` lists the SHA-256 of every public file; check a copy with "
    "`tabsynth verify <folder>`.", "",
)


def _unit_limit(p: dict[str, Any]) -> str:
    """The known limit that follows from the privacy unit the statement names."""
    if p.get("unit", "row") == "row":
        return ("- The guarantee is per row. A person with several rows in the source table is protected less "
                "(roughly k times epsilon for k rows).")
    key = p.get("unit_key")
    return (f"- The guarantee is {unit_label('person', key)}: a person's row in the person table and all their "
            "events are protected together. The same human under two keys counts as two persons, protected "
            "separately.")


def _fmt(x: Any) -> str:
    """A float to six significant digits, anything else as ``str``."""
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def _md_cell(x: Any) -> str:
    """``x`` formatted for one cell of a Markdown table (no pipes, no line breaks)."""
    return _fmt(x).replace("|", "\\|").replace("\n", " ")


def _changes_section(parts: dict[str, Any]) -> list[str]:
    """What the DP preprocessing changed (told from its noisy statistics), with how to avoid it."""
    changes = ((parts.get("preprocessing") or {}).get("details") or {}).get("changes") or []
    found = [c for c in changes if c.get("material")]
    if not changes:
        return []
    lines = ["### What differential privacy changed", ""]
    if not found:
        return lines + ["The private preprocessing kept every column's categories and ranges as measured; "
                        "see `manifest.json` for each column.", ""]
    lines += ["The private preprocessing measures each column with noise, so rare categories, some missing values "
              "and exact ranges can be lost. In this release:", "", "| column | what changed | how to keep it |",
              "|---|---|---|"]
    lines += [f"| {_md_cell(c['column'])} | {_md_cell(c['what'])} | {_md_cell(c['fix'])} |" for c in found]
    return lines + [""]


def _columns(table: pd.DataFrame) -> list[str]:
    return ["| column | type |", "|---|---|"] + [f"| {_md_cell(c)} | {_md_cell(t)} |" for c, t in table.dtypes.items()]


def _two_tables(manifest: dict[str, Any], synthetic: Any) -> list[str]:
    """What a release with a key holds: a person table, its event table and the metadata that links them."""
    m, s = manifest["model"], manifest["synthetic"]
    key, order = _md_cell(s["key"]), s.get("order_by")
    subjects, events = synthetic.subjects, synthetic.events
    person = ", ".join(f"`{_md_cell(c)}`" for c in subjects.columns if c != s["key"]) or "none besides the key"
    return [f"A synthetic person table of {len(subjects):,} persons (`data_subjects.parquet`, `data_subjects.csv.gz`) "
            f"and its event table of {len(events):,} events (`data_events.parquet`, `data_events.csv.gz`), generated "
            f"together by a {m['name']} model trained on the source person and event tables, per person: each "
            f"person's row and all their events. The key `{key}` links them; its values are fresh, no real key is "
            "reused. " + (f"A person's events are in `{_md_cell(order)}` order (non-decreasing within every person)."
                          if order else "A person's events are in row order."),
            "", f"`metadata.json` declares the key, the sequence column and which columns belong to the person "
            f"({person}); it was made from the column names and types alone, no value was read off the rows.",
            "", "Neither table's rows are real records: each is sampled from the trained model.", "",
            "### Person table", ""] + _columns(subjects) + ["", "### Event table", ""] + _columns(events)


def _release_section(manifest: dict[str, Any], synthetic: Any) -> list[str]:
    """The title, the release facts and the released tables' columns."""
    m = manifest["model"]
    lines = [f"# Synthetic data release `{manifest['release_id']}`", "",
             f"- Dataset: `{manifest['dataset_id']}`",
             f"- Created: {manifest['created_at']} with tabsynth {manifest['versions']['tabsynth']}",
             f"- Source table fingerprint (keyed): `{manifest.get('source_fingerprint') or 'not recorded'}`", "",
             "## What was released", ""]
    if not isinstance(synthetic, pd.DataFrame):
        return lines + _two_tables(manifest, synthetic)
    lines += [f"A synthetic table of {len(synthetic):,} rows and {synthetic.shape[1]} columns, generated by a "
             f"{m['name']} model trained on the source table, as `data.parquet` and `data.csv.gz` (the same rows). "
             "Its rows are not real records: each is sampled from the trained model.", ""]
    return lines + _columns(synthetic)


def _parts_table(parts: dict[str, Any]) -> list[str]:
    """One row per part of the DP pipeline: its epsilon, delta, mechanism and details."""
    if not parts:
        return []
    lines = ["| part | epsilon | delta | mechanism | details |", "|---|---|---|---|---|"]
    for name, part in parts.items():
        details = ", ".join(f"{k}=({len(v)} entries, see manifest.json)" if isinstance(v, (dict, list))
                            else f"{k}={_fmt(v)}" for k, v in (part.get("details") or {}).items())
        lines.append(f"| {_md_cell(name)} | {_md_cell(part['epsilon'])} | {_md_cell(part['delta'])} | "
                     f"{_md_cell(part['mechanism'])} | {_md_cell(details or '-')} |")
    return lines + [""]


def _privacy_section(p: dict[str, Any]) -> list[str]:
    """The DP statement with its parts and what DP changed, or the warning that there is none."""
    lines = ["", "## Differential privacy statement", ""]
    if p["epsilon"] == "inf":
        return lines + ["**No formal privacy guarantee.** This model was trained without differential privacy: "
                        "the synthetic rows may reveal information about individual rows of the source table. Do "
                        "not publish it as a private release.", ""]
    unit, key = p.get("unit", "row"), p.get("unit_key")
    lines += [f"The model, and therefore this table, satisfies **({_fmt(p['epsilon'])}, {_fmt(p['delta'])})-"
              f"differential privacy {unit_label(unit, key)}**. {neighbours(unit, key)}: one is the other with "
              f"one {unit} added or removed. The statement covers the whole pipeline (preprocessing statistics, "
              "sampling conditions and training); the synthetic rows are post-processing of the private model, so "
              "any analysis of them keeps the guarantee.", "",
              f"- Accountant: {p.get('accountant') or 'not stated'}",
              f"- Composition of the parts: {p.get('composition') or 'not stated'}", ""]
    parts = p.get("parts") or {}
    return lines + _parts_table(parts) + _changes_section(parts)


def _budget_section(manifest: dict[str, Any]) -> list[str]:
    """How the ledger composes releases of the dataset, and this release's share of its budget."""
    budget = manifest.get("budget")
    if not budget:
        return []
    return [f"Across releases, the privacy ledger composes the spends on dataset `{manifest['dataset_id']}` "
            f"by {budget['composition']}.", "",
            "| | epsilon | delta |", "|---|---|---|",
            f"| dataset budget | {_fmt(budget['total']['epsilon'])} | {_fmt(budget['total']['delta'])} |",
            f"| this release | {_fmt(budget['this_release']['epsilon'])} | "
            f"{_fmt(budget['this_release']['delta'])} |",
            f"| remaining after it (at the time of writing) | {_fmt(budget['remaining']['epsilon'])} | "
            f"{_fmt(budget['remaining']['delta'])} |", ""]


def _settings_section(m: dict[str, Any]) -> list[str]:
    """The model family, its class and every published setting."""
    lines = ["## Model and settings", "", f"- Model: {m['name']} (`{m['class']}`)"]
    return lines + [f"- `{k}`: `{_fmt(v)}`" for k, v in (m.get("settings") or {}).items()] + [""]


def _internal_note(manifest: dict[str, Any]) -> list[str]:
    """The warning that the custodian's copy holds an internal report that must never be published."""
    if not manifest.get("internal_files"):
        return []
    return ["The custodian's copy of this release also holds `internal/` (a fidelity, utility and "
            "privacy-risk report). That report reads the real data outside the privacy budget: it is for "
            "the data custodian only and must never be published or shipped with `public/`.", ""]


def model_card(manifest: dict[str, Any], synthetic: Any) -> str:
    """The Markdown model card of a release, from its (public) manifest and synthetic rows only
    (``synthetic``: a table, or a :class:`~tabsynth.datasets.Sequences` pair)."""
    lines = (_release_section(manifest, synthetic) + _privacy_section(manifest["privacy"])
             + _budget_section(manifest) + _settings_section(manifest["model"]) + list(_USE)
             + [_unit_limit(manifest["privacy"])] + list(_LIMITS_AND_FILES) + _internal_note(manifest))
    return "\n".join(lines)
