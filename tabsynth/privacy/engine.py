"""DP-SGD through Opacus: validation, the Poisson loader and the noised optimizer.

This module and :mod:`tabsynth.privacy.trainer` are the only places that touch Opacus objects, and
only through their public methods."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tabsynth.errors import PrivacyConfigError
from tabsynth.privacy.accountant import OPTIMAL_ORDER_NOTICE
from tabsynth.privacy.randomness import Randomness


def validate_module(module: nn.Module) -> None:
    """Refuse modules Opacus cannot make private (BatchNorm above all), listing every problem."""
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(module, strict=False)
    if errors:
        raise PrivacyConfigError("module cannot be trained with DP-SGD: " + "; ".join(map(str, errors)))


class _Rows(Dataset):
    """The encoded table where it lives (CPU or GPU), fetched one whole batch per index list."""

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor]:
        return (self.data[i],)

    def __getitems__(self, idx: list[int]) -> torch.Tensor:
        return self.data[torch.as_tensor(idx, dtype=torch.long, device=self.data.device)]


def _poisson_sampler_class() -> type:
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    class PoissonBatches(UniformWithReplacementSampler):
        """Poisson batches (each row in each batch independently with probability q) drawn from the
        fit's private :class:`~tabsynth.privacy.randomness.Randomness` (in O(batch) below q = 0.5).

        With ``max_physical`` set, each logical batch is split into near-equal physical batches of at
        most that many rows; the optimizer is told to accumulate until the last of them, and
        :attr:`completes` says whether the batch just handed out ends its logical batch."""

        def __init__(self, *, num_samples: int, sample_rate: float, steps: int, randomness: Randomness,
                     max_physical: int | None = None, optimizer: Any = None) -> None:
            super().__init__(num_samples=num_samples, sample_rate=sample_rate, steps=steps)
            self.randomness = randomness
            self.max_physical = max_physical
            self.optimizer = optimizer
            self.completes = True

        def __iter__(self):
            for _ in range(self.steps):
                batch = self.randomness.poisson_batch(self.num_samples, self.sample_rate).tolist()
                if self.max_physical is None:
                    yield batch
                    continue
                parts = [p.tolist() for p in np.array_split(batch, math.ceil(len(batch) / self.max_physical))] \
                    if batch else [[]]
                for i, part in enumerate(parts):
                    self.completes = i == len(parts) - 1
                    self.optimizer.signal_skip_step(do_skip=not self.completes)
                    yield part

    return PoissonBatches


def _noised_by(opt_cls: type, randomness: Randomness, rank: int) -> type:
    """``opt_cls`` with its Gaussian noise drawn from ``randomness`` (on rank 0 only under torchrun:
    the clipped sums are added over ranks and noised once)."""

    class Noised(opt_cls):
        def add_noise(self) -> None:
            std = self.noise_multiplier * self.max_grad_norm
            for p in self.params:
                summed = p.summed_grad
                noisy = summed + randomness.torch_normal(std, summed) if rank == 0 and std else summed
                p.grad = noisy.view_as(p)

    Noised.__name__ = Noised.__qualname__ = f"Noised{opt_cls.__name__}"
    return Noised


def _as_batch(rows: Any) -> tuple[torch.Tensor]:
    return (rows,)


@dataclass
class PrivateTraining:
    """What DP-SGD runs on: the per-sample-gradient module, the clipping/noising optimizer, the Poisson
    loader (split into physical batches when asked), and Opacus' own RDP
    accountant counting the steps actually taken (a cross-check of ours)."""

    module: Any
    optimizer: Any
    loader: DataLoader
    opacus_accountant: Any
    sample_rate: float
    ghost: bool = False

    @property
    def completes(self) -> bool:
        """Whether the physical batch last handed out by :attr:`loader` ends its logical batch."""
        return self.loader.batch_sampler.completes  # type: ignore[union-attr]  # make_private's Poisson sampler

    def close(self) -> None:
        """Remove Opacus' hooks and per-sample state from the module (it is then a plain module)."""
        self.module.cleanup()

    def loss(self, per_sample: torch.Tensor) -> Any:
        """The batch loss to call ``backward()`` on, from one loss per real row: the mean (Opacus'
        ``loss_reduction="mean"``), or with ghost clipping Opacus' two-pass loss that clips by
        per-sample gradient norms computed without materialising per-sample gradients."""
        if self.ghost:
            from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

            return DPTensorFastGradientClipping(self.module, self.optimizer, per_sample, "mean")
        return per_sample.sum() / max(len(per_sample), 1)


