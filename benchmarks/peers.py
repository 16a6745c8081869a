"""The peers' two-table fits for ``worker.py``: a person table and its event table in, a sampler out.

Each fit takes ``{"subjects": persons, "events": events}`` and the worker's namespace (``key``,
``order_by``, ``seed``, ``epochs``) and returns ``(sample(n_persons) -> {"subjects", "events"},
epsilon spent)``. They run in the peer's venv: only the standard library, numpy, pandas and the peer.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

Pair = dict[str, pd.DataFrame]
Fitted = tuple[Callable[[int], Pair], float]


def engine_pair(train: Pair, a: argparse.Namespace, dp: bool = False) -> Fitted:
    """MOSTLY AI's engine as its SDK chains it: a flat TabularARGN for the person attributes, then a
    sequential TabularARGN for the events given the persons (context), sampled for the synthetic
    persons, so both tables are synthetic. Without person attributes the events model has the keys
    alone as context.

    With ``dp`` each model is trained under the engine's DP with a budget of its own (as its SDK
    configures DP per table): the person model ``max_epsilon = epsilon * engine_person_share``, the
    events model the rest, each at the engine's default delta, and each model's value protection
    (its rare-category and range step) takes ``engine_value_share`` of its model's budget. The
    epsilon spent is their sum (basic composition: nothing in the engine adds them up), with each
    model's part."""
    from mostlyai.engine import TabularARGN

    key, subjects, events = a.key, train["subjects"], train["events"]
    attrs = [c for c in subjects.columns if c != key]
    base: dict[str, Any] = {"device": "cpu", "random_state": a.seed, "verbose": 0}
    if a.epochs:
        base["max_epochs"] = a.epochs
    work = a.out.parent / "engine-workspace"
    budgets = {"persons": a.epsilon * a.engine_person_share if attrs else 0.0}
    budgets["events"] = a.epsilon - budgets["persons"]

    def private(part: str) -> dict[str, Any]:
        if not dp:
            return {}
        from mostlyai.engine.domain import DifferentialPrivacyConfig

        eps = budgets[part]
        return {"differential_privacy": DifferentialPrivacyConfig(
            max_epsilon=eps, value_protection_epsilon=eps * a.engine_value_share)}

    flat = (TabularARGN(**base, workspace_dir=work / "persons", **private("persons")).fit(subjects[attrs])
            if attrs else None)
    seq = TabularARGN(**base, workspace_dir=work / "events", tgt_context_key=key, ctx_primary_key=key,
                      ctx_data=subjects, **private("events")).fit(events)

    def sample(n: int) -> Pair:
        persons = flat.sample(n_samples=n) if flat is not None else pd.DataFrame(index=range(n))
        persons = persons.reset_index(drop=True)
        persons.insert(0, key, np.arange(n))
        return {"subjects": persons, "events": seq.sample(ctx_data=persons)}
    if not dp:
        return sample, float("inf")
    spent = {f"epsilon_{part}": engine_epsilon(work / part) if budgets[part] else 0.0 for part in budgets}
    return sample, {"epsilon": sum(spent.values()), "delta": 2 * 1e-5 if attrs else 1e-5, "unit": "person", **spent,
                    **{f"epsilon_{part}_max": eps for part, eps in budgets.items()}}


def engine_epsilon(work: Path) -> float:
    """Epsilon of an engine model as its progress log reports it for the kept checkpoint (the last
    one: it trains on past the best, up to its max_epsilon), value protection included."""
    for p in Path(work).rglob("progress-messages.csv"):
        log = pd.read_csv(p)
        kept = log[(log["is_checkpoint"] == 1) & log["dp_eps"].notna()]
        if len(kept):
            return float(kept["dp_eps"].iloc[-1])
    return float("nan")


def sdv_par(train: Pair, a: argparse.Namespace) -> Fitted:
    """SDV's PARSynthesizer on the long table (each event with its person's columns), the person
    columns as its context columns; its sampled sequences split back into persons and events."""
    from sdv.metadata import Metadata
    from sdv.sequential import PARSynthesizer

    key, subjects, events = a.key, train["subjects"], train["events"]
    attrs = [c for c in subjects.columns if c != key]
    long = events.merge(subjects, on=key, how="inner")
    cols: dict[str, Any] = {}
    for c in long.columns:
        numeric = pd.api.types.is_numeric_dtype(long[c].dtype) and not pd.api.types.is_bool_dtype(long[c].dtype)
        cols[c] = {"sdtype": "id"} if c == key else {"sdtype": "numerical" if numeric else "categorical"}
    table: dict[str, Any] = {"columns": cols, "sequence_key": key}
    if a.order_by:
        table["sequence_index"] = a.order_by
    meta = Metadata.load_from_dict({"tables": {"t": table}})
    np.random.seed(a.seed)
    import torch

    torch.manual_seed(a.seed)
    kw = {"epochs": a.epochs} if a.epochs else {}
    m = PARSynthesizer(meta, context_columns=attrs, verbose=False, **kw)
    m.fit({"t": long})

    def sample(n: int) -> Pair:
        out = m.sample_sequences(num_sequences=n)
        out = next(iter(out.values())) if isinstance(out, dict) else out
        persons = out.drop_duplicates(key)[[key, *attrs]].reset_index(drop=True)
        return {"subjects": persons, "events": out[[c for c in events.columns]].reset_index(drop=True)}
    return sample, float("inf")
