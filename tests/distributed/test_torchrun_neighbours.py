"""A two-process DP fit (torchrun, gloo on CPU) on neighbouring tables, coupled as in the
single-process audit: the same noise draws and the same Poisson decisions for the shared rows
(reproducible_noise), D and D minus one row. What must not depend on the row is identical; what may
moves by at most its sensitivity (docs/privacy.md rule 19)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tabsynth.distributed import shard_range

pytestmark = pytest.mark.slow  # one torchrun launch of two processes: about a minute on two cores

ROWS = 601  # split 300 / 301: the removed last row is rank 1's, rank 0's shard is the same in both


@pytest.fixture(scope="module")
def neighbours(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("neighbours")
    rng = np.random.default_rng(2)
    # categorical columns: their tokens are the same on both tables (a numeric column's mixture, fitted
    # on draws from the noisy histogram, may gain a mode, and the networks would differ in shape)
    d = pd.DataFrame({"c": rng.choice(["a", "b", "c"], ROWS, p=[.5, .3, .2]),
                      "k": rng.choice(["k0", "k1", "k2", "k3"], ROWS), "flag": rng.choice([True, False], ROWS)})
    d.loc[ROWS - 1] = ["a", "k1", True]  # the target, on rank 1
    d.to_parquet(tmp / "D.parquet")
    d.iloc[:-1].to_parquet(tmp / "D-1.parquet")
    assert shard_range(ROWS, 0, 2) == shard_range(ROWS - 1, 0, 2)
    worker = Path(__file__).with_name("_neighbour_worker.py")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(worker), str(tmp), str(tmp / "D.parquet"), str(tmp / "D-1.parquet")],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp


def _published(tmp: Path, name: str) -> dict:
    return json.loads((tmp / f"{name}.json").read_text())


def test_what_must_not_depend_on_the_row_is_identical(neighbours):
    d, d1 = _published(neighbours, "D"), _published(neighbours, "D-1")
    assert (d["statement"], d["settings"], d["schema"]) == (d1["statement"], d1["settings"], d1["schema"])
    counts = [p["privacy"]["parts"]["preprocessing"]["details"].pop("noisy_row_count") for p in (d, d1)]
    assert d["privacy"] == d1["privacy"]  # epsilon, delta, every part's mechanism, sigma, rate and steps
    # the noisy count moves by its sensitivity, no more
    assert counts[0] - counts[1] == 1 and d["n_rows"] - d1["n_rows"] == 1
    train = d["privacy"]["parts"]["training"]["details"]
    assert train["processes"] == 2 and train["sample_rate"] == 0.5 and train["steps"] == 2


def test_the_first_dp_step_moves_by_at_most_the_clip_norm(neighbours):
    steps = {name: [torch.load(neighbours / f"{name}.step1.rank{r}.pt", weights_only=True) for r in range(2)]
             for name in ("D", "D-1")}
    assert [t.shape for t in steps["D"][0]] == [t.shape for t in steps["D-1"][0]]  # the same network
    # rank 0 holds the same rows and adds the same noise: its share of the all-reduce is identical
    assert all(torch.equal(a, b) for a, b in zip(steps["D"][0], steps["D-1"][0]))
    # the all-reduced noisy sums differ only by the target's clipped gradient, if it was sampled
    total = {name: torch.cat([(a + b).flatten() for a, b in zip(*ranks)]) for name, ranks in steps.items()}
    clip = _published(neighbours, "D")["privacy"]["parts"]["training"]["details"]["max_grad_norm"]
    assert float(torch.linalg.vector_norm(total["D"] - total["D-1"])) <= clip * (1 + 1e-4)
    assert float(torch.linalg.vector_norm(total["D"])) > 10 * clip  # the noise is in it
