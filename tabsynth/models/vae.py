"""TVAE: the tabular variational autoencoder of Xu et al. (NeurIPS 2019).

Encoder and decoder MLPs; per-span losses (cross-entropy for one-hot groups, Gaussian with a
learned sigma for scalars) and a KL term, all computed per row in one padded pass. The whole
model, sigma included, is one module whose forward returns per-row losses, so the DP mode can
wrap it in Opacus as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from tabsynth.models.base import BaseSynthesizer
from tabsynth.models.generation import Condition
from tabsynth.models.marginal_matching import MarginalMatching
from tabsynth.models.training import PlainTrainer, shuffled, steps_per_epoch
from tabsynth.models.vae_networks import VAENet
from tabsynth.privacy.config import DPConfig
from tabsynth.privacy.marginals import NoisyMarginals, marginal_loss
from tabsynth.privacy.trainer import DPTrainer


class TVAE(MarginalMatching, BaseSynthesizer):
    """Tabular variational autoencoder.

    Args:
        epochs: passes over the data.
        batch_size: rows per step (expected Poisson batch under DP).
        embedding_dim: latent size.
        compress_dims, decompress_dims: encoder and decoder hidden sizes.
        l2scale: Adam weight decay.
        lr: Adam learning rate; larger under DP (few noisy steps need larger ones: on Adult at
            epsilon 1 TSTR AUC rose from 0.49 at 1e-3 to 0.69).
        loss_factor: weight of the reconstruction term against the KL term.
        marginal_weight: under DP, learning rate of the decoder's marginal-matching steps (one after
            each DP step, on decoded prior draws only), relative to ``lr``.
        numerical, max_categories, device, seed, verbose, precision, epsilon, delta, max_grad_norm, dp:
            as for :class:`~tabsynth.models.gan.CTGAN`.
    """

    embedding_dim: int
    compress_dims: Sequence[int]
    decompress_dims: Sequence[int]
    l2scale: float
    lr: float | None
    loss_factor: float

    def __init__(self, epochs: int | None = None, batch_size: int | None = None, embedding_dim: int = 128,
                 compress_dims: Sequence[int] = (128, 128), decompress_dims: Sequence[int] = (128, 128),
                 l2scale: float = 1e-5, lr: float | None = None, loss_factor: float = 2.0,
                 marginal_weight: float = 1.0, numerical: str = "mode", max_categories: int = 500,
                 device: str = "auto", seed: int | None = None, verbose: bool = True, precision: str = "fp32",
                 epsilon: float | None = None, delta: float | None = None, max_grad_norm: float | None = None,
                 dp: DPConfig | None = None) -> None:
        self._store(locals())

    @property
    def _lr(self) -> float:
        return self.lr if self.lr is not None else (1e-2 if self._private else 1e-3)

    def _build(self, data_dim: int) -> None:
        self.net_ = VAENet(data_dim, self.embedding_dim, self.compress_dims, self.decompress_dims,
                           self.layout_, self.loss_factor).to(self.device_)

    def _modules(self) -> dict[str, nn.Module]:
        return {"net": self.net_}

    def _train(self, data: torch.Tensor) -> list[dict[str, float]]:
        opt = torch.optim.Adam(self.net_.parameters(), lr=self._lr, weight_decay=self.l2scale, fused=True)
        scaler = self._grad_scaler()
        by_hand = self._PRECISIONS[self.precision] is None  # gradients without autograd (fp32)
        bs = min(self._batch_size, len(data))

        def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
            x = data.index_select(0, idx)
            eps = torch.randn(len(x), self.embedding_dim, device=self.device_)
            if by_hand:
                rec, kl = self.net_.loss_and_grads(x, eps)
                self._backward_step(None, opt, self.net_, None)
            else:
                with self._autocast():
                    rec, kl = self.net_(x, eps, fused=True)
                loss = (rec + kl).sum() / max(len(x), 1)
                opt.zero_grad(set_to_none=True)
                self._backward_step(loss, opt, self.net_, scaler)
            self.net_.sigma.sigma.data.clamp_(0.01, 1.0)
            return {"reconstruction_loss": rec.detach().sum() / max(len(x), 1),
                    "kl_loss": kl.detach().sum() / max(len(x), 1)}

        def total(record: dict[str, float]) -> None:
            record["loss"] = record["reconstruction_loss"] + record["kl_loss"]

        trainer = PlainTrainer(epochs=self._epochs, desc="TVAE", verbose=self.verbose, runtime=self._runtime,
                               finish=total)
        steps = steps_per_epoch(self._n_global, self._batch_size)
        return trainer.run(step, shuffled(len(data), bs, steps, self._runtime, self.device_))

    def _train_private(self, data: torch.Tensor, trainer: DPTrainer, cond_counts: list[list[float]],
                       marginals: NoisyMarginals | None) -> list[dict[str, float]]:
        """DP-SGD on the whole VAE, sigma included, as one private module (docs/privacy.md rule 13).

        The DP step's draws run on a secret stream (their number follows the private batch size);
        the losses on real rows are never recorded, only the marginal loss on prior draws.

        With DP marginals, each DP step is followed by a plain Adam step on the decoder alone
        (learning rate ``marginal_weight * lr``) that pulls the marginals of decoded prior draws
        towards the noisy ones: no real row is read and the per-sample hooks are off, so it is
        post-processing of already-private state.
        """
        use_marginals = marginals is not None and self._uses_marginals()
        opt_m = (torch.optim.Adam(self.net_.decoder.parameters(), lr=self._lr * self.marginal_weight)
                 if use_marginals else None)

        def step(dp: DPTrainer, x: torch.Tensor) -> dict[str, torch.Tensor]:
            with dp.isolated():
                rec, kl = dp.module(x, torch.randn(len(x), self.embedding_dim, device=self.device_))
                dp.update(rec + kl)
            self.net_.sigma.sigma.data.clamp_(0.01, 1.0)
            if opt_m is None or marginals is None or not dp.completes:  # marginals once per logical batch
                return {}
            with dp.hooks_off():
                return {"marginal_loss": self._marginal_step(opt_m, marginals)}

        opt = torch.optim.Adam(self.net_.parameters(), lr=self._lr, weight_decay=self.l2scale)
        return trainer.run(self.net_, opt, data, step, desc="DP-TVAE", verbose=self.verbose,
                           mechanism="DP-SGD on the whole VAE (Opacus, Poisson sampling, per-sample clipping)")

    def _marginal_step(self, opt_m: torch.optim.Optimizer, marginals: NoisyMarginals) -> torch.Tensor:
        """One decoder step towards the noisy marginals, on decoded prior draws only."""
        z = torch.randn(self._local_batch, self.embedding_dim, device=self.device_)
        loss_m = marginal_loss(self.net_.decode(z), self.layout_, marginals)
        opt_m.zero_grad(set_to_none=True)
        loss_m.backward()
        self._sync_gradients(self.net_.decoder)
        opt_m.step()
        opt_m.zero_grad(set_to_none=True)
        return loss_m.detach()

    def _draws(self, n: int, condition: Condition | None, generator: torch.Generator) -> dict[str, Any]:
        n_cont = len(self.layout_.cont_idx)
        return {"z": torch.randn(n, self.embedding_dim, device=self.device_, generator=generator),
                "u": self.layout_.draw_uniforms(n, generator),
                "noise": torch.randn(n, n_cont, device=self.device_, generator=generator) if n_cont else None}

    def _generate_block(self, draws: dict[str, Any]) -> torch.Tensor:
        lay = self.layout_
        logits = self.net_.decode(draws["z"])
        out = lay.activate(logits, tau=1.0, hard=True, uniforms=draws["u"])
        if len(lay.cont_idx):
            sigma = self.net_.sigma.sigma[: len(lay.cont_idx)]
            out[:, lay.cont_idx] = (out[:, lay.cont_idx] + draws["noise"] * sigma).clamp(-1.0, 1.0)
        return out
