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

The audit passes when eps_lb <= the epsilon the model reports spent. A black-box audit of a DP-SGD
synthesiser is expected to be loose (Annamalai et al. 2024); it catches gross bugs (a canary leaking
through preprocessing, noise not applied), not small accounting errors.

Speed: tabsynth's RDP accountant recomputes Opacus' RDP curve for very large integer orders on every
call (tens of seconds per fit on 2 cores); this script memoises ``tabsynth.privacy.accountant.
gaussian_rdp`` (a pure function of sigma, q and steps) so identical fits share the work. Results
are unchanged.

    .venv/bin/python benchmarks/privacy_audit.py                      # default: TVAE, epsilon 1
    .venv/bin/python benchmarks/privacy_audit.py --runs 40 --epsilon 4 --model ctgan
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
    from common import RESULTS, environment, fmt, write_results

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=16, help="fits per side (canary in / out); default %(default)s")
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--model", choices=("tvae", "ctgan", "tabularar"), default="tvae")
    ap.add_argument("--rows", type=int, default=999)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--synth-rows", type=int, default=2000)
    ap.add_argument("--control-runs", type=int, default=0,
                    help="also audit the same model without DP with this many runs per side (attack power)")
    ap.add_argument("--out", type=Path, default=RESULTS / "privacy_audit")
    args = ap.parse_args(argv)

    shared = dict(model=args.model, rows=args.rows, epochs=args.epochs, batch_size=args.batch_size,
                  synth_rows=args.synth_rows, delta=args.delta, verbose=True)
    results = [run_audit(args.runs, args.epsilon, **shared)]
    if args.control_runs:
        results.append(run_audit(args.control_runs, None, **shared))
    payload = {"benchmark": "privacy_audit", "args": {k: (str(v) if isinstance(v, Path) else v)
                                                      for k, v in vars(args).items()},
               "environment": environment(), "results": results}
    write_results(args.out, payload, markdown(results))
    dp = results[0]
    print(f"eps_lb {fmt(dp['eps_lb'])} <= spent {fmt(dp['epsilon_spent_max'])}: "
          f"{'PASS' if dp['passed'] else 'FAIL'}", file=sys.stderr)
    return 0 if dp["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
