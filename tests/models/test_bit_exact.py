"""Refactors must not move a single bit: fixed-seed fits of every model family, DP and not, hashed.

The hashes cover the sampled rows (plain and conditional), every saved tensor, the loss history
and ``privacy_spent()``. DP fits run inside ``reproducible_noise`` so that their noise, too, is a
function of the seed. Floating-point results depend on the CPU's vector unit and torch's build,
so the recorded hashes are keyed by both (and fits run on one thread); on another machine the test says so and skips.
Regenerate after an intended change with ``python tests/models/test_bit_exact.py --update``; that
keeps this machine's hashes only.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import tabsynth as ts
from tabsynth.models.registry import MODELS
from tabsynth.privacy.config import DPConfig
from tabsynth.privacy.randomness import reproducible_noise

HASH_FILE = Path(__file__).with_name("bit_exact_hashes.json")

#: (case name, model constructor arguments, table, DP); tiny fits, every training path once.
CASES = [
    ("plain", dict(epochs=2, batch_size=100), "adult", False),
    ("plain", dict(epochs=2, batch_size=100), "flchain", False),
    ("dp", dict(epochs=2, batch_size=100, epsilon=3.0), "adult", True),
    ("dp-hooks-physical", dict(epochs=2, batch_size=100, dp=DPConfig(epsilon=3.0, grad_sample_mode="hooks",
                                                                      max_physical_batch_size=40)), "flchain", True),
]


def fingerprint() -> str:
    return f"torch-{torch.__version__}/{torch.backends.cpu.get_cpu_capability()}/{sys.platform}"


def _table(name: str) -> pd.DataFrame:
    df = ts.datasets.load(name)
    return df.iloc[:400].reset_index(drop=True) if name == "adult" else df.iloc[:300].reset_index(drop=True)


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()[:16]


def _frame_hash(df: pd.DataFrame) -> str:
    return _digest(pd.util.hash_pandas_object(df, index=False).values.tobytes(), ",".join(df.columns).encode())


def _weights_hash(model) -> str:
    tensors = {f"{name}.{k}": v for name, mod in model._modules().items() for k, v in mod.state_dict().items()}
    tensors.update({f"extra.{k}": v for k, v in model._extra_tensors().items()})
    return _digest(*(k.encode() + tensors[k].detach().cpu().contiguous().numpy().tobytes() for k in sorted(tensors)))


def _condition(model, df: pd.DataFrame) -> dict:
    col = "sex" if "sex" in df.columns else "mgus"
    return {col: df[col].mode().iloc[0]}


def run_case(family: str, params: dict, table: str, private: bool) -> dict[str, str]:
    """The hashes of one fixed-seed fit, on one torch thread (the thread count changes float sums)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _hashes(family, params, table, private)
    finally:
        torch.set_num_threads(threads)


def _hashes(family: str, params: dict, table: str, private: bool) -> dict[str, str]:
    df = _table(table)
    model = MODELS[family](seed=7, verbose=False, device="cpu", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if private:
            with reproducible_noise(11):
                model.fit(df)
        else:
            model.fit(df)
        rows = model.sample(150, seed=3)
        cond = model.sample(60, seed=4, conditions=_condition(model, df))
    spent = json.dumps(model.privacy_spent().to_dict(), sort_keys=True, default=str).encode()
    history = model.loss_history_.to_numpy(dtype=np.float64).tobytes()
    return {"sample": _frame_hash(rows), "conditional": _frame_hash(cond), "weights": _weights_hash(model),
            "history": _digest(history), "privacy": _digest(spent)}


def _key(family: str, case: str, table: str) -> str:
    return f"{family}/{case}/{table}"


def _recorded() -> dict:
    return json.loads(HASH_FILE.read_text()) if HASH_FILE.exists() else {}


@pytest.mark.parametrize("family", sorted(MODELS))
@pytest.mark.parametrize("case,params,table,private", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_fixed_seed_fit_is_bit_exact(family, case, params, table, private):
    recorded = _recorded().get(fingerprint())
    if recorded is None:
        pytest.skip(f"no hashes recorded for {fingerprint()}; record them with "
                    "python tests/models/test_bit_exact.py --update on a trusted checkout")
    expected = recorded.get(_key(family, case, table))
    assert expected is not None, f"no hashes for {_key(family, case, table)}: run --update"
    assert run_case(family, params, table, private) == expected


def _update() -> None:
    """Record this machine's hashes; those of other machines are dropped, since after an intended
    change they describe old code (those machines skip until someone records there)."""
    mine = {}
    for family in sorted(MODELS):
        for case, params, table, private in CASES:
            mine[_key(family, case, table)] = run_case(family, params, table, private)
            print(_key(family, case, table), mine[_key(family, case, table)])
    HASH_FILE.write_text(json.dumps({fingerprint(): mine}, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        _update()
    else:
        print(__doc__)
