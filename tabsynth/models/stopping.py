"""Early stopping on a validation split, for fits without DP.

A share of the encoded rows is held out before training; after every epoch the model's loss on
them decides whether to go on. The learning rate halves once more than ``plateau`` epochs in a
row bring no new best (down to a tenth of its start), training stops once more than ``patience``
do, and the best weights are put back. Under DP nothing here is used: a loss on held-out real rows is a statistic
of them that no accountant charges (docs/privacy.md rule 14), so DP fits train for the planned
number of steps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from tabsynth.distributed.runtime import Runtime

#: Share of rows held out, and the fewest held-out rows worth deciding on.
VALIDATION_SHARE = 0.1
MIN_VALIDATION_ROWS = 50


def split_validation(data: torch.Tensor, n_global: int, share: float = VALIDATION_SHARE
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(train, validation)`` rows of ``data`` (a random share, from torch's seeded generator), or
    ``(data, None)`` when the share of all ``n_global`` rows (every rank's) would be under
    :data:`MIN_VALIDATION_ROWS`: a decision every rank takes alike."""
    if share <= 0 or int(n_global * share) < MIN_VALIDATION_ROWS:
        return data, None
    n_valid = int(len(data) * share)
    perm = torch.randperm(len(data), device=data.device)
    return data.index_select(0, perm[n_valid:]), data.index_select(0, perm[:n_valid])


class EarlyStopping:
    """Tracks the validation loss of ``module``, keeps its best weights, lowers the learning rate on
    plateaus and says when to stop. Under torchrun the per-rank losses are summed first, so every
    rank takes the same decision."""

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, runtime: Runtime,
                 patience: int = 4, plateau: int = 2) -> None:
        self.module, self.runtime, self.patience = module, runtime, patience
        base = optimizer.param_groups[0]["lr"]
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=plateau,
                                                                    min_lr=0.1 * base)
        self.best = float("inf")
        self.best_epoch = -1
        self.waited = 0
        self._state: dict[str, torch.Tensor] | None = None

    def step(self, epoch: int, loss_sum: float, rows: int) -> bool:
        """Record the epoch's summed validation loss over ``rows`` rows; True when training should stop."""
        total, count = (float(v) for v in self.runtime.all_reduce_sum([loss_sum, float(rows)]))
        loss = total / max(count, 1.0)
        self.last = loss
        self.scheduler.step(loss)
        if loss < self.best:
            self.best, self.best_epoch, self.waited = loss, epoch, 0
            self._state = copy.deepcopy(self.module.state_dict())
            return False
        self.waited += 1
        return self.waited > self.patience

    def restore(self) -> None:
        """Put the best weights back (no-op before the first epoch)."""
        if self._state is not None:
            self.module.load_state_dict(self._state)


def validation_loss(loss_fn: Callable[[torch.Tensor], torch.Tensor], rows: torch.Tensor, batch: int) -> float:
    """Summed per-row loss of ``loss_fn`` over ``rows`` in batches, without gradients."""
    with torch.no_grad():
        return float(sum(loss_fn(chunk).double().sum() for chunk in rows.split(max(batch, 1))))
