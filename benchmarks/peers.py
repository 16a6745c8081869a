"""The peers' two-table fits for ``worker.py``: a person table and its event table in, a sampler out.

Each fit takes ``{"subjects": persons, "events": events}`` and the worker's namespace (``key``,
``order_by``, ``seed``, ``epochs``) and returns ``(sample(n_persons) -> {"subjects", "events"},
epsilon spent)``. They run in the peer's venv: only the standard library, numpy, pandas and the peer.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

Pair = dict[str, pd.DataFrame]
Fitted = tuple[Callable[[int], Pair], float]


def engine_pair(train: Pair, a: argparse.Namespace) -> Fitted:
    """MOSTLY AI's engine as its SDK chains it: a flat TabularARGN for the person attributes, then a
    sequential TabularARGN for the events given the persons (context), sampled for the synthetic
    persons, so both tables are synthetic. Without person attributes the events model has the keys
    alone as context."""
    from mostlyai.engine import TabularARGN

    key, subjects, events = a.key, train["subjects"], train["events"]
    attrs = [c for c in subjects.columns if c != key]
    base: dict[str, Any] = {"device": "cpu", "random_state": a.seed, "verbose": 0}
    if a.epochs:
        base["max_epochs"] = a.epochs
    work = a.out.parent / "engine-workspace"
    flat = TabularARGN(**base, workspace_dir=work / "persons").fit(subjects[attrs]) if attrs else None
    seq = TabularARGN(**base, workspace_dir=work / "events", tgt_context_key=key, ctx_primary_key=key,
                      ctx_data=subjects).fit(events)

    def sample(n: int) -> Pair:
        persons = flat.sample(n_samples=n) if flat is not None else pd.DataFrame(index=range(n))
        persons = persons.reset_index(drop=True)
        persons.insert(0, key, np.arange(n))
        return {"subjects": persons, "events": seq.sample(ctx_data=persons)}
    return sample, float("inf")


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
