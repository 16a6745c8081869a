"""A fourth model family written as a third party would: every column drawn independently from its
own learned marginal. Its own module plus one registration line, which ``test_check_synthesizer.py``
writes (``register("Independent", "independent_family:IndependentColumns")``; a package would declare
it as an entry point of the group ``tabsynth.families``), and runs the shipped contract on it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tabsynth.models.base import BaseSynthesizer
from tabsynth.models.training import PlainTrainer, shuffled, steps_per_epoch
from tabsynth.privacy.config import DPConfig
from tabsynth.privacy.marginals import NoisyMarginals
from tabsynth.privacy.trainer import DPTrainer, StepRule


class _Marginals(nn.Module):
    """Logits of every one-hot slot and a mean and log-scale per scalar, as the bias of one linear layer
    on a constant input (a layer Opacus computes per-row gradients for)."""

    def __init__(self, dim: int, n_cont: int) -> None:
        super().__init__()
        self.params = nn.Linear(1, dim + n_cont)
        nn.init.zeros_(self.params.weight)
        nn.init.zeros_(self.params.bias)
        self.dim = dim

    def forward(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.params(torch.ones(n, 1, device=self.params.bias.device))
        return out[:, : self.dim], out[:, self.dim:]


class IndependentColumns(BaseSynthesizer):
    """Independent columns: a baseline that keeps every column's distribution and no pair.

    Args:
        epochs: passes over the data; default 30.
        batch_size: rows per step; default 500.
        lr: Adam learning rate.
        numerical, max_categories, device, seed, verbose, precision, epsilon, delta, max_grad_norm, dp:
            as for :class:`~tabsynth.models.gan.CTGAN`.
    """

    _DEFAULTS = {"epochs": (30, None), "batch_size": (500, None)}
    _DP_STEPS = StepRule(batch=500)

    def __init__(self, epochs: int | None = None, batch_size: int | None = None, lr: float = 0.05,
                 numerical: str = "mode", max_categories: int = 500, device: str = "auto",
                 seed: int | None = None, verbose: bool = True, precision: str = "fp32",
                 epsilon: float | None = None, delta: float | None = None, max_grad_norm: float | None = None,
                 dp: DPConfig | None = None) -> None:
        self._store(locals())

    def _build(self, data_dim: int) -> None:
        self.net_ = _Marginals(data_dim, len(self.layout_.cont_idx)).to(self.device_)

    def _modules(self) -> dict[str, nn.Module]:
        return {"net": self.net_}

    def _loss(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        logits, scale = net(len(x))
        loss = self.layout_.group_cross_entropy(logits, x)
        idx = self.layout_.cont_idx
        if len(idx):
            mean = logits.index_select(1, idx)
            loss = loss + (((x.index_select(1, idx) - mean) * torch.exp(-scale)) ** 2 / 2 + scale).sum(1)
        return loss

    def _train(self, data: torch.Tensor) -> list[dict[str, float]]:
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        bs = min(self._batch_size, len(data))

        def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
            loss = self._loss(self.net_, data.index_select(0, idx)).mean()
            opt.zero_grad(set_to_none=True)
            self._backward_step(loss, opt, self.net_, None)
            return {"loss": loss.detach()}

        trainer = PlainTrainer(epochs=self._epochs, desc="Independent", verbose=self.verbose, runtime=self._runtime)
        return trainer.run(step, shuffled(len(data), bs, steps_per_epoch(self._n_global, bs), self._runtime,
                                          self.device_))

    def _train_private(self, data: torch.Tensor, trainer: DPTrainer, cond_counts: list[list[float]],
                       marginals: NoisyMarginals | None) -> list[dict[str, float]]:
        def step(dp: DPTrainer, x: torch.Tensor) -> dict[str, Any]:
            dp.update(self._loss(dp.module, x))
            return {}

        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        return trainer.run(self.net_, opt, data, step, desc="DP-Independent", verbose=self.verbose,
                           mechanism="DP-SGD on the per-column marginals (Opacus, Poisson sampling)")

    def _draws(self, n: int, condition: tuple[int, int] | None, generator: torch.Generator) -> dict[str, Any]:
        n_cont = len(self.layout_.cont_idx)
        return {"u": self.layout_.draw_uniforms(n, generator),
                "noise": torch.randn(n, n_cont, device=self.device_, generator=generator) if n_cont else None}

    def _generate_block(self, draws: dict[str, Any]) -> torch.Tensor:
        n = len(draws["u"][0]) if draws["u"] else len(draws["noise"])
        logits, scale = self.net_(n)
        out = self.layout_.activate(logits, hard=True, uniforms=draws["u"])
        idx = self.layout_.cont_idx
        if len(idx):
            mean = logits.index_select(1, idx)
            out[:, idx] = (mean + draws["noise"] * torch.exp(scale)).clamp(-1.0, 1.0)
        return out

