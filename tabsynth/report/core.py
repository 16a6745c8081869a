"""The report object and the section runners shared by the one-table and the two-table report."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tabsynth.report._common import Prepared, fmt, jsonable, subsample
from tabsynth.report.section import Section

REPORT_SCHEMA_VERSION = 1


class Report:
    """The result of :func:`evaluate`: numbers in :meth:`to_dict`, HTML and JSON writers."""

    def __init__(self, data: dict[str, Any], figures: dict[str, Any], sections: Sequence[Section] = ()) -> None:
        self._data = jsonable(data)
        self._figures = figures
        self._sections = tuple(sections)

    @property
    def sections(self) -> tuple[Section, ...]:
        """Each section's verdict, score and explanation as the summary card shows them."""
        return self._sections

    @property
    def scores(self) -> dict[str, float | None]:
        """fidelity, utility and privacy in [0, 1] (higher is better; None when not computed)."""
        return dict(self._data["scores"])

    @property
    def verdicts(self) -> dict[str, str]:
        return {k: v["light"] for k, v in self._data["summary"]["verdicts"].items()}

    def to_dict(self) -> dict[str, Any]:
        """Every number of the report as plain JSON-ready Python (no NaN: missing is None)."""
        return json.loads(json.dumps(self._data, allow_nan=False))

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        text = json.dumps(self._data, indent=2, allow_nan=False)
        if path is not None:
            p = Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text + "\n", encoding="utf-8")
        return text

    def to_html(self, path: str | os.PathLike | None = None) -> str:
        from tabsynth.report.render import render_html

        html = render_html(self._data, self._figures, {s.name: s.title for s in self._sections})
        if path is not None:
            p = Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(html, encoding="utf-8")
        return html

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __repr__(self) -> str:
        s = ", ".join(f"{k}={fmt(v)}" for k, v in self.scores.items())
        return f"Report({s})"


def table_sizes(prep: Prepared) -> dict[str, int | None]:
    """Rows of each prepared table (holdout None when not given)."""
    hd = prep.frames.get("holdout")
    return {"real": len(prep.frames["real"]), "synthetic": len(prep.frames["synthetic"]),
            "holdout": None if hd is None else len(hd)}


def subsample_caveat(sizes: dict[str, int | None], max_rows: int) -> list[str]:
    """The caveat naming the tables cut to ``max_rows`` rows, when any were."""
    subsampled = {k: v for k, v in sizes.items() if v is not None and v > max_rows}
    if not subsampled:
        return []
    return [f"Large tables were subsampled to {max_rows:,} rows for the distance, classifier and "
            f"sdmetrics parts ({', '.join(f'{k}: {v:,} rows' for k, v in subsampled.items())})."]


def run_fidelity(prep: Prepared, *, seed: int, max_rows: int, max_plots: int,
              caveats: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fidelity of real vs synthetic beside a same-size fresh real sample (the holdout, else the other
    half of the real table, which adds a caveat), timed."""
    from tabsynth.report.fidelity import evaluate_fidelity

    R, S, Hd = prep.frames["real"], prep.frames["synthetic"], prep.frames.get("holdout")
    Rs = subsample(R, max_rows, seed)
    Ss = subsample(S, max_rows, seed + 1)
    if Hd is not None:
        ref_base, ref = Rs, subsample(Hd, min(len(Ss), max_rows), seed + 2)
        ref_label = f"{len(ref):,} holdout rows compared with the real table the same way"
    else:
        half = R.sample(frac=0.5, random_state=seed + 3)
        rest = R.drop(half.index)
        ref_base, ref = subsample(half, max_rows, seed), subsample(rest, min(len(Ss), max_rows), seed + 2)
        ref_label = "one random half of the real table compared with the other half (no holdout given)"
        caveats.append("No holdout was given: utility and the privacy attacks were not run, and the fidelity "
                       "reference uses half of the real table.")
    t = time.perf_counter()
    fidelity, figs = evaluate_fidelity(prep, Rs, Ss, ref, ref_base, reference_label=ref_label, seed=seed,
                                       max_plots=max_plots)
    fidelity["seconds"] = time.perf_counter() - t
    return fidelity, figs


def run_utility(prep: Prepared, target: str | None, *, seed: int, max_rows: int) -> dict[str, Any]:
    """TSTR against TRTR when a target and a holdout are given, else the reason it was skipped; timed."""
    from tabsynth.report.utility import evaluate_utility

    t = time.perf_counter()
    Hd = prep.frames.get("holdout")
    if target is not None and Hd is not None:
        utility = evaluate_utility(prep, prep.frames["real"], prep.frames["synthetic"], Hd, target, seed=seed,
                                   max_rows=max_rows)
    else:
        utility = {"skipped": "give both target= and holdout= to measure utility"}
    utility["seconds"] = time.perf_counter() - t
    return utility


def run_privacy(prep: Prepared, raw: dict[str, pd.DataFrame | None], threat: dict[str, Any], *, seed: int,
             max_rows: int, n_attacks: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Copies, distances and attacks on the threat model's quasi-identifiers and secrets; timed."""
    from tabsynth.report.privacy_risk import evaluate_privacy

    t = time.perf_counter()
    privacy, figs = evaluate_privacy(
        prep, prep.frames["real"], prep.frames["synthetic"], prep.frames.get("holdout"), raw=raw,
        quasi_identifiers=threat["quasi_identifiers"], sensitive=threat["sensitive"],
        seed=seed, max_rows=max_rows, n_attacks=n_attacks)
    privacy["seconds"] = time.perf_counter() - t
    return privacy, figs


def package_version() -> str:
    try:
        from tabsynth.version import __version__
        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"
