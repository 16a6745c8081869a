"""The loop every family's fit without DP shares: epochs behind one progress bar, shuffled batches
(split over the ranks under torchrun), per-epoch means of what each step reports, and optional early
stopping on a held-out split. A family supplies only its step, as it does to the DP trainer."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from tqdm.auto import tqdm

from tabsynth.distributed.runtime import Runtime
from tabsynth.models.stopping import EarlyStopping

#: What a step reports: per-step means of its losses, as detached tensors (summed on the device).
StepLosses = dict[str, torch.Tensor]


def steps_per_epoch(n_global: int, batch_size: int) -> int:
    """Steps in one pass over ``n_global`` rows (every rank's) in batches of ``batch_size``."""
    return math.ceil(n_global / min(batch_size, n_global))


def shuffled(n: int, batch_size: int, steps: int, runtime: Runtime, device: torch.device
             ) -> Callable[[int], Iterable[torch.Tensor]]:
    """Per epoch, the row indices of each step over this rank's ``n`` rows: a fresh permutation cut
    into batches of ``batch_size``; under torchrun every rank takes the same ``steps`` steps, each on
    its share of the global batch."""
    def batches(epoch: int) -> Iterable[torch.Tensor]:
        perm = torch.randperm(n, device=device)
        return perm.tensor_split(steps) if runtime.distributed else perm.split(batch_size)

    return batches


def repeated(steps: int) -> Callable[[int], Iterable[int]]:
    """Per epoch, ``steps`` steps that draw their own batches (the step number is passed)."""
    return lambda epoch: range(steps)


class PlainTrainer:
    """Runs ``step(batch)`` over ``batches(epoch)`` for ``epochs`` epochs; returns one record per epoch.

    ``finish(record)`` may add derived entries (a total loss); ``validate()`` returns the summed
    validation loss and the rows it covers, which ``stopper`` turns into the stop decision (the best
    weights are restored at the end).
    """

    def __init__(self, *, epochs: int, desc: str, verbose: bool, runtime: Runtime,
                 stopper: EarlyStopping | None = None,
                 validate: Callable[[], tuple[Any, int]] | None = None,
                 finish: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.epochs, self.desc, self.verbose, self.runtime = epochs, desc, verbose, runtime
        self.stopper, self.validate, self.finish = stopper, validate, finish

    def run(self, step: Callable[[Any], StepLosses], batches: Callable[[int], Iterable[Any]]) -> list[dict[str, Any]]:
        history: list[dict[str, Any]] = []
        bar = tqdm(range(self.epochs), desc=self.desc, disable=not self.verbose or not self.runtime.is_main,
                   unit="epoch")
        for epoch in bar:
            sums: dict[str, torch.Tensor] = {}
            steps = 0
            for batch in batches(epoch):
                for name, value in step(batch).items():
                    sums[name] = sums[name] + value if name in sums else value
                steps += 1
            record: dict[str, Any] = {"epoch": epoch}
            record.update({name: float(total) / max(steps, 1) for name, total in sums.items()})
            if self.finish is not None:
                self.finish(record)
            history.append(record)
            bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k != "epoch"})
            if self.stopper is not None and self.validate is not None:
                summed, rows = self.validate()
                stop = self.stopper.step(epoch, summed, rows)
                record["val_loss"] = self.stopper.last
                if stop:
                    break
        if self.stopper is not None:
            self.stopper.restore()
        return history
