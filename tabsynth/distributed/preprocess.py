"""Fitting the (non-DP) encoders of a distributed fit from every shard, identically on every rank.

What adds across shards is combined exactly: category counts, missing-value presence and numeric
ranges. The mixtures of mode-specific normalisation are fitted, as in one process, on a subsample:
here a uniform sample pooled from the shards in proportion to their sizes. Rank 0 fits and every
rank receives its encoders as JSON, so all ranks encode with the same transformer.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import pandas as pd

from tabsynth.distributed.runtime import Runtime
from tabsynth.metadata import Metadata
from tabsynth.transform import CategoricalEncoder, TableTransformer

#: Rows pooled from all shards for the mixture, datetime and id encoders.
POOLED_ROWS = 100_000


def _summary(df: pd.DataFrame, metadata: Metadata, n_total: int, seed: int) -> dict:
    k = min(len(df), math.ceil(POOLED_ROWS * len(df) / max(n_total, 1)))
    rng = np.random.default_rng(seed)
    picked = set(rng.choice(len(df), size=k, replace=False).tolist()) if k else set()
    counts, nulls = {}, {}
    for spec in metadata.columns.values():
        s = df[spec.name]
        nulls[spec.name] = int(s.isna().sum())
        if spec.kind in ("categorical", "boolean"):
            counts[spec.name] = s.value_counts(dropna=True)
        elif spec.kind in ("numerical", "integer", "datetime") and s.notna().any():
            # witness rows: the pooled sample holds each column's extremes and a missing value, so
            # ranges and null flags are exact across shards
            values = pd.to_numeric(s, errors="coerce") if spec.kind != "datetime" and s.dtype == object else s
            present = values.dropna()
            if len(present):
                picked.update({df.index.get_loc(present.idxmin()), df.index.get_loc(present.idxmax())})
        if nulls[spec.name]:
            picked.add(int(np.flatnonzero(s.isna().to_numpy())[0]))
    sample = df.iloc[sorted(picked)]
    return {"sample": sample, "counts": counts, "nulls": nulls, "dtypes": {c: str(df[c].dtype) for c in df}}


def fit_transformer(df: pd.DataFrame, metadata: Metadata, runtime: Runtime, *, numerical: str,
                    max_categories: int, seed: int) -> TableTransformer:
    """One transformer for the whole table, fitted from every rank's shard ``df``."""
    n_total = int(runtime.all_reduce_sum(len(df)))
    parts = runtime.all_gather_object(_summary(df.reset_index(drop=True), metadata, n_total, seed + runtime.rank))
    state = None
    if runtime.is_main:
        pooled = pd.concat([p["sample"] for p in parts if len(p["sample"])], ignore_index=True)
        if not len(pooled):
            pooled = df.iloc[:0]
        transformer = TableTransformer(numerical=numerical, max_categories=max_categories, seed=seed).fit(
            pooled, metadata)
        encoders = list(transformer.encoders_)
        for i, spec in enumerate(metadata.columns.values()):
            if spec.kind not in ("categorical", "boolean"):
                continue
            total = pd.concat([p["counts"][spec.name] for p in parts]).groupby(level=0, sort=False).sum()
            dtype = parts[0]["dtypes"][spec.name]
            dtype_cats = cast(CategoricalEncoder, encoders[i]).dtype_categories
            cats = list(spec.categories) if spec.is_public and spec.categories is not None else None
            encoders[i] = CategoricalEncoder.from_counts(
                spec.name, total, has_missing=sum(p["nulls"][spec.name] for p in parts) > 0, dtype=dtype,
                dtype_categories=dtype_cats, max_categories=max_categories, categories=cats)
        transformer = TableTransformer.from_encoders(transformer.metadata_, encoders, numerical=numerical,
                                                     max_categories=max_categories, seed=seed)
        state = transformer.to_dict()
    return TableTransformer.from_dict(runtime.broadcast_object(state))
