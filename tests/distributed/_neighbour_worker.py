"""Run by tests/distributed/test_torchrun_neighbours.py under torchrun: one DP fit of each table
given (D and D minus its last row), every accounted mechanism coupled by reproducible_noise, and what
each rank ended with written for the test: the published facts (rank 0) and the noisy gradient sum of
the first DP step (each rank's share of the all-reduce)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import tabsynth as ts
import tabsynth.privacy.engine as engine
from tabsynth.distributed import current
from tabsynth.privacy.randomness import reproducible_noise

FIRST_STEP: list[list[torch.Tensor]] = []


def _recording(opt_cls: type, randomness, rank: int) -> type:
    """The library's noised optimizer, keeping this rank's noisy clipped sum of the first step."""
    noised = _real_noised_by(opt_cls, randomness, rank)

    class Recorded(noised):
        def add_noise(self) -> None:
            super().add_noise()
            if not FIRST_STEP:
                FIRST_STEP.append([p.grad.detach().clone() for p in self.params])

    return Recorded


_real_noised_by = engine._noised_by
engine._noised_by = _recording


def main(out: str, *tables: str) -> None:
    runtime = current()
    for path in tables:
        name = Path(path).stem
        FIRST_STEP.clear()
        model = ts.TabularAR(epsilon=2.0, epochs=1, batch_size=400, seed=0, verbose=False, device="cpu",
                             embedding_dim=8, hidden=(8,))
        with reproducible_noise(0):
            model.fit(path)
        torch.save(FIRST_STEP[0], Path(out) / f"{name}.step1.rank{runtime.rank}.pt")
        if runtime.is_main:
            Path(out, f"{name}.json").write_text(json.dumps({
                "privacy": model.privacy_spent().to_dict(), "statement": str(model.privacy_spent()),
                "settings": model.resolved_params(), "schema": model.metadata_.to_dict(),
                "n_rows": model.n_rows_}, default=str))


if __name__ == "__main__":
    main(sys.argv[1], *sys.argv[2:])
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