def make_private(module: nn.Module, optimizer: torch.optim.Optimizer, data: torch.Tensor, *, sample_rate: float,
                 steps_per_epoch: int, expected_batch_size: float, noise_multiplier: float, max_grad_norm: float,
                 randomness: Randomness, max_physical_batch_size: int | None = None,
                 runtime: Any = None, clipping: str = "per_sample") -> PrivateTraining:
    """Wrap ``module``/``optimizer`` with Opacus and Poisson-sample ``data`` at ``sample_rate``.

    Under torchrun (``runtime.distributed``) ``data`` is this rank's shard and ``sample_rate`` the
    global one: each rank Poisson-samples its own rows, clipped gradients are summed over ranks and
    Opacus' ``DistributedDPOptimizer`` adds the noise once, on rank 0, so the step is exactly the
    single-process step on the union of the shards. ``expected_batch_size`` is the global one.
    ``clipping="ghost"`` uses Opacus' fast gradient clipping (norms without per-sample gradients:
    less memory for wide layers); the model's step must then back-propagate ``PrivateTraining.loss``.
    The gradient noise and the Poisson batches come from ``randomness`` (never from the seed).
    """
    from opacus import GradSampleModule
    from opacus.accountants import RDPAccountant
    from opacus.optimizers import DistributedDPOptimizer, DPOptimizer

    validate_module(module)
    distributed = runtime is not None and runtime.distributed
    world = runtime.world_size if distributed else 1
    rank = runtime.rank if distributed else 0
    ghost = clipping == "ghost"
    with quiet_opacus():
        if ghost:
            from opacus.grad_sample import GradSampleModuleFastGradientClipping
            from opacus.optimizers import DistributedDPOptimizerFastGradientClipping, DPOptimizerFastGradientClipping

            gsm = GradSampleModuleFastGradientClipping(module, batch_first=True, loss_reduction="mean",
                                                       max_grad_norm=max_grad_norm, use_ghost_clipping=True)
            opt_cls = DistributedDPOptimizerFastGradientClipping if distributed else DPOptimizerFastGradientClipping
        else:
            gsm = GradSampleModule(module, batch_first=True, loss_reduction="mean")
            opt_cls = DistributedDPOptimizer if distributed else DPOptimizer
        noised = _noised_by(opt_cls, randomness, rank)
        dp_opt = noised(optimizer, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                        expected_batch_size=expected_batch_size / world, loss_reduction="mean", secure_mode=False)
    accountant = RDPAccountant()
    dp_opt.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=sample_rate))
    sampler = _poisson_sampler_class()(num_samples=len(data), sample_rate=sample_rate, steps=steps_per_epoch,
                                       randomness=randomness, max_physical=max_physical_batch_size, optimizer=dp_opt)
    loader = DataLoader(_Rows(data), batch_sampler=sampler, collate_fn=_as_batch)
    return PrivateTraining(gsm, dp_opt, loader, accountant, sample_rate, ghost)


@contextlib.contextmanager
def quiet_opacus() -> Iterator[None]:
    """Silence Opacus/torch notices that say nothing to a tabsynth user (the model records secure_mode)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Secure RNG turned off.*")
        warnings.filterwarnings("ignore", message=OPTIMAL_ORDER_NOTICE)
        warnings.filterwarnings("ignore", message=".*Full backward hook is firing.*")
        yield


def sample_rate(n: int, batch_size: int) -> tuple[float, int]:
    """Opacus' Poisson rate ``1 / len(loader)`` and the loader's length (steps per epoch)."""
    steps = math.ceil(n / batch_size)
    return 1.0 / steps, steps
