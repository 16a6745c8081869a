"""Run by tests/distributed/test_torchrun.py under torchrun: fits on a Parquet dataset in N processes
and writes what each rank ended with (weights, privacy statement) for the test to compare."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import tabsynth as ts
from tabsynth.distributed import current
from tabsynth.privacy.randomness import reproducible_noise


def main(data: str, out: str) -> None:
    runtime = current()
    out_dir = Path(out)
    runs = {
        "dp_tvae": ts.TVAE(epsilon=2.0, epochs=2, batch_size=100, seed=0, verbose=False, device="cpu"),
        "dp_ctgan": ts.CTGAN(epsilon=2.0, epochs=2, batch_size=100, seed=0, verbose=False, device="cpu",
                             dp=ts.DPConfig(epsilon=2.0, max_physical_batch_size=40)),
        "ctgan": ts.CTGAN(epochs=1, batch_size=100, seed=0, verbose=False, device="cpu"),
        "tvae": ts.TVAE(epochs=1, batch_size=100, seed=0, verbose=False, device="cpu"),
        # early stopping on: every rank holds out its share and all take the same decision
        "ar": ts.TabularAR(epochs=3, seed=0, verbose=False, device="cpu", embedding_dim=16, hidden=(16,)),
        "dp_ar": ts.TabularAR(epsilon=2.0, epochs=2, batch_size=100, seed=0, verbose=False, device="cpu",
                              embedding_dim=16, hidden=(16,)),
    }
    for name, model in runs.items():
        with reproducible_noise(0):  # the same noisy row count as the single-process fit of the test
            model.fit(data)
        state = {f"{m}.{k}": v for m, module in model._modules().items() for k, v in module.state_dict().items()}
        torch.save(state, out_dir / f"{name}.rank{runtime.rank}.pt")
        if runtime.is_main:
            spent = model.privacy_spent()
            (out_dir / f"{name}.json").write_text(json.dumps({
                "epsilon": spent.epsilon, "delta": spent.delta, "n_rows": model.n_rows_,
                "parts": {k: {"epsilon": p.epsilon, "details": p.details} for k, p in spent.parts.items()}},
                default=str))
    runs["ctgan"].sample_to_file(1001, out_dir / "synthetic", batch_rows=300, seed=3)




def bad_shard(out: str) -> None:
    """Rank 1's shard has an infinite value: every rank must stop with the same user error."""
    import numpy as np
    import pandas as pd

    runtime = current()
    df = pd.DataFrame({"x": np.arange(20.0), "c": ["a", "b"] * 10})
    if runtime.rank == 1:
        df.loc[3, "x"] = np.inf
    try:
        ts.TVAE(epochs=1, batch_size=10, verbose=False, device="cpu").fit(df)
    except ts.errors.DataError as exc:
        Path(out, f"error.rank{runtime.rank}.txt").write_text(str(exc))


if __name__ == "__main__":
    if sys.argv[1] == "bad-shard":
        bad_shard(sys.argv[2])
    else:
        main(sys.argv[1], sys.argv[2])
    # as the CLI does: leave the group together, not in the interpreter's shutdown
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
