"""One report on a synthetic person table and its event table.

>>> report = evaluate_sequences(real=train, synthetic=syn, holdout=test, target="status")
>>> report.scores   # person fidelity, event fidelity, events per person, aggregates, transitions, ...

The person table is compared as a one-table report; the event table's columns (the sequence column
also as the gap between consecutive events) as well; then what only two tables have: events per
person, per-person aggregates, transitions and the order rules. Utility and privacy risks are
measured on persons (one row per person: person columns and the aggregates of their events), never
on events, since the person is the unit of privacy.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pandas as pd

from tabsynth.datasets import Sequences
from tabsynth.errors import ConfigError, DataError
from tabsynth.metadata import Metadata
from tabsynth.report._common import DEFAULT_MAX_ROWS, Prepared, check_positive_int, convert, prepare
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
from tabsynth.report.section import Section, threshold_check
from tabsynth.report.sequences import (
    N_EVENTS,
    aggregates,
    check_like,
    check_rules,
    check_sequences,
    events_per_person,
    gap_name,
    ordered,
    person_frame,
    person_prep,
)

__all__ = ["evaluate_sequences"]

_SIDES = ("real", "synthetic", "ref_base", "ref")
_UNIT = ("one person: their person-table row and the aggregates of all their events (number of events; first, "
         "last and mean or number of distinct values of each event column)")


def evaluate_sequences(real: Sequences, synthetic: Sequences, holdout: Sequences | None = None,
                       target: str | None = None, profile: str | None = None, model: Any = None, *,
                       order_bounds: tuple[str | None, str | None] | None = None,
                       non_decreasing: list[str] | None = None,
                       quasi_identifiers: list[str] | None = None, sensitive: list[str] | None = None,
                       max_rows: int = DEFAULT_MAX_ROWS, max_plots: int = 20, n_attacks: int = 2000, seed: int = 0,
                       title: str | None = None) -> Report:
    """Compare a synthetic person + event pair with the real one (the generator's training persons).

    real, synthetic, holdout: :class:`~tabsynth.datasets.Sequences` with the same key, sequence
    column and columns (holdout: real persons the generator never saw; enables the reference,
    utility and the privacy attacks). target: a person column or a per-person aggregate (e.g.
    ``"bili_last"``, ``"n_events"``) to predict for utility. order_bounds: the (lower, upper) person
    columns that bound the sequence column, either None. non_decreasing: event columns declared never
    to fall within a person (checked with the order). quasi_identifiers / sensitive name columns
    of the per-person frame. The other arguments are those of :func:`tabsynth.report.evaluate`.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        return _evaluate_sequences(real, synthetic, holdout, target, profile, model, order_bounds=order_bounds,
                                   non_decreasing=non_decreasing,
                                   quasi_identifiers=quasi_identifiers, sensitive=sensitive, max_rows=max_rows,
                                   max_plots=max_plots, n_attacks=n_attacks, seed=seed, title=title)


def _check_inputs(real, synthetic, holdout, order_bounds, non_decreasing, profile, settings: dict[str, Any]):
    from tabsynth.report.inventory import check_profile

    real = check_sequences(real, "real")
    if len(real.subjects) < 2:
        raise DataError("real has a single person; the report compares distributions over persons: give at "
                        "least two")
    synthetic = check_like(real, check_sequences(synthetic, "synthetic"), "synthetic")
    holdout = check_like(real, check_sequences(holdout, "holdout", allow_none=True), "holdout")
    rules = check_rules(real, order_bounds, non_decreasing)
    settings["profile"] = check_profile(profile)
    for name, minimum in (("max_rows", 10), ("max_plots", 0), ("n_attacks", 10)):
        settings[name] = check_positive_int(settings[name], name, minimum)
    return real, synthetic, holdout, rules


def _halves(real: Sequences, seed: int) -> tuple[Sequences, Sequences]:
    """The real persons split at random into two halves, each with its events."""
    keys = real.subjects[real.key]
    first = keys.sample(frac=0.5, random_state=seed).to_numpy()

    def part(inside: bool) -> Sequences:
        s = real.subjects[keys.isin(first) == inside]
        e = real.events[real.events[real.key].isin(first) == inside]
        return Sequences(s, e, real.key, real.order_by)

    return part(True), part(False)


def _person_prep(real: Sequences, pairs: dict[str, Sequences | None]) -> Prepared | None:
    """The person tables without the key, prepared; None when the key is their only column."""
    subjects = {k: p.subjects.drop(columns=real.key) for k, p in pairs.items() if p is not None}
    if subjects["real"].shape[1] == 0:
        return None
    meta = Metadata.detect(subjects["real"])
    if all(s.kind == "id" or s.kind in ("pii", "text") for s in meta.columns.values()):
        return None
    return prepare(meta, subjects)


def _event_prep(real: Sequences, pairs: dict[str, Sequences | None]) -> Prepared:
    """The event tables without the key, prepared, in sequence order, with the gap column."""
    events = {k: p.events.drop(columns=real.key) for k, p in pairs.items() if p is not None}
    prep = prepare(Metadata.detect(events["real"]), {})
    prep.frames = {k: ordered(p, convert(p.events, prep)) for k, p in pairs.items() if p is not None}
    if real.order_by is not None and real.order_by in prep.columns:
        gap = gap_name(real.order_by)
        prep.columns.append(gap)
        prep.kinds[gap] = "numerical"
    return prep


def _own(prep_e: Prepared, real: Sequences) -> Prepared:
    """The event view without the derived gap column: the columns per-person aggregates are made of."""
    return dataclasses.replace(prep_e, columns=[c for c in prep_e.columns if c in real.events.columns])


def _per_person(prep_p: Prepared | None, base: Prepared, pair: Sequences,
                events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ordered events of the analysed columns with the key, one row per person)."""
    subjects = convert(pair.subjects, prep_p) if prep_p is not None else pd.DataFrame(index=pair.subjects.index)
    aggs = aggregates(base, events, pair.key)
    return events, person_frame(subjects, pair.subjects[pair.key], events_per_person(pair), aggs)


def _frames(real, synthetic, holdout, seed: int, caveats: list[str]) -> dict[str, Sequences | None]:
    """The pairs every section compares: real, synthetic, holdout and the reference pair."""
    if holdout is not None:
        ref_base, ref = real, holdout
    else:
        ref_base, ref = _halves(real, seed + 3)
        caveats.append("No holdout was given: utility and the privacy attacks were not run, and the reference "
                       "compares one random half of the real persons with the other half.")
    return {"real": real, "synthetic": synthetic, "holdout": holdout, "ref_base": ref_base, "ref": ref}


def _check_target(target: str | None, prep_w: Prepared) -> None:
    if target is not None and target not in prep_w.columns:
        raise ConfigError(f"target {target!r} is neither a person column nor a per-person aggregate; choose one of "
                          f"{', '.join(map(str, prep_w.columns))}")


def _evaluate_sequences(real, synthetic, holdout, target, profile, model, *, order_bounds, non_decreasing,
                        quasi_identifiers,
                        sensitive, max_rows, max_plots, n_attacks, seed, title) -> Report:
    t0 = time.perf_counter()
    settings = {"max_rows": max_rows, "max_plots": max_plots, "n_attacks": n_attacks, "seed": seed}
    real, synthetic, holdout, rules = _check_inputs(real, synthetic, holdout, order_bounds, non_decreasing, profile,
                                                    settings)
    caveats: list[str] = []
    pairs = _frames(real, synthetic, holdout, seed, caveats)
    prep_p = _person_prep(real, pairs)
    prep_e = _event_prep(real, pairs)
    base = _own(prep_e, real)
    people = {k: _per_person(prep_p, base, p, prep_e.frames[k]) for k, p in pairs.items() if p is not None}
    prep_w = person_prep(prep_p, base, {k: people[k][1] for k in ("real", "synthetic", "holdout") if k in people})
    _check_target(target, prep_w)
    parts = _parts(real, pairs, prep_p, prep_e, prep_w, people, rules, target, caveats,
                   {**settings, "quasi_identifiers": quasi_identifiers, "sensitive": sensitive, "model": model})
    sections = _sections(parts)
    data = _data(parts, sections, caveats, real, pairs, prep_w, settings, target, rules)
    data["title"] = title or "Synthetic data report: person table and event table"
    data["seconds"] = time.perf_counter() - t0
    figures = {"fidelity": parts.pop("person_figs"), "events": parts.pop("event_figs"),
               "privacy": parts.pop("privacy_figs")}
    return Report(data, figures, sections)


def _fidelities(prep_p: Prepared | None, prep_e: Prepared, settings: dict[str, Any]) -> dict[str, Any]:
    """Fidelity of the person table and of the event table, each beside its reference."""
    kw = dict(seed=settings["seed"], max_rows=settings["max_rows"], max_plots=settings["max_plots"])
    out: dict[str, Any] = {}
    if prep_p is None:
        out["person_fidelity"], out["person_figs"] = ({"skipped": "the person table has no column besides the key "
                                                                  "to compare"}, {})
    else:
        out["person_fidelity"], out["person_figs"] = run_fidelity(prep_p, caveats=[], **kw)
    ev = dataclasses.replace(prep_e, frames={k: prep_e.frames[k] for k in ("real", "synthetic", "holdout")
                                             if k in prep_e.frames})
    out["event_fidelity"], out["event_figs"] = run_fidelity(ev, caveats=[], **kw)
    return out


def _sequence_parts(pairs, prep_e: Prepared, prep_w: Prepared, people, rules) -> dict[str, Any]:
    """Events per person, aggregates, transitions and the rules met."""
    from tabsynth.report.sequence_sections import (
        aggregate_scores,
        events_per_person_scores,
        order_scores,
        transition_scores,
    )
    from tabsynth.report.sequences import aggregate_names

    key = pairs["real"].key
    counts = {k: people[k][1][N_EVENTS] for k in _SIDES}
    base = _own(prep_e, pairs["real"]).columns
    names = aggregate_names(_own(prep_e, pairs["real"]))
    source = {f"{c}_{stat}": (c, stat) for c in base for stat in ("first", "last", "mean", "distinct")}
    return {
        "events_per_person": events_per_person_scores(*(counts[k] for k in _SIDES)),
        "aggregates": aggregate_scores(prep_w, names, {k: people[k][1] for k in _SIDES}, source),
        "transitions": transition_scores(prep_e, {k: people[k][0] for k in _SIDES}, key),
        "order": order_scores(pairs["real"], pairs["synthetic"], rules),
    }


def _parts(real, pairs, prep_p, prep_e, prep_w, people, rules, target, caveats, settings) -> dict[str, Any]:
    """Every section's numbers (and figures), timed."""
    from tabsynth.report.formal import formal_section
    from tabsynth.report.inventory import assign_roles, build_inventory, threat_model

    formal = formal_section(settings["model"], prep_w.meta)
    roles = assign_roles(prep_w, settings["profile"], target, settings["quasi_identifiers"], settings["sensitive"])
    out: dict[str, Any] = {"formal": formal, **_fidelities(prep_p, prep_e, settings)}
    t = time.perf_counter()
    out.update(_sequence_parts(pairs, prep_e, prep_w, people, rules))
    out["sequence_seconds"] = time.perf_counter() - t
    out["utility"] = run_utility(prep_w, target, seed=settings["seed"], max_rows=settings["max_rows"])
    out["inventory"] = build_inventory(prep_w, prep_w.frames["real"], roles, settings["profile"])
    threat = threat_model(roles, settings["profile"], target)
    threat["unit_of_privacy"] = _UNIT
    out["threat"] = threat
    raw = {k: prep_w.frames.get(k) for k in ("real", "synthetic", "holdout")}
    out["privacy"], out["privacy_figs"] = run_privacy(prep_w, raw, threat, seed=settings["seed"],
                                                   max_rows=settings["max_rows"], n_attacks=settings["n_attacks"])
    caveats.extend(subsample_caveat(table_sizes(prep_w), settings["max_rows"]))
    return out


def _fidelity_card(fid: dict[str, Any], name: str, title: str) -> Section:
    from tabsynth.report.fidelity import THRESHOLDS, fidelity_section

    if "skipped" in fid:
        return Section(name=name, title=title, score=None, verdict="grey", explanation=f"Not measured: "
                       f"{fid['skipped']}.", check=threshold_check(None, THRESHOLDS["green"], THRESHOLDS["amber"],
                                                                   True, "fidelity score"), details=fid)
    return dataclasses.replace(fidelity_section(fid), name=name, title=title)


def _sections(parts: dict[str, Any]) -> list[Section]:
    """Each section's card, in the order the summary shows them."""
    from tabsynth.report.formal import formal_privacy_section
    from tabsynth.report.privacy_card import privacy_section
    from tabsynth.report.sequence_sections import order_section, similarity_section
    from tabsynth.report.utility import utility_section

    return [
        _fidelity_card(parts["person_fidelity"], "fidelity", "Person table: does it look like the real persons?"),
        _fidelity_card(parts["event_fidelity"], "event_fidelity", "Event table: do the events look real?"),
        similarity_section("events_per_person", "Events per person", "Number of events per person",
                           parts["events_per_person"]),
        similarity_section("aggregates", "Per-person aggregates", "First, last and mean of each event column per "
                           "person", parts["aggregates"]),
        similarity_section("transitions", "Transitions between consecutive events", "Each event column given the "
                           "previous event's value", parts["transitions"]),
        order_section(parts["order"]),
        dataclasses.replace(utility_section(parts["utility"]), title="Utility: can it train models on persons?"),
        privacy_section(parts["privacy"], parts["formal"]),
        formal_privacy_section(parts["formal"]),
    ]


def _sizes_of(pairs: dict[str, Sequences | None]) -> dict[str, Any]:
    def size(p: Sequences | None, part: int) -> int | None:
        return None if p is None else len(p[part])

    return {"persons": {k: size(pairs[k], 0) for k in ("real", "synthetic", "holdout")},
            "events": {k: size(pairs[k], 1) for k in ("real", "synthetic", "holdout")}}


def _data(parts, sections, caveats, real, pairs, prep_w, settings, target, rules) -> dict[str, Any]:
    """The report's JSON: the one-table report's keys on persons, and the sequence parts."""
    from tabsynth.report.summary import build_summary, section_scores

    sizes = _sizes_of(pairs)
    event_fid = parts["event_fidelity"]
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "tabsynth_version": package_version(),
        "scores": section_scores(sections),
        "summary": build_summary(sections, caveats),
        "settings": {**settings, "target": target, "order_bounds": list(rules.bounds) if rules.bounds else None,
                     "non_decreasing": list(rules.non_decreasing)},
        "data": {"rows": sizes["persons"], "columns": len(prep_w.columns), "analysed_columns": prep_w.columns,
                 "excluded_id_columns": [real.key], "subsample_cap": settings["max_rows"]},
        "formal_guarantee": parts["formal"],
        "inventory": parts["inventory"],
        "threat_model": parts["threat"],
        "fidelity": parts["person_fidelity"],
        "utility": parts["utility"],
        "privacy": parts["privacy"],
        "sequences": {
            "key": real.key, "order_by": real.order_by, "sizes": sizes,
            "per_person_columns": prep_w.columns, "event_fidelity": event_fid,
            **{k: parts[k] for k in ("events_per_person", "aggregates", "transitions", "order")},
            "reference": ("the holdout persons compared with the real persons" if pairs["holdout"] is not None else
                          "one random half of the real persons compared with the other half"),
            "seconds": parts["sequence_seconds"],
        },
    }
