#!/usr/bin/env python
"""Empirical membership-inference audit of tabsynth's DP mode on a planted canary (docs/privacy.md rule 20).

Protocol (a black-box distinguishing game over repeated runs, Jagielski et al. 2020 style):

* Base table: ``--rows`` (default 999, so that with the canary, 1,000, the DP-SGD sample rate
  1/ceil(n/batch) and hence sigma and the step count are the same in and out) rows of bundled Adult, six columns (age, education, sex,
  relationship, hours-per-week, income), with every row of the canary's combination removed.
* Canary: one row whose categorical combination never occurs in the base table but whose values are
  all common (``sex=Female, relationship=Husband, education=Bachelors, income=>50K``, age 45,
  60 hours), so DP preprocessing keeps every value and only DP-SGD stands between the row and the
  output: the worst case for a black-box attacker who cannot exploit a rare category.
* ``--runs`` R fits with the canary in (table + canary) and R fits without (table alone), each with
  its own seed; each fit samples ``--synth-rows`` rows.
* Membership statistic: the share of synthetic rows that match the canary on (sex, relationship),
  the pair that never occurs in the base table (a density of synthetic rows at the canary). The attack says "in" when it is >= a threshold.
* The threshold is chosen on the first half of the runs of each side (calibration) and the attack
  is scored on the other half; TPR/FPR get one-sided Clopper-Pearson bounds (alpha/2 each), and
  eps_lb = max(log((TPR_lo - delta) / FPR_hi), log((TNR_lo - delta) / FNR_hi)), the standard
  (epsilon, delta)-DP hypothesis-testing bound. A threshold picked on all runs is also reported as
  "optimistic" (not a valid bound, shown only to tell how much power the attack has).

``--unit person`` audits the two-table fit with DP per person (docs/privacy.md rules 22-26) the same way:

* Base data: bundled pbcseq (312 persons, their visits: key, day and the five categorical event columns
  read as strings), with every event matching the canary on (hepato, spiders, edema, stage) removed.
* Canary: ONE new person with ``--canary-events`` (30) visits, every one carrying
  ``hepato=1, spiders=0, edema=0, stage=4``: each value is the most common of its column (held by
  about half the persons or more, above the partition-selection threshold, so DP preprocessing keeps
  it), but they never occur together in the base events. ``--max-events`` (30) is declared
  so that all of the canary's events count (the worst case); only DP-SGD with one clipped gradient
  per person stands between the person and the output.
* Fits: ``TabularAR(embedding_dim=32, hidden=(32,))`` with one torch thread, ``--runs`` per side, each
  its own seed; statistic: the share of the synthetic events (of ``--synth-persons`` persons) that
  match the canary's combination; threshold and bounds as above, against the epsilon per person.

The audit passes when eps_lb <= the epsilon the model reports spent. A black-box audit of a DP-SGD
synthesiser is expected to be loose (Annamalai et al. 2024); it catches gross bugs (a canary leaking
through preprocessing, noise not applied), not small accounting errors.

Speed: tabsynth's RDP accountant recomputes Opacus' RDP curve for very large integer orders on every
call (tens of seconds per fit on 2 cores); this script memoises ``tabsynth.privacy.accountant.
gaussian_rdp`` (a pure function of sigma, q and steps) so identical fits share the work. Results
are unchanged.

    .venv/bin/python benchmarks/privacy_audit.py                      # default: TVAE, epsilon 1
    .venv/bin/python benchmarks/privacy_audit.py --runs 40 --epsilon 4 --model ctgan
    .venv/bin/python benchmarks/privacy_audit.py --unit person --runs 12 --epsilon 2 --epochs 10
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

#: torch threads of each fit (the result files say so).
THREADS = 2
COLUMNS = ["age", "education", "sex", "relationship", "hours-per-week", "income"]
CANARY = {"age": 45, "education": "Bachelors", "sex": "Female", "relationship": "Husband", "hours-per-week": 60,
          "income": ">50K"}
MATCH = ("sex", "relationship")
#: Person mode (``--unit person``): pbcseq's event columns read as categories, the canary person
#: and the values all their events carry, and the pair never seen together in the base events.
PERSON_THREADS = 1
PERSON_CATEGORICAL = ["ascites", "hepato", "spiders", "edema", "stage"]
PERSON_CANARY = {"futime": 3650, "status": 0, "trt": 1, "age": 50.0, "sex": "f"}
PERSON_CANARY_EVENT = {"ascites": "0", "hepato": "1", "spiders": "0", "edema": "0", "stage": "4"}
PERSON_MATCH = ("hepato", "spiders", "edema", "stage")


def base_table(rows: int, seed: int = 0):
    import tabsynth as ts

    df = ts.datasets.load("adult")[COLUMNS]
    hit = (df[list(MATCH)] == [CANARY[c] for c in MATCH]).all(axis=1)
    df = df[~hit].sample(n=rows, random_state=seed).reset_index(drop=True)
    return df


def statistic(synth) -> float:
    return float((synth[list(MATCH)] == [CANARY[c] for c in MATCH]).all(axis=1).mean())


def clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """One-sided (1 - alpha) lower and upper bounds of a binomial proportion."""
    from scipy.stats import beta

    lo = 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha, k + 1, n - k))
    return lo, hi


def eps_lower_bound(s_in: list[float], s_out: list[float], threshold: float, delta: float,
                    alpha: float) -> dict[str, float]:
    """Clopper-Pearson epsilon lower bound of the test "statistic >= threshold" (both directions)."""
    n_in, n_out = len(s_in), len(s_out)
    tp = sum(s >= threshold for s in s_in)
    fp = sum(s >= threshold for s in s_out)
    a = alpha / 2  # two proportions bounded at once
    tpr_lo, tpr_hi = clopper_pearson(tp, n_in, a)
    fpr_lo, fpr_hi = clopper_pearson(fp, n_out, a)
    cands = [0.0]
    if fpr_hi > 0 and tpr_lo - delta > 0:
        cands.append(math.log((tpr_lo - delta) / fpr_hi))
    if 1 - tpr_lo > 0 and (1 - fpr_hi) - delta > 0:  # TNR_lo = 1 - FPR_hi, FNR_hi = 1 - TPR_lo
        cands.append(math.log(((1 - fpr_hi) - delta) / (1 - tpr_lo)))
    return {"threshold": threshold, "tpr": tp / n_in, "fpr": fp / n_out, "tpr_lo": tpr_lo, "fpr_hi": fpr_hi,
            "eps_lb": max(cands)}


def _point_eps(s_in: list[float], s_out: list[float], t: float) -> float:
    """Smoothed point estimate of the test's epsilon, to pick a threshold on calibration runs."""
    tpr = (sum(s >= t for s in s_in) + 0.5) / (len(s_in) + 1)
    fpr = (sum(s >= t for s in s_out) + 0.5) / (len(s_out) + 1)
    return max(math.log(tpr / fpr), math.log((1 - fpr) / (1 - tpr)))


