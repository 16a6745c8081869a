"""Linkability and inference: what an attacker who knows some of a person's columns learns.

Targets are drawn from the whole training table (the attack) and the whole holdout (the control);
the attacker's guesses come from the nearest row of the whole synthetic table, so a copied row is
never cut away from its partner.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from tabsynth.report._common import Encoder, Prepared, wilson
from tabsynth.report.risk import residual_risk

#: Relative tolerance of a correct numeric guess in the inference attack (anonymeter's default).
INFERENCE_TOLERANCE = 0.05


def _sample_idx(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(n, min(n, k), replace=False)


def linkability(prep: Prepared, Tdf, Hdf, Sdf, aux: tuple[list[str], list[str]], n_attacks: int,
                rng: np.random.Generator, n_neighbors: int = 1) -> dict[str, Any]:
    a_cols, b_cols = aux
    real = pd.concat([Tdf, Hdf], ignore_index=True)
    ea, eb = Encoder(prep, a_cols).fit(real), Encoder(prep, b_cols).fit(real)
    sa, sb = ea.transform(Sdf), eb.transform(Sdf)
    k = min(n_neighbors, len(Sdf))
    nna = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(sa)
    nnb = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(sb)

    def rate(df: pd.DataFrame) -> dict:
        idx = _sample_idx(len(df), n_attacks, rng)
        t = df.iloc[idx]
        ia = nna.kneighbors(ea.transform(t), return_distance=False)
        ib = nnb.kneighbors(eb.transform(t), return_distance=False)
        hit = (ia[:, :, None] == ib[:, None, :]).any(axis=(1, 2))
        return wilson(int(hit.sum()), len(idx))

    attack, control = rate(Tdf), rate(Hdf)
    n = attack["n"]
    ra = rng.integers(0, len(Sdf), (n, k))
    rb = rng.integers(0, len(Sdf), (n, k))
    baseline = wilson(int((ra[:, :, None] == rb[:, None, :]).any(axis=(1, 2)).sum()), n)
    res = residual_risk(attack, control, baseline)
    res.update({"aux_columns": [a_cols, b_cols], "n_neighbors": k,
                "method": "the attacker knows two disjoint sets of a person's columns (e.g. from two external "
                          "sources) and links them when both point to the same closest synthetic row"})
    return res


def inference(prep: Prepared, Tdf, Hdf, Sdf, secret: str, aux: list[str], n_attacks: int,
              rng: np.random.Generator) -> dict[str, Any]:
    enc = Encoder(prep, aux).fit(pd.concat([Tdf, Hdf], ignore_index=True))
    nn = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(enc.transform(Sdf))
    s_secret = Sdf[secret].to_numpy()
    numeric = secret in prep.numeric

    def correct(guess: np.ndarray, truth: np.ndarray) -> np.ndarray:
        if numeric:
            g, t = guess.astype(float), truth.astype(float)
            with np.errstate(invalid="ignore"):
                ok = np.abs(g - t) <= INFERENCE_TOLERANCE * np.abs(t)
            return ok | (np.isnan(g) & np.isnan(t))
        gs, ts = pd.Series(guess), pd.Series(truth)
        return ((gs == ts) | (gs.isna() & ts.isna())).to_numpy()

    def rate(df: pd.DataFrame) -> tuple[dict, np.ndarray]:
        idx = _sample_idx(len(df), n_attacks, rng)
        t = df.iloc[idx]
        nb = nn.kneighbors(enc.transform(t), return_distance=False)[:, 0]
        truth = t[secret].to_numpy()
        return wilson(int(correct(s_secret[nb], truth).sum()), len(idx)), truth

    attack, truth = rate(Tdf)
    control, _ = rate(Hdf)
    guess = s_secret[rng.integers(0, len(Sdf), len(truth))]
    baseline = wilson(int(correct(guess, truth).sum()), len(truth))
    res = residual_risk(attack, control, baseline)
    res.update({"secret": secret, "aux_columns": aux,
                "method": f"the attacker knows {len(aux)} columns of a person and guesses {secret!r} from the "
                          "closest synthetic row" + (f" (correct within {INFERENCE_TOLERANCE:.0%})" if numeric else "")})
    return res


#: Most columns attacked as secrets (sensitive columns first, then quasi-identifiers).
MAX_SECRETS = 20


def inference_all(prep: Prepared, Tdf, Hdf, Sdf, secrets: list[str], qis: list[str], n_attacks: int,
                  rng: np.random.Generator) -> tuple[list[dict[str, Any]], str | None]:
    """Infer every sensitive column and every quasi-identifier, each from the other quasi-identifiers
    (from every other column when fewer than one is left)."""
    results = []
    for secret in secrets[:MAX_SECRETS]:
        aux = [c for c in qis if c != secret] or [c for c in prep.columns if c != secret]
        if aux:
            results.append(inference(prep, Tdf, Hdf, Sdf, secret, aux, n_attacks, rng))
    note = None
    if len(secrets) > MAX_SECRETS:
        note = (f"{len(secrets)} columns could be attacked as secrets; the first {MAX_SECRETS} (sensitive columns "
                f"first) were: pass sensitive= to choose")
    return results, note
