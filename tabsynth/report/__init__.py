"""One report on a synthetic table: fidelity, utility, empirical privacy risk and formal guarantee.

>>> report = evaluate(real=train, synthetic=syn, holdout=test, target="income")
>>> report.scores            # {"fidelity": 0.9, "utility": 0.95, "privacy": 0.97}
>>> report.to_html("report.html"); report.to_json("report.json")

The report reads the real data outside any privacy budget (docs/privacy.md rule 17): it is for the
data custodian. It holds only aggregates, never real rows.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tabsynth.errors import ConfigError
from tabsynth.report._common import (
    DEFAULT_MAX_ROWS,
    Prepared,
    check_frame_arg,
    check_positive_int,
    check_same_columns,
    fmt,
    jsonable,
    prepare,
    resolve_metadata,
    subsample,
)
from tabsynth.report.formal import formal_privacy_section, formal_section
from tabsynth.report.inventory import assign_roles, build_inventory, check_profile, threat_model
from tabsynth.report.section import Section
from tabsynth.report.summary import build_summary, section_scores

# fidelity / utility / privacy_risk pull in scikit-learn, scipy and matplotlib: imported on first
# use so that ``import tabsynth`` stays fast.

__all__ = ["Report", "Section", "evaluate"]

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


def evaluate(real: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame | None = None,
             target: str | None = None, metadata: Any = None, profile: str | None = None, model: Any = None, *,
             quasi_identifiers: list[str] | None = None, sensitive: list[str] | None = None,
             max_rows: int = DEFAULT_MAX_ROWS, max_plots: int = 20, n_attacks: int = 2000, seed: int = 0,
             title: str | None = None) -> Report:
    """Compare ``synthetic`` with ``real`` (the generator's training rows) and return a :class:`Report`.

    holdout: real rows the generator never saw; enables the fidelity reference, utility and the
    empirical privacy tests. target: column to predict for utility (needs holdout). metadata: a
    Metadata, dict or JSON path (detected from ``real`` when None). profile: ``"healthcare"`` or
    ``"finance"`` for the default quasi-identifier/sensitive columns and wording. model: anything
    with ``privacy_spent()`` (or a PrivacySpent) for the formal guarantee. quasi_identifiers /
    sensitive override the roles guessed from column names. max_rows caps every table used for
    distances, classifiers and sdmetrics (random subsample, stated in the report); the singling-out,
    linkability and inference attacks use the whole tables, n_attacks predicates or targets each,
    and attack every sensitive column and quasi-identifier as a secret.
    """
    from threadpoolctl import threadpool_limits

    # scikit-learn's OpenMP loops spin-wait: on a busy machine two threads run ~10x slower than one
    with threadpool_limits(limits=1, user_api="openmp"):
        return _evaluate(real, synthetic, holdout, target, metadata, profile, model,
                         quasi_identifiers=quasi_identifiers, sensitive=sensitive, max_rows=max_rows,
                         max_plots=max_plots, n_attacks=n_attacks, seed=seed, title=title)


def _evaluate(real, synthetic, holdout, target, metadata, profile, model, *, quasi_identifiers, sensitive,
              max_rows, max_plots, n_attacks, seed, title) -> Report:
    t0 = time.perf_counter()
    real, synthetic, holdout = _check_tables(real, synthetic, holdout)
    profile = check_profile(profile)
    max_rows = check_positive_int(max_rows, "max_rows", 10)
    max_plots = check_positive_int(max_plots, "max_plots", 0)
    n_attacks = check_positive_int(n_attacks, "n_attacks", 10)
    meta = resolve_metadata(metadata, real)
    _check_target(target, real, meta)

    prep = prepare(meta, {"real": real, "synthetic": synthetic, "holdout": holdout})
    # cheap parts first, so a bad model or role list fails before the long computations
    formal = formal_section(model, meta)
    roles = assign_roles(prep, profile, target, quasi_identifiers, sensitive)
    caveats: list[str] = []
    fidelity, fid_figs = _fidelity(prep, seed=seed, max_rows=max_rows, max_plots=max_plots, caveats=caveats)
    utility = _utility(prep, target, seed=seed, max_rows=max_rows)
    inventory = build_inventory(prep, real, roles, profile)
    threat = threat_model(roles, profile, target)
    privacy, priv_figs = _privacy(prep, {"real": real, "synthetic": synthetic, "holdout": holdout}, threat,
                                  seed=seed, max_rows=max_rows, n_attacks=n_attacks)
    sizes = _sizes(prep)
    caveats.extend(_subsample_caveat(sizes, max_rows))
    sections = _sections(fidelity, utility, privacy, formal)
    data = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "title": title or "Synthetic data report",
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "tabsynth_version": _version(),
        "scores": section_scores(sections),
        "summary": build_summary(sections, caveats),
        "settings": {"max_rows": max_rows, "max_plots": max_plots, "n_attacks": n_attacks, "seed": seed,
                     "profile": profile, "target": target},
        "data": {"rows": sizes, "columns": len(real.columns), "analysed_columns": prep.columns,
                 "excluded_id_columns": prep.ids, "subsample_cap": max_rows},
        "formal_guarantee": formal,
        "inventory": inventory,
        "threat_model": threat,
        "fidelity": fidelity,
        "utility": utility,
        "privacy": privacy,
        "seconds": time.perf_counter() - t0,
    }
    return Report(data, {"fidelity": fid_figs, "privacy": priv_figs}, sections)


def _check_tables(real, synthetic, holdout) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """The three tables as data frames with the real table's columns (holdout optional)."""
    real = check_frame_arg(real, "real")
    synthetic = check_same_columns(real, check_frame_arg(synthetic, "synthetic"), "synthetic")
    holdout = check_frame_arg(holdout, "holdout", allow_none=True)
    if holdout is not None:
        holdout = check_same_columns(real, holdout, "holdout")
    return real, synthetic, holdout


def _check_target(target: str | None, real: pd.DataFrame, meta: Any) -> None:
    """The utility target must be a column that can be predicted (not an id)."""
    if target is None:
        return
    if target not in real.columns:
        raise ConfigError(f"target {target!r} is not a column; choose one of {', '.join(map(str, real.columns))}")
    if meta.columns[target].kind == "id":
        raise ConfigError(f"target {target!r} is an id column; choose a column to predict")


def _sizes(prep: Prepared) -> dict[str, int | None]:
    """Rows of each prepared table (holdout None when not given)."""
    hd = prep.frames.get("holdout")
    return {"real": len(prep.frames["real"]), "synthetic": len(prep.frames["synthetic"]),
            "holdout": None if hd is None else len(hd)}


def _subsample_caveat(sizes: dict[str, int | None], max_rows: int) -> list[str]:
    """The caveat naming the tables cut to ``max_rows`` rows, when any were."""
    subsampled = {k: v for k, v in sizes.items() if v is not None and v > max_rows}
    if not subsampled:
        return []
    return [f"Large tables were subsampled to {max_rows:,} rows for the distance, classifier and "
            f"sdmetrics parts ({', '.join(f'{k}: {v:,} rows' for k, v in subsampled.items())})."]


def _fidelity(prep: Prepared, *, seed: int, max_rows: int, max_plots: int,
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


def _utility(prep: Prepared, target: str | None, *, seed: int, max_rows: int) -> dict[str, Any]:
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


def _privacy(prep: Prepared, raw: dict[str, pd.DataFrame | None], threat: dict[str, Any], *, seed: int,
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


def _sections(fidelity: dict, utility: dict, privacy: dict, formal: dict) -> list[Section]:
    """Each section's card, in the order the summary shows them."""
    from tabsynth.report.fidelity import fidelity_section
    from tabsynth.report.privacy_card import privacy_section
    from tabsynth.report.utility import utility_section

    return [fidelity_section(fidelity), utility_section(utility), privacy_section(privacy, formal),
            formal_privacy_section(formal)]


def _version() -> str:
    try:
        from tabsynth.version import __version__
        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"


from tabsynth.report.sequence_report import evaluate_sequences  # noqa: E402  (it builds on the helpers above)

__all__ += ["evaluate_sequences"]