def best_threshold(s_in: list[float], s_out: list[float]) -> float:
    cands = sorted(set(s_in) | set(s_out))
    return max(cands, key=lambda t: _point_eps(s_in, s_out, t)) if cands else 0.0


def fit_once(df, model: str, epsilon: float | None, delta: float, epochs: int, batch_size: int, seed: int,
             synth_rows: int) -> tuple[float, float | None]:
    import tabsynth as ts

    from tabsynth.models.registry import model_class

    cls = model_class(model)
    kw: dict[str, Any] = {"epsilon": epsilon, "delta": delta} if epsilon is not None else {}
    m = cls(epochs=epochs, batch_size=batch_size, seed=seed, verbose=False, device="cpu", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(df)
        synth = m.sample(synth_rows, seed=seed + 7)
    spent = m.privacy_spent().epsilon if epsilon is not None else None
    return statistic(synth), spent


def run_audit(runs: int = 16, epsilon: float | None = 1.0, *, model: str = "tvae", rows: int = 999,
              epochs: int = 3, batch_size: int = 500, synth_rows: int = 2000, delta: float = 1e-5,
              alpha: float = 0.05, seed: int = 0, verbose: bool = False) -> dict[str, Any]:
    """Canary in/out audit; ``runs`` fits per side. Returns statistics, bounds and ``passed``.

    ``epsilon=None`` audits the non-DP model (a control that shows the attack's power).
    """
    import pandas as pd

    if runs < 2:
        raise ValueError("runs must be >= 2 (half calibrate the threshold, half are scored)")
    import torch

    torch.set_num_threads(THREADS)
    df_out = base_table(rows, seed)
    df_in = pd.concat([df_out, pd.DataFrame([CANARY])], ignore_index=True)
    df_in = df_in.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    for c in ("age", "hours-per-week"):
        df_in[c] = df_in[c].astype(df_out[c].dtype)
    s_in, s_out, spent = [], [], []
    t0 = time.perf_counter()
    for i in range(runs):
        for side, table, store in (("in", df_in, s_in), ("out", df_out, s_out)):
            run_seed = seed * 100_003 + 2 * i + (side == "out")
            stat, eps = fit_once(table, model, epsilon, delta, epochs, batch_size, run_seed, synth_rows)
            store.append(stat)
            if eps is not None:
                spent.append(eps)
        if verbose:
            print(f"[{time.perf_counter() - t0:6.0f}s] run {i + 1}/{runs}: in {s_in[-1]:.4f} out {s_out[-1]:.4f}",
                  file=sys.stderr, flush=True)
    half = runs // 2
    thr = best_threshold(s_in[:half], s_out[:half])
    held = eps_lower_bound(s_in[half:], s_out[half:], thr, delta, alpha)
    thr_all = best_threshold(s_in, s_out)
    optimistic = eps_lower_bound(s_in, s_out, thr_all, delta, alpha)
    claimed = max(spent) if spent else None
    return {
        "model": model, "epsilon_target": epsilon, "epsilon_spent_max": claimed, "delta": delta, "runs": runs,
        "rows": rows, "epochs": epochs, "batch_size": batch_size, "synth_rows": synth_rows, "alpha": alpha,
        "canary": CANARY, "match_columns": list(MATCH),
        "stat_in_mean": sum(s_in) / runs, "stat_out_mean": sum(s_out) / runs,
        "stats_in": s_in, "stats_out": s_out,
        "held_out": held, "optimistic_same_runs": optimistic,
        "eps_lb": held["eps_lb"], "passed": None if claimed is None else bool(held["eps_lb"] <= claimed),
        "seconds": time.perf_counter() - t0,
    }


def person_tables(seed: int = 0):
    """``(persons, events)`` of bundled pbcseq: the events' key, day and five categorical columns (as
    strings, so a synthetic event matches the canary exactly; the lab columns are left out: fewer
    statistics share the preprocessing budget, so the partition-selection threshold is lower),
    with every event of the canary's combination removed."""
    import tabsynth as ts

    persons, events = ts.datasets.load("pbcseq")
    events = events[["id", "day", *PERSON_CATEGORICAL]].copy()
    for c in PERSON_CATEGORICAL:
        events[c] = events[c].where(events[c].isna(), events[c].map(_category))
    hit = (events[list(PERSON_MATCH)] == [PERSON_CANARY_EVENT[c] for c in PERSON_MATCH]).all(axis=1)
    return persons.reset_index(drop=True), events[~hit].reset_index(drop=True)


def _category(v: Any) -> str:
    return f"{float(v):g}"


def canary_person(persons, events, n_events: int):
    """One new person (id after the largest) with ``n_events`` visits, 120 days apart, all carrying
    the canary's categorical values (and the base events' medians in any other column)."""
    import pandas as pd

    pid = int(persons["id"].max()) + 1
    row = pd.DataFrame([{**PERSON_CANARY, "id": pid}])[persons.columns].astype(persons.dtypes.to_dict())
    labs = events.drop(columns=["id", "day", *PERSON_CATEGORICAL]).median()
    ev = pd.DataFrame({"id": pid, "day": [120 * i for i in range(n_events)]})
    for c in events.columns:
        if c not in ev:
            ev[c] = PERSON_CANARY_EVENT[c] if c in PERSON_CANARY_EVENT else labs[c]
    return row, ev[events.columns].astype(events.dtypes.to_dict())


def person_statistic(events) -> float:
    if len(events) == 0:
        return 0.0
    return float((events[list(PERSON_MATCH)] == [PERSON_CANARY_EVENT[c] for c in PERSON_MATCH]).all(axis=1).mean())


def fit_person_once(persons, events, epsilon: float | None, delta: float, epochs: int | None, max_events: int,
                    seed: int, synth_persons: int) -> tuple[float, float | None, int, float]:
    """One DP fit of the two tables; returns (statistic, epsilon per person spent, synthetic events, the
    smallest share of synthetic events carrying one of the canary's matched values: > 0 shows that
    preprocessing kept every value)."""
    import tabsynth as ts

    kw: dict[str, Any] = ({"epsilon": epsilon, "delta": delta, "epochs": epochs} if epsilon is not None
                          else {"epochs": epochs or 100, "early_stopping": False})
    m = ts.TabularAR(embedding_dim=32, hidden=(32,), seed=seed, verbose=False, device="cpu", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(events, subjects=persons, key="id", order_by="day", max_events=max_events)
        _, synth = m.sample(n_subjects=synth_persons, seed=seed + 7)
    kept = min(float((synth[c] == PERSON_CANARY_EVENT[c]).mean()) if len(synth) else 0.0 for c in PERSON_MATCH)
    spent = m.privacy_spent().epsilon if epsilon is not None else None
    return person_statistic(synth), spent, len(synth), kept


def score(s_in: list[float], s_out: list[float], delta: float, alpha: float) -> tuple[dict, dict]:
    """(held-out bound: threshold on the first half of each side, scored on the rest; optimistic bound)."""
    half = len(s_in) // 2
    thr = best_threshold(s_in[:half], s_out[:half])
    held = eps_lower_bound(s_in[half:], s_out[half:], thr, delta, alpha)
    return held, eps_lower_bound(s_in, s_out, best_threshold(s_in, s_out), delta, alpha)


def run_person_audit(runs: int = 12, epsilon: float | None = 1.0, *, epochs: int | None = None, canary_events: int = 30,
                     max_events: int = 30, synth_persons: int = 1000, delta: float = 1e-5, alpha: float = 0.05,
                     seed: int = 0, verbose: bool = False) -> dict[str, Any]:
    """Person-canary in/out audit of the two-table DP fit (epsilon per person); ``runs`` fits per side.

    ``epsilon=None`` audits the non-DP fit (a control that shows the attack's power; ``epochs`` 100
    unless given, without early stopping)."""
    import pandas as pd
    import torch

    if runs < 2:
        raise ValueError("runs must be >= 2 (half calibrate the threshold, half are scored)")
    torch.set_num_threads(PERSON_THREADS)
    p_out, e_out = person_tables(seed)
    p_can, e_can = canary_person(p_out, e_out, canary_events)
    p_in = pd.concat([p_out, p_can], ignore_index=True)
    e_in = pd.concat([e_out, e_can], ignore_index=True)
    s_in, s_out, spent, n_synth, secs, kept = [], [], [], [], [], []
    t0 = time.perf_counter()
    for i in range(runs):
        for side, (ps, es), store in (("in", (p_in, e_in), s_in), ("out", (p_out, e_out), s_out)):
            run_seed = seed * 100_003 + 2 * i + (side == "out")
            t1 = time.perf_counter()
            stat, eps, n, k = fit_person_once(ps, es, epsilon, delta, epochs, max_events, run_seed, synth_persons)
            kept.append(k)
            secs.append(time.perf_counter() - t1)
            store.append(stat)
            if eps is not None:
                spent.append(eps)
            n_synth.append(n)
        if verbose:
            print(f"[{time.perf_counter() - t0:6.0f}s] run {i + 1}/{runs}: in {s_in[-1]:.4f} out {s_out[-1]:.4f}",
                  file=sys.stderr, flush=True)
    held, optimistic = score(s_in, s_out, delta, alpha)
    claimed = max(spent) if spent else None
    base_share = person_statistic(e_out)
    return {
        "unit": "person", "model": "tabularar", "dataset": "pbcseq", "epsilon_target": epsilon,
        "epsilon_spent_max": claimed, "delta": delta, "runs": runs, "persons_out": len(p_out),
        "events_out": len(e_out), "canary_events": canary_events, "max_events": max_events, "epochs": epochs,
        "embedding_dim": 32, "hidden": [32], "synth_persons": synth_persons, "alpha": alpha,
        "canary_person": PERSON_CANARY, "canary_event": PERSON_CANARY_EVENT, "match_columns": list(PERSON_MATCH),
        "stat_base_out": base_share, "stat_canary_in_data": canary_events / (len(e_out) + canary_events),
        "stat_in_mean": sum(s_in) / runs, "stat_out_mean": sum(s_out) / runs, "stats_in": s_in, "stats_out": s_out,
        "synth_events_mean": sum(n_synth) / len(n_synth), "canary_value_min_share": min(kept),
        "fit_seconds_mean": sum(secs) / len(secs),
        "held_out": held, "optimistic_same_runs": optimistic, "eps_lb": held["eps_lb"],
        "passed": None if claimed is None else bool(held["eps_lb"] <= claimed), "seconds": time.perf_counter() - t0,
    }


def person_markdown(res: list[dict]) -> str:
    from common import md_table

    rows = []
    for r in res:
        h, o = r["held_out"], r["optimistic_same_runs"]
        rows.append([r["model"] + ("" if r["epsilon_target"] is not None else " (no DP, control)"),
                     r["epsilon_target"], r["epsilon_spent_max"], r["runs"], r["epochs"], r["canary_events"],
                     r["max_events"], r["stat_in_mean"], r["stat_out_mean"],
                     f"{sum(i > o for i, o in zip(r['stats_in'], r['stats_out']))}/{r['runs']}",
                     f"{h['tpr']:.2f}/{h['fpr']:.2f}",
                     h["eps_lb"], o["eps_lb"], "-" if r["passed"] is None else ("PASS" if r["passed"] else "FAIL"),
                     r["fit_seconds_mean"],
                     r["seconds"]])
    r0 = res[0]
    scored = r0["runs"] - r0["runs"] // 2
    table = md_table(["model", "target eps/person", "eps spent/person", "runs/side", "epochs", "canary events",
                      "max_events", "stat in (mean)", "stat out (mean)", "in > out (run pairs)", "TPR/FPR (held-out)",
                      "eps_lb (95%)",
                      "eps_lb optimistic", "eps_lb <= spent", "seconds/fit", "seconds"], rows)
    return "\n\n".join([
        f"## Person canary: two tables, DP per person ({r0['persons_out']} pbcseq persons, "
        f"{r0['events_out']} events of key, day and 5 categorical columns; delta={r0['delta']:g}; CPU, "
        f"{PERSON_THREADS} torch thread; `--unit person`)",
        table,
        f"Canary: one new person {r0['canary_person']} with {r0['canary_events']} visits (120 days apart), every "
        f"one {r0['canary_event']}; `max_events={r0['max_events']}` is declared so "
        f"that all of them count (the worst case). Every base event matching on {', '.join(r0['match_columns'])} "
        f"is removed (each value is its column's most common on its own), so the canary's events are "
        f"{r0['stat_canary_in_data']:.3f} of the events in the 'in' data and 0 in the 'out' data. "
        "Model: TabularAR(embedding_dim=32, hidden=(32,)) (the control: no DP, no early stopping), "
        f"each fit its own seed; statistic: share of the synthetic events of {r0['synth_persons']} sampled persons "
        f"matching the canary on {', '.join(r0['match_columns'])}. Threshold and bounds as above; with {scored} "
        f"scored runs per side the largest provable eps_lb is about "
        f"{_max_provable(scored, r0['alpha'], r0['delta']):.2f}.",
    ])


def markdown(res: list[dict]) -> str:
    from common import md_table

    rows = []
    for r in res:
        h, o = r["held_out"], r["optimistic_same_runs"]
        rows.append([r["model"] + ("" if r["epsilon_target"] is not None else " (no DP, control)"),
                     r["epsilon_target"], r["epsilon_spent_max"], r["runs"], r["epochs"], r["batch_size"],
                     r["stat_in_mean"], r["stat_out_mean"], f"{h['tpr']:.2f}/{h['fpr']:.2f}", h["eps_lb"],
                     o["eps_lb"], "-" if r["passed"] is None else ("PASS" if r["passed"] else "FAIL"),
                     r["seconds"]])
    r0 = res[0]
    table = md_table(["model", "target eps", "eps spent", "runs/side", "epochs", "batch", "stat in (mean)",
                      "stat out (mean)", "TPR/FPR (held-out)", "eps_lb (95%)", "eps_lb optimistic",
                      "eps_lb <= spent", "seconds"], rows)
    return "\n\n".join([
        f"# Membership-inference audit on a planted canary ({r0['rows']} Adult rows x {len(COLUMNS)} columns; "
        f"delta={r0['delta']:g}; CPU, {THREADS} threads)",
        table,
        f"Canary: {CANARY}; statistic: share of {r0['synth_rows']} synthetic rows matching it on "
        f"{', '.join(MATCH)} (the combination never occurs in the base table). Threshold chosen on the first half "
        "of the runs, TPR/FPR scored on the second half with one-sided Clopper-Pearson bounds (alpha/2 each, "
        f"alpha={r0['alpha']}): eps_lb = max(log((TPR_lo - delta)/FPR_hi), log((TNR_lo - delta)/FNR_hi)), floored "
        "at 0. 'optimistic' picks the threshold on all runs (not a valid bound; it shows the attack's power). With "
        f"{r0['runs'] - r0['runs'] // 2} scored runs per side the largest provable eps_lb is about "
        f"{_max_provable(r0['runs'] - r0['runs'] // 2, r0['alpha'], r0['delta']):.2f}.",
    ])


def _max_provable(n: int, alpha: float, delta: float) -> float:
    return eps_lower_bound([1.0] * n, [0.0] * n, 0.5, delta, alpha)["eps_lb"]


def main(argv: list[str] | None = None) -> int:
    from common import RESULTS, environment, fmt

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unit", choices=("row", "person"), default="row",
                    help="row: a canary row in one table; person: a canary person with many events in two tables")
    ap.add_argument("--runs", type=int, default=16, help="fits per side (canary in / out); default %(default)s")
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--model", choices=("tvae", "ctgan", "tabularar"), default="tvae", help="row unit only")
    ap.add_argument("--rows", type=int, default=999, help="row unit only")
    ap.add_argument("--epochs", type=int, default=None, help="default: 3 (row), the model's DP default (person)")
    ap.add_argument("--batch-size", type=int, default=500, help="row unit only")
    ap.add_argument("--synth-rows", type=int, default=2000, help="row unit only")
    ap.add_argument("--control-runs", type=int, default=0,
                    help="also audit the same model without DP with this many runs per side (attack power)")
    ap.add_argument("--canary-events", type=int, default=30, help="person unit: the canary's events")
    ap.add_argument("--max-events", type=int, default=30, help="person unit: declared contribution bound")
    ap.add_argument("--control-epochs", type=int, default=100, help="person unit: epochs of the non-DP control")
    ap.add_argument("--synth-persons", type=int, default=1000, help="person unit: persons sampled per fit")
    ap.add_argument("--out", type=Path, default=RESULTS / "privacy_audit")
    args = ap.parse_args(argv)

    if args.unit == "person":
        dp = run_person_audit(args.runs, args.epsilon, epochs=args.epochs, canary_events=args.canary_events,
                              max_events=args.max_events, synth_persons=args.synth_persons, delta=args.delta,
                              verbose=True)
        results = [dp]
        if args.control_runs:
            results.append(run_person_audit(args.control_runs, None, epochs=args.control_epochs,
                                            canary_events=args.canary_events, max_events=args.max_events,
                                            synth_persons=args.synth_persons, delta=args.delta, verbose=True))
    else:
        shared = dict(model=args.model, rows=args.rows, epochs=3 if args.epochs is None else args.epochs,
                      batch_size=args.batch_size, synth_rows=args.synth_rows, delta=args.delta, verbose=True)
        results = [run_audit(args.runs, args.epsilon, **shared)]
        if args.control_runs:
            results.append(run_audit(args.control_runs, None, **shared))
        dp = results[0]
    part = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "environment": environment(), "results": results}
    save(args.out, args.unit, part)
    print(f"eps_lb {fmt(dp['eps_lb'])} <= spent {fmt(dp['epsilon_spent_max'])}: "
          f"{'PASS' if dp['passed'] else 'FAIL'}", file=sys.stderr)
    return 0 if dp["passed"] else 1


def save(out: Path, unit: str, part: dict[str, Any]) -> None:
    """One results file for both units: this run's part replaces its unit's, the other unit's stays."""
    import json

    from common import write_results

    path = out.with_suffix(".json")
    payload = json.loads(path.read_text()) if path.exists() else {"benchmark": "privacy_audit"}
    if unit == "person":
        payload["persons"] = part
    else:
        payload = {"benchmark": "privacy_audit", **part, **({"persons": payload["persons"]}
                                                             if "persons" in payload else {})}
    sections = []
    if payload.get("results"):
        sections.append(markdown(payload["results"]))
    if "persons" in payload:
        sections.append(person_markdown(payload["persons"]["results"]))
    write_results(out, payload, "\n\n".join(sections))


if __name__ == "__main__":
    sys.exit(main())
