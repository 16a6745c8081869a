"""DP-SGD for one fit: the step budget, sigma for exactly that many steps, the Opacus loop, and the
training release in the statement (docs/privacy.md rules 7-13).

A model hands the trainer the module to make private, its optimizer and a step function; the step
sees a :class:`DPTrainer` and uses only its public methods (:meth:`DPTrainer.update`,
:attr:`DPTrainer.completes`, :meth:`DPTrainer.hooks_off`, :meth:`DPTrainer.isolated`). Models never
import Opacus.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from tabsynth.privacy.accountant import Accountant, Release
from tabsynth.privacy.config import DPConfig
from tabsynth.privacy.engine import PrivateTraining, make_private, quiet_opacus, sample_rate
from tabsynth.privacy.randomness import Randomness

#: What a step function returns: post-processing of DP outputs only (never a loss on real rows).
StepRecord = dict[str, Any]


@dataclass(frozen=True)
class StepRule:
    """How DP-SGD is sized from the noisy row count when ``epochs`` / ``batch_size`` are left unset.

    At a fixed epsilon the signal-to-noise ratio of one step, ``batch / (sigma * C)``, hardly depends
    on the batch (sigma grows with the sample rate), so what matters is the number of steps: few
    steps learn too little, and on small tables a fixed epoch count gave a handful (2,000 rows, 10
    epochs of 2,000-row batches: 10 steps). The rule takes an expected batch of at most
    ``max_rate`` of the rows (never more than the family's ``batch``, never fewer than ``min_batch``
    rows) and as many epochs as ``min_steps`` steps need, at least ``min_epochs``. Chosen on the
    suite's tables (benchmarks/results/dp_steps.md); ``n_hat`` is the noisy count, so the rule is
    post-processing of a DP release (docs/privacy.md rule 14).
    """

    batch: int
    min_steps: int = 400
    max_rate: float = 0.1
    min_epochs: int = 10
    min_batch: int = 16

    def batch_for(self, n_hat: int) -> int:
        return max(1, min(self.batch, n_hat, max(self.min_batch, math.ceil(self.max_rate * n_hat))))

    def epochs_for(self, n_hat: int, batch: int) -> int:
        per_epoch = math.ceil(n_hat / min(batch, n_hat))
        return max(self.min_epochs, math.ceil(self.min_steps / per_epoch))

    def describe(self, name: str) -> str:
        """The rule in words, for published settings (before the count is known)."""
        if name == "epochs":
            return f"auto: enough for {self.min_steps} DP-SGD steps, at least {self.min_epochs}"
        return f"auto: {self.max_rate:g} of the noisy row count, between {self.min_batch} and {self.batch} rows"


class DPTrainer:
    """The DP-SGD part of a fit, planned from the noisy row count ``n_hat``.

    The expected Poisson batch is ``min(batch_size, n_hat)`` (or the :class:`StepRule`'s, and its
    epochs, for what is left unset); the rate ``q`` and the steps per epoch
    follow Opacus' loader (``q = 1 / ceil(n_hat / batch)``), and sigma is calibrated so that the
    whole fit, preprocessing included, lands on the accountant's target after exactly
    ``epochs * steps_per_epoch`` steps.
    """

    def __init__(self, accountant: Accountant, config: DPConfig, randomness: Randomness, runtime: Any, *,
                 n_hat: int, epochs: int | None, batch_size: int | None, rule: StepRule,
                 device: torch.device) -> None:
        self.accountant, self.config, self.randomness, self.runtime = accountant, config, randomness, runtime
        self.n_hat, self.device = n_hat, device
        self.batch_size = min(batch_size, n_hat) if batch_size is not None else rule.batch_for(n_hat)
        self.epochs = epochs if epochs is not None else rule.epochs_for(n_hat, self.batch_size)
        self.sample_rate, self.steps_per_epoch = sample_rate(n_hat, self.batch_size)
        self.steps = self.epochs * self.steps_per_epoch
        self.sigma = accountant.training_noise(self.sample_rate, self.steps)
        self._run: PrivateTraining | None = None

    # --- what a step function uses ----------------------------------------------------------------
    @property
    def module(self) -> Any:
        """The private module: call it for forward passes whose loss is clipped and noised."""
        return self._active().module

    @property
    def completes(self) -> bool:
        """Whether the current physical batch ends its logical (Poisson) batch, i.e. whether the
        optimizer step just taken was a real, noised step rather than an accumulation."""
        return self._active().completes

    def update(self, per_sample_loss: torch.Tensor) -> None:
        """One DP-SGD update from one loss per real row: clip each row's gradient, sum, noise, step."""
        run = self._active()
        loss = run.loss(per_sample_loss)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()

    @contextlib.contextmanager
    def hooks_off(self) -> Iterator[None]:
        """Work outside the private step (a generator step, a loss on synthetic rows only): the
        per-sample hooks are off inside, so nothing is clipped, noised or accounted."""
        module = self._active().module
        module.disable_hooks()
        try:
            yield
        finally:
            module.enable_hooks()

    def isolated(self) -> contextlib.AbstractContextManager:
        """Draws inside come from a secret stream: their number follows the private batch size, so
        they must not shift the seeded stream the model uses afterwards (docs/privacy.md rule 15)."""
        return self.randomness.isolated(self.device)

    def _active(self) -> PrivateTraining:
        if self._run is None:
            raise RuntimeError("DPTrainer methods are for the step function, during run()")
        return self._run

    # --- the loop ---------------------------------------------------------------------------------
    def run(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer, data: torch.Tensor,
            step: Callable[[DPTrainer, torch.Tensor], StepRecord], *, desc: str, mechanism: str,
            verbose: bool = True) -> list[dict[str, float]]:
        """Train ``module`` by DP-SGD on ``data`` for the planned steps; return the per-epoch history.

        ``step(trainer, batch)`` does one update on one physical batch through :meth:`update` and
        returns only post-processing of DP outputs, which is averaged per epoch over the logical
        steps that reported it, next to the epsilon spent so far.
        """
        config = self.config
        self._run = make_private(
            module, optimizer, data, sample_rate=self.sample_rate, steps_per_epoch=self.steps_per_epoch,
            expected_batch_size=self.sample_rate * self.n_hat, noise_multiplier=self.sigma,
            max_grad_norm=config.max_grad_norm, randomness=self.randomness,
            max_physical_batch_size=config.max_physical_batch_size, runtime=self.runtime,
            clipping="ghost" if config.grad_sample_mode == "ghost" else "per_sample")
        try:
            history, done = self._epochs(step, desc, verbose)
        finally:
            run, self._run = self._run, None
            run.optimizer.zero_grad(set_to_none=True)
            run.close()
        self._record(run, done, mechanism)
        return history

    def _epochs(self, step: Callable, desc: str, verbose: bool) -> tuple[list[dict[str, float]], int]:
        run, history, done = self._active(), [], 0
        with quiet_opacus():
            bar = tqdm(range(self.epochs), desc=desc, disable=not verbose or not self.runtime.is_main, unit="epoch")
            for epoch in bar:
                sums: dict[str, Any] = {}
                calls: dict[str, int] = {}
                for (batch,) in run.loader:
                    if done >= self.steps:
                        break
                    for key, value in step(self, batch).items():
                        sums[key] = sums.get(key, 0.0) + value
                        calls[key] = calls.get(key, 0) + 1
                    if run.completes:
                        done += 1
                record = {"epoch": epoch, **{k: float(v) / calls[k] for k, v in sums.items()}}
                record["epsilon"] = self.accountant.spent_epsilon([Release("training", self.sigma, self.sample_rate,
                                                                           done)])
                history.append(record)
                bar.set_postfix({k.split("_")[0]: f"{v:.3f}" for k, v in record.items() if k != "epoch"})
        return history, done

    def _record(self, run: PrivateTraining, done: int, mechanism: str) -> None:
        """The training release, with Opacus' own RDP epsilon for the steps taken as a cross-check."""
        config = self.config
        with quiet_opacus():
            opacus_eps = float(run.opacus_accountant.get_epsilon(delta=self.accountant.delta_rdp)) if done else 0.0
        self.accountant.add(Release("training", self.sigma, self.sample_rate, done, mechanism=mechanism, details={
            "max_grad_norm": config.max_grad_norm, "expected_batch_size": self.batch_size, "epochs": self.epochs,
            "poisson_sampling": True, "opacus_rdp_epsilon": opacus_eps, "secure_mode": config.secure_mode,
            "max_physical_batch_size": config.max_physical_batch_size, "grad_sample_mode": config.grad_sample_mode,
            "processes": self.runtime.world_size}))

