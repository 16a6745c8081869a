"""One report on a synthetic table: fidelity, utility, empirical privacy risk and formal guarantee.

>>> report = evaluate(real=train, synthetic=syn, holdout=test, target="income")
>>> report.scores            # {"fidelity": 0.9, "utility": 0.95, "privacy": 0.97}
>>> report.to_html("report.html"); report.to_json("report.json")

The report reads the real data outside any privacy budget (docs/privacy.md rule 17): it is for the
data custodian. It holds only aggregates, never real rows.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from tabsynth.errors import ConfigError
from tabsynth.report._common import (
    DEFAULT_MAX_ROWS,
    check_frame_arg,
    check_positive_int,
    check_same_columns,
    prepare,
    resolve_metadata,
)
from tabsynth.report.core import (
    REPORT_SCHEMA_VERSION,
    Report,
    package_version,
    run_fidelity,
    run_privacy,
    run_utility,
    subsample_caveat,
    table_sizes,
)
from tabsynth.report.formal import formal_privacy_section, formal_section
from tabsynth.report.inventory import assign_roles, build_inventory, check_profile, threat_model
from tabsynth.report.section import Section
from tabsynth.report.sequence_report import evaluate_sequences
from tabsynth.report.summary import build_summary, section_scores

# fidelity / utility / privacy_risk pull in scikit-learn, scipy and matplotlib: imported on first
# use so that ``import tabsynth`` stays fast.

__all__ = ["Report", "Section", "evaluate", "evaluate_sequences"]


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
    fidelity, fid_figs = run_fidelity(prep, seed=seed, max_rows=max_rows, max_plots=max_plots, caveats=caveats)
    utility = run_utility(prep, target, seed=seed, max_rows=max_rows)
    inventory = build_inventory(prep, real, roles, profile)
    threat = threat_model(roles, profile, target)
    privacy, priv_figs = run_privacy(prep, {"real": real, "synthetic": synthetic, "holdout": holdout}, threat,
                                  seed=seed, max_rows=max_rows, n_attacks=n_attacks)
    sizes = table_sizes(prep)
    caveats.extend(subsample_caveat(sizes, max_rows))
    sections = _sections(fidelity, utility, privacy, formal)
    data = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "title": title or "Synthetic data report",
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "tabsynth_version": package_version(),
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


def _sections(fidelity: dict, utility: dict, privacy: dict, formal: dict) -> list[Section]:
    """Each section's card, in the order the summary shows them."""
    from tabsynth.report.fidelity import fidelity_section
    from tabsynth.report.privacy_card import privacy_section
    from tabsynth.report.utility import utility_section

    return [fidelity_section(fidelity), utility_section(utility), privacy_section(privacy, formal),
            formal_privacy_section(formal)]

