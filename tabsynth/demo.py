"""The main job on bundled data, end to end, as far as the library goes."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from tabsynth.metadata import Metadata
from tabsynth.transform import TableTransformer


def run_demo(out: Path, df: pd.DataFrame, *, epochs: int = 10, holdout: pd.DataFrame | None = None,
             target: str | None = None, verbose: bool = True) -> dict:
    """Detect metadata, check the encoders' round trip, fit a TabularAR (at most ``epochs``; early
    stopping may end sooner), sample, and report on it."""
    out.mkdir(parents=True, exist_ok=True)
    say = print if verbose else (lambda *a, **k: None)
    t0 = time.perf_counter()
    meta = Metadata.detect(df)
    meta.to_json(out / "metadata.json")
    say(f"metadata: {len(meta)} columns -> {out / 'metadata.json'}")
    for name, spec in meta.columns.items():
        say(f"  {name:<16} {spec.kind:<12} nullable={spec.nullable}")
    t1 = time.perf_counter()
    tt = TableTransformer(seed=0).fit(df, meta)
    matrix = tt.transform(df)
    t2 = time.perf_counter()
    back = tt.inverse_transform(matrix)
    t3 = time.perf_counter()
    exact = {c: bool(((df[c] == back[c]) | (df[c].isna() & back[c].isna())).all()) for c in df.columns}
    say(f"encoders: {matrix.shape[0]} rows -> {matrix.shape[1]} float32 columns in {t2 - t1:.1f} s; "
        f"decoded in {t3 - t2:.2f} s")
    say(f"round trip exact on {sum(exact.values())}/{len(exact)} columns"
        + ("" if all(exact.values()) else f" (not: {[c for c, ok in exact.items() if not ok]})"))
    from tabsynth.models import TabularAR

    model = TabularAR(epochs=epochs, seed=0, verbose=verbose)
    t4 = time.perf_counter()
    model.fit(df, metadata=meta)
    model.save(out / "model.tsyn")
    synthetic = model.sample(len(df), seed=0)
    synthetic.to_csv(out / "synthetic.csv", index=False)
    t5 = time.perf_counter()
    say(f"TabularAR: {len(model.loss_history_)} epochs in {t5 - t4:.1f} s -> {out / 'model.tsyn'}; "
        f"{len(synthetic)} synthetic rows -> {out / 'synthetic.csv'}")
    say(f"privacy: {model.privacy_spent()}")
    from tabsynth.report import evaluate

    t6 = time.perf_counter()
    report = evaluate(df, synthetic, holdout=holdout, target=target, metadata=meta, model=model)
    report.to_html(out / "report.html")
    report.to_json(out / "report.json")
    scores = ", ".join(f"{k} {'n/a' if v is None else f'{v:.2f}'}" for k, v in report.scores.items())
    say(f"report in {time.perf_counter() - t6:.0f} s -> {out / 'report.html'} ({scores})")
    return {"metadata": meta, "model": model, "synthetic": synthetic, "report": report, "matrix_shape": matrix.shape,
            "exact": exact,
            "seconds": {"detect": t1 - t0, "fit_transform": t2 - t1, "inverse": t3 - t2},
            "max_abs_error": {c: float(np.nanmax(np.abs(df[c] - back[c]))) for c in meta.names_of_kind("numerical")}}
