#!/usr/bin/env python
"""MOSTLY AI's QA (``mostlyai-qa``, Apache-2.0) on one synthetic pair, run in ``.venv-qa`` by ``pair.py``.

Reads ``{trn,hol,syn}_{subjects,events}.parquet`` from ``--data``, calls ``mostlyai.qa.report`` with
the events as target table and the persons as context (so its accuracy has a coherence part for
the sequences) and writes its metrics, flattened as ``qa_<group>_<name>``, to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"


def flatten(metrics: dict[str, Any], prefix: str = "qa") -> dict[str, Any]:
    """``{"accuracy": {"overall": 0.9}}`` -> ``{"qa_accuracy_overall": 0.9}`` (numbers only)."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}_{k}"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}_{k}"] = float(v)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--key", required=True)
    p.add_argument("--out", required=True, type=Path)
    a = p.parse_args(argv)
    import pandas as pd
    import torch
    from mostlyai.qa import report

    torch.set_num_threads(1)
    t = {f"{tag}_{part}": pd.read_parquet(a.data / f"{tag}_{part}.parquet")
         for tag in ("trn", "hol", "syn") for part in ("subjects", "events")}
    _, metrics = report(
        syn_tgt_data=t["syn_events"], trn_tgt_data=t["trn_events"], hol_tgt_data=t["hol_events"],
        syn_ctx_data=t["syn_subjects"], trn_ctx_data=t["trn_subjects"], hol_ctx_data=t["hol_subjects"],
        ctx_primary_key=a.key, tgt_context_key=a.key, report_path=a.data / "report.html")
    if metrics is None:
        raise SystemExit("QA returned no metrics (too few persons in a table: it needs at least 100 in each)")
    a.out.write_text(json.dumps(flatten(metrics.model_dump())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
