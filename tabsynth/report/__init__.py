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
from pathlib import Path
from typing import Any

import pandas as pd

from tabsynth.errors import ConfigError
from tabsynth.report._common import (DEFAULT_MAX_ROWS, check_frame_arg, check_positive_int, check_same_columns,
                                     fmt, jsonable, prepare, resolve_metadata, subsample)
from tabsynth.report.formal import formal_section
from tabsynth.report.inventory import assign_roles, build_inventory, check_profile, threat_model
from tabsynth.report.summary import build_summary

# fidelity / utility / privacy_risk pull in scikit-learn, scipy and matplotlib: imported on first
# use so that ``import tabsynth`` stays fast.

__all__ = ["Report", "evaluate"]

REPORT_SCHEMA_VERSION = 1


class Report:
    """The result of :func:`evaluate`: numbers in :meth:`to_dict`, HTML and JSON writers."""

    def __init__(self, data: dict[str, Any], figures: dict[str, Any]) -> None:
        self._data = jsonable(data)
        self._figures = figures

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

        html = render_html(self._data, self._figures)
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
    from tabsynth.report.fidelity import evaluate_fidelity
    from tabsynth.report.privacy_risk import evaluate_privacy
    from tabsynth.report.utility import evaluate_utility

    t0 = time.perf_counter()
    real = check_frame_arg(real, "real")
    synthetic = check_same_columns(real, check_frame_arg(synthetic, "synthetic"), "synthetic")
    holdout = check_frame_arg(holdout, "holdout", allow_none=True)
    if holdout is not None:
        holdout = check_same_columns(real, holdout, "holdout")
    profile = check_profile(profile)
    max_rows = check_positive_int(max_rows, "max_rows", 10)
    max_plots = check_positive_int(max_plots, "max_plots", 0)
    n_attacks = check_positive_int(n_attacks, "n_attacks", 10)
    meta = resolve_metadata(metadata, real)
    if target is not None:
        if target not in real.columns:
            raise ConfigError(f"target {target!r} is not a column; choose one of {', '.join(map(str, real.columns))}")
        if meta.columns[target].kind == "id":
            raise ConfigError(f"target {target!r} is an id column; choose a column to predict")

    prep = prepare(meta, {"real": real, "synthetic": synthetic, "holdout": holdout})
    # cheap parts first, so a bad model or role list fails before the long computations
    formal = formal_section(model, meta)
    roles = assign_roles(prep, profile, target, quasi_identifiers, sensitive)
    R, S = prep.frames["real"], prep.frames["synthetic"]
    Hd = prep.frames.get("holdout")
    caveats: list[str] = []
    sizes = {"real": len(R), "synthetic": len(S), "holdout": None if Hd is None else len(Hd)}

    # fidelity: real vs synthetic, and real vs a same-size fresh real sample (reference)
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
    t_f = time.perf_counter()
    fidelity, fid_figs = evaluate_fidelity(prep, Rs, Ss, ref, ref_base, reference_label=ref_label, seed=seed,
                                           max_plots=max_plots)
    fidelity["seconds"] = time.perf_counter() - t_f

    # utility
    t_u = time.perf_counter()
    if target is not None and Hd is not None:
        utility = evaluate_utility(prep, R, S, Hd, target, seed=seed, max_rows=max_rows)
    else:
        utility = {"skipped": "give both target= and holdout= to measure utility" if target is None or Hd is None
                   else "not run"}
    utility["seconds"] = time.perf_counter() - t_u

    # inventory, threat model, privacy
    inventory = build_inventory(prep, real, roles, profile)
    threat = threat_model(roles, profile, target)
    t_p = time.perf_counter()
    privacy, priv_figs = evaluate_privacy(
        prep, R, S, Hd, raw={"real": real, "synthetic": synthetic, "holdout": holdout},
        quasi_identifiers=threat["quasi_identifiers"], sensitive=threat["sensitive"],
        seed=seed, max_rows=max_rows, n_attacks=n_attacks)
    privacy["seconds"] = time.perf_counter() - t_p

    scores = {"fidelity": fidelity.get("score"), "utility": utility.get("score"), "privacy": privacy.get("score")}
    subsampled = {k: v for k, v in sizes.items() if v is not None and v > max_rows}
    if subsampled:
        caveats.append(f"Large tables were subsampled to {max_rows:,} rows for the distance, classifier and "
                       f"sdmetrics parts ({', '.join(f'{k}: {v:,} rows' for k, v in subsampled.items())}).")
    summary = build_summary(fidelity, utility, privacy, formal, caveats)
    data = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "title": title or "Synthetic data report",
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "tabsynth_version": _version(),
        "scores": scores,
        "summary": summary,
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
    return Report(data, {"fidelity": fid_figs, "privacy": priv_figs})


def _version() -> str:
    try:
        from tabsynth.version import __version__
        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"
