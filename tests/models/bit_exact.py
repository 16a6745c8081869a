"""Hashes of fixed-seed fits of every model family, DP and not, and the refactor check built on them.

The hashes cover the sampled rows (plain and conditional), every saved tensor, the loss history
and ``privacy_spent()``. DP fits run inside ``reproducible_noise`` so that their noise, too, is a
function of the seed, and every fit runs on one torch thread. Floats depend on the CPU (its model
picks MKL / oneDNN kernels) and torch's build, so hashes are only ever compared with hashes computed
on the same machine: within one process (``test_reproducible.py``) or, for a refactor, against a
reference commit computed in the same run::

    python tests/models/bit_exact.py --against main      # or: make refactor-check REF=main

checks out the reference in a temporary ``git worktree``, computes every case's hashes there and in
this tree (each in its own one-thread process) and lists every case whose bits moved.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import tabsynth as ts
from tabsynth.models.registry import MODELS
from tabsynth.privacy.config import DPConfig
from tabsynth.privacy.randomness import reproducible_noise

REPO = Path(__file__).resolve().parents[2]

#: (case name, model constructor arguments, table, DP); tiny fits, every training path once.
CASES = [
    ("plain", dict(epochs=2, batch_size=100), "adult", False),
    ("plain", dict(epochs=2, batch_size=100), "flchain", False),
    ("dp", dict(epochs=2, batch_size=100, epsilon=3.0), "adult", True),
    ("dp-hooks-physical", dict(epochs=2, batch_size=100, dp=DPConfig(epsilon=3.0, grad_sample_mode="hooks",
                                                                      max_physical_batch_size=40)), "flchain", True),
]


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


def run_case(family: str, params: dict, table: str, private: bool, seed: int = 7,
             sample_seed: int = 3) -> dict[str, str]:
    """The hashes of one fixed-seed fit, on one torch thread (the thread count changes float sums)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _hashes(family, params, table, private, seed, sample_seed)
    finally:
        torch.set_num_threads(threads)


def _hashes(family: str, params: dict, table: str, private: bool, seed: int, sample_seed: int) -> dict[str, str]:
    df = _table(table)
    model = MODELS[family](seed=seed, verbose=False, device="cpu", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if private:
            with reproducible_noise(11):
                model.fit(df)
        else:
            model.fit(df)
        rows = model.sample(150, seed=sample_seed)
        cond = model.sample(60, seed=4, conditions=_condition(model, df))
    spent = json.dumps(model.privacy_spent().to_dict(), sort_keys=True, default=str).encode()
    history = model.loss_history_.to_numpy(dtype=np.float64).tobytes()
    return {"sample": _frame_hash(rows), "conditional": _frame_hash(cond), "weights": _weights_hash(model),
            "history": _digest(history), "privacy": _digest(spent)}


def case_key(family: str, case: str, table: str) -> str:
    return f"{family}/{case}/{table}"


def all_hashes() -> dict[str, dict[str, str]]:
    """Every registered family's hashes for every case, on this machine."""
    return {case_key(family, case, table): run_case(family, params, table, private)
            for family in sorted(MODELS) for case, params, table, private in CASES}


def _hashes_of_tree(tree: Path) -> dict[str, dict[str, str]]:
    """``all_hashes()`` with the ``tabsynth`` package of ``tree``, in a fresh one-thread process."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, "--print"], env=env, cwd=tree, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def compare_with(reference: str) -> int:
    """Compare this tree's hashes with those of commit ``reference``; the number of cases that moved."""
    known = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{reference}^{{commit}}"],
                           capture_output=True, text=True)
    if known.returncode:
        raise SystemExit(f"refactor check: {reference!r} is not a commit of {REPO}; give a branch, tag or commit")
    with tempfile.TemporaryDirectory(prefix="tabsynth-ref-") as tmp:
        ref_tree = Path(tmp) / "ref"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(ref_tree), reference],
                       check=True)
        try:
            expected = _hashes_of_tree(ref_tree)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(ref_tree)], check=True)
    actual = _hashes_of_tree(REPO)
    moved = 0
    for key in sorted(set(expected) | set(actual)):
        a, e = actual.get(key), expected.get(key)
        parts = sorted(p for p in set(a or {}) | set(e or {}) if (a or {}).get(p) != (e or {}).get(p))
        print(f"{key}: {'same' if not parts else 'MOVED ' + ', '.join(parts)}")
        moved += bool(parts)
    print(f"{moved} of {len(set(expected) | set(actual))} cases moved against {reference}")
    return moved


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", metavar="REF", help="a commit, branch or tag to compare this tree with")
    parser.add_argument("--print", action="store_true", help="print this tree's hashes as one JSON line")
    args = parser.parse_args()
    if args.print:
        print(json.dumps(all_hashes(), sort_keys=True))
    elif args.against:
        sys.exit(1 if compare_with(args.against) else 0)
    else:
        parser.print_help()
