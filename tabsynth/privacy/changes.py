"""What the DP preprocessing did to each column, told from its noisy statistics alone.

A DP fit can fold real categories into ``other``, drop a missing-value slot, or widen a numeric
range to whole histogram bins. Users must hear of it, and the statement that says so is published
(model file, model card), so every sentence here is post-processing of the noisy release: the
noisy counts, the selection threshold and the DP range, never the raw rows (docs/privacy.md rule
17). Each change names its fix: declare the domain public.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from tabsynth.privacy.histograms import EMPTY_SIGMAS, ZOOM_BINS

#: Share of rows (noisy) folded into ``other`` from which the fold is reported as material.
FOLDED_SHARE = 0.01
#: Without a zoom, a range whose ends are within this ratio of each other sits inside two log-grid bins.
NARROW_RATIO = 3.0
#: A DP date range shorter than this many days is a collapse into a few months of the grid.
NARROW_DAYS = 92
#: Noisy missing counts above this many noise standard deviations are evidence of missing values.
MISSING_SIGMAS = 3.0
#: A folded share is reported only when its estimate exceeds this many of its standard deviations.
FOLDED_SIGMAS = 1.5


def _fix_categories(column: str) -> str:
    return (f"declare the categories public: meta.with_public_domain({column!r}, categories=[...]) in Python, "
            f"\"domain\": {{\"source\": \"public\", \"categories\": [...]}} in a metadata JSON, or "
            f"--public-domain {column}=a,b,c on the command line")


def _fix_bounds(column: str) -> str:
    return (f"declare the bounds public: meta.with_public_domain({column!r}, bounds=(low, high)) in Python, "
            f"\"domain\": {{\"source\": \"public\", \"bounds\": [low, high]}} in a metadata JSON, or "
            f"--public-bounds {column}=low:high on the command line")


_FIX_MISSING = "give more rows, a larger epsilon or a larger preprocessing_epsilon_share"


def _count(k: int) -> str:
    return f"{k} category" if k == 1 else f"{k} categories"


def _day(days: float) -> str:
    return (_dt.date(1970, 1, 1) + _dt.timedelta(days=round(days))).isoformat()


def _categorical(name: str, f: dict[str, Any], n_hat: int) -> list[dict[str, Any]]:
    if f["public"] or f["kind"] == "boolean":
        return []
    tau_sel, sigma = f["tau"], f["noise_std"]
    if f["kept"] == 0:
        return [{"column": name, "material": True, "fix": _fix_categories(name),
                 "what": f"no category passed the partition-selection threshold (about {tau_sel:.0f} rows): every "
                         "row comes out as 'other'"}]
    if f["kept"] == 1 and not f["other_kept"]:
        return [{"column": name, "material": True, "fix": _fix_categories(name),
                 "what": f"only one category passed the partition-selection threshold (about {tau_sel:.0f} rows): "
                         "the column comes out constant"}]
    share = max(f["folded"], 0.0) / max(n_hat, 1)
    # the folded estimate is the row count less the kept and missing counts: kept + 2 noisy terms
    spread = sigma * math.sqrt(f["kept"] + 2) / max(n_hat, 1)
    if share < FOLDED_SHARE or share <= FOLDED_SIGMAS * spread:
        return [{"column": name, "material": False, "fix": _fix_categories(name),
                 "what": f"{_count(f['kept'])} passed the partition-selection threshold (about {tau_sel:.0f} rows)"}]
    fate = ("come out as 'other'" if f["other_kept"] else
            "are not generated at all (too few, after the noise, for an 'other' slot)")
    return [{"column": name, "material": True, "fix": _fix_categories(name),
             "what": f"{_count(f['kept'])} kept; about {100 * share:.0f}% (+/- {100 * spread:.0f}%) of rows (noisy "
                     "estimate) hold categories "
                     f"below the partition-selection threshold (about {tau_sel:.0f} rows) and {fate}"}]


def _how(f: dict[str, Any]) -> str:
    """How the range was measured: the rounds of noisy histograms and the final bin width."""
    if f["zooms"]:
        return (f"noisy histograms (a coarse grid, then {f['zooms']} zoom(s) of {ZOOM_BINS} bins; bins about "
                f"{f['bin_width']:.3g}{' days' if f['kind'] == 'datetime' else ''} wide)")
    grid = "decade grid of dates" if f["kind"] == "datetime" else "log-scale grid"
    return f"a noisy histogram on a coarse {grid} (no zoom rose above the noise)"


def _numeric(name: str, f: dict[str, Any]) -> list[dict[str, Any]]:
    if f["public"]:
        return []
    lo, hi = f["lower"], f["upper"]
    if f["degenerate"]:
        return [{"column": name, "material": True, "fix": _fix_bounds(name),
                 "what": f"no histogram bin rose above the noise floor (about {f['noise_std'] * EMPTY_SIGMAS:.0f} rows): the "
                         "column is generated as a constant"}]
    if f.get("coarse"):
        span = f"[{_day(lo)}, {_day(hi)}]" if f["kind"] == "datetime" else f"[{lo:.4g}, {hi:.4g}]"
        return [{"column": name, "material": True, "fix": _fix_bounds(name),
                 "what": f"no histogram bin rose above the noise floor (about {f['noise_std'] * EMPTY_SIGMAS:.0f} "
                         f"rows): the range {span} is a coarse guess from the noisy counts and may miss the data"}]
    if f["kind"] == "datetime":
        narrow = hi - lo < NARROW_DAYS
        what = f"dates taken in [{_day(lo)}, {_day(hi)}] from {_how(f)}"
        what += ": the dates collapse into a few months" if narrow else "; dates outside are clipped"
        return [{"column": name, "material": narrow, "fix": _fix_bounds(name), "what": what}]
    # without a zoom, a range far from zero sits inside one or two log-grid bins (each 3.2 times as wide at
    # its top as at its bottom): the values blur
    far = not f["zooms"] and ((lo > 0 and hi / lo < NARROW_RATIO) or (hi < 0 and lo / hi < NARROW_RATIO))
    what = f"range taken as [{lo:.4g}, {hi:.4g}] from {_how(f)}; values outside are clipped"
    if far:
        what += "; values far from zero (years, lab values) come out spread across whole log-scale bins"
    return [{"column": name, "material": far, "fix": _fix_bounds(name), "what": what}]


def _missing(name: str, f: dict[str, Any]) -> list[dict[str, Any]]:
    m, sigma, floor = f.get("missing", 0.0), f["noise_std"], f["floor"]
    if not sigma or not MISSING_SIGMAS * sigma < m <= floor:
        return []
    return [{"column": name, "material": True, "fix": _FIX_MISSING,
             "what": f"some missing values (noisy count about {m:.0f}) lie below the noise floor (about "
                     f"{floor:.0f} rows) and are not generated"}]


def describe_changes(facts: dict[str, dict[str, Any]], *, n_hat: int) -> list[dict[str, Any]]:
    """One entry per change: ``column``, ``what`` (a sentence), ``material`` and ``fix``. Each
    column's facts carry its own noise std, threshold ``tau`` and missing-slot floor."""
    out: list[dict[str, Any]] = []
    for name, f in facts.items():
        if f["kind"] in ("categorical", "boolean"):
            out += _categorical(name, f, n_hat)
        else:
            out += _numeric(name, f)
        out += _missing(name, f)
    return out


def material(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The changes a user must hear of."""
    return [c for c in changes if c.get("material")]


def warning_text(changes: list[dict[str, Any]]) -> str:
    """One warning for every material change, then the fixes once."""
    found = material(changes)
    lines = [f"  {c['column']}: {c['what']}" for c in found]
    how = []
    if any(c["fix"] != _FIX_MISSING for c in found):
        how.append("declare the domains you know public: meta.with_public_domain('col', categories=[...]) or "
                   "bounds=(low, high) in Python, \"domain\": {\"source\": \"public\", ...} in a metadata JSON, "
                   "--public-domain col=a,b,c / --public-bounds col=low:high on the command line")
    if any(c["fix"] == _FIX_MISSING for c in found):
        how.append(f"for missing values: {_FIX_MISSING}")
    return ("differential privacy changed these columns (every column: "
            "privacy_spent().parts['preprocessing'].details['changes']):\n" + "\n".join(lines)
            + "\nTo keep more of the data, " + "; ".join(how))
