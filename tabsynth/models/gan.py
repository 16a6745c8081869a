"""CTGAN: the conditional tabular GAN of Xu et al. (NeurIPS 2019) on tabsynth's encoders.

Conditional vector over every discrete column (missing-value indicators included), training by
sampling with log-frequency, a residual generator with gumbel-softmax/tanh heads, a PacGAN critic
with WGAN-GP. The critic has no BatchNorm, its loss can switch to BCE and its real batches come
from a replaceable sampler, so the DP mode swaps those parts without a second training loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from tabsynth.errors import ConfigError
from tabsynth.models.averaging import WeightAverage
from tabsynth.models.base import BaseSynthesizer
from tabsynth.models.condition import ConditionSampler
from tabsynth.models.gan_networks import Discriminator, Generator, pair_loss
from tabsynth.models.generation import Condition, Requested
from tabsynth.models.marginal_matching import MarginalMatching
from tabsynth.models.training import PlainTrainer, repeated
from tabsynth.privacy.config import DPConfig
from tabsynth.privacy.marginals import NoisyMarginals, marginal_loss
from tabsynth.privacy.trainer import DPTrainer, StepRule

LOSSES = ("wgan-gp", "bce")
#: One fused kernel per Adam step instead of several per parameter.
_FAST_ADAM = {"fused": True}


class CTGAN(MarginalMatching, BaseSynthesizer):
    """Conditional tabular GAN.

    Args:
        epochs: passes over the data (steps per epoch = rows / batch_size).
        batch_size: rows per step (expected Poisson batch under DP); a multiple of ``pac``.
        embedding_dim: size of the generator's noise input.
        generator_dim, discriminator_dim: hidden layer sizes.
        generator_lr, generator_decay, discriminator_lr, discriminator_decay: Adam settings
            (betas 0.5, 0.9 as in the paper); the learning rates are larger under DP.
        discriminator_steps: critic updates per generator update.
        pac: rows per PacGAN pack.
        loss: ``"wgan-gp"`` (the paper) or ``"bce"`` (non-saturating GAN loss).
        gp_lambda: weight of the gradient penalty.
        log_frequency: draw training conditions by log-frequency (helps rare categories).
        marginal_weight: under DP, weight of the generator's loss term that matches the noisy
            marginals.
        generator_average: decay of the exponential moving average of the generator's weights that
            sampling uses (0.99 averages about the last 100 steps; 0: the last step's weights, as in
            the paper). Under DP it is post-processing.
        numerical: numeric encoding, ``"mode"`` (mode-specific normalisation) or ``"quantile"``.
        max_categories: widest one-hot; rarer values fold into ``other``.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        seed: makes fit and sample reproducible on the same machine and device (outside DP noise).
        verbose: progress bar with the current losses.
        precision: ``"fp32"``, or mixed precision without DP: ``"bf16"`` (autocast; CPU or GPU) or
            ``"fp16"`` (autocast with gradient scaling; CUDA only). Losses stay in fp32.
        epsilon, delta, max_grad_norm: train with differential privacy (the whole pipeline: private
            preprocessing, marginals and DP-SGD on the critic); shorthand for the same fields of ``dp``.
        dp: the other DP settings (:class:`~tabsynth.privacy.config.DPConfig`: budget shares, secure
            mode, clipping mode, physical batch size).

    Under DP the critic is smaller (64, 64) and both learning rates are larger: few noisy critic
    steps need a small critic and larger steps, and the generator needs many of them
    (docs/models.md has the measurements).
    """

    embedding_dim: int
    generator_dim: Sequence[int]
    generator_decay: float
    discriminator_decay: float
    discriminator_steps: int
    pac: int | None
    loss: str | None
    gp_lambda: float
    log_frequency: bool
    generator_average: float
    #: (paper / non-DP, DP) defaults of the parameters left as None (DP ones tuned on public Adult).
    _DEFAULTS = {**BaseSynthesizer._DEFAULTS, "discriminator_dim": ((256, 256), (64, 64)),
                 "generator_lr": (2e-4, 2e-3), "discriminator_lr": (2e-4, 2e-3), "marginal_weight": (1.0, 5.0),
                 "batch_size": (500, None)}
    _DP_STEPS = StepRule(batch=500)

    def __init__(self, epochs: int | None = None, batch_size: int | None = None, embedding_dim: int = 128,
                 generator_dim: Sequence[int] = (256, 256), discriminator_dim: Sequence[int] | None = None,
                 generator_lr: float | None = None, generator_decay: float = 1e-6, discriminator_lr: float | None = None,
                 discriminator_decay: float = 1e-6, discriminator_steps: int = 1, pac: int | None = None,
                 loss: str | None = None, gp_lambda: float = 10.0, log_frequency: bool = True,
                 marginal_weight: float | None = None, generator_average: float = 0.99, numerical: str = "mode",
                 max_categories: int = 500, device: str = "auto", seed: int | None = None, verbose: bool = True,
                 precision: str = "fp32", epsilon: float | None = None, delta: float | None = None,
                 max_grad_norm: float | None = None, dp: DPConfig | None = None) -> None:
        self._store(locals())

    @property
    def _pac(self) -> int:
        """PacGAN pack size: 10 (the paper), 1 under DP (docs/privacy.md rule 10)."""
        return self.pac if self.pac is not None else (1 if self._private else 10)

    @property
    def _loss(self) -> str:
        """WGAN-GP (the paper), non-saturating BCE under DP (docs/privacy.md rule 11)."""
        return self.loss if self.loss is not None else ("bce" if self._private else "wgan-gp")

    def _check_params(self) -> list[str]:
        out = super()._check_params()
        if not isinstance(self._pac, int) or self._pac < 1:
            out.append(f"pac must be a positive integer, got {self.pac!r}")
        elif isinstance(self._batch_size, int) and not self._private and self._batch_size % self._pac:
            out.append(f"batch_size ({self._batch_size}) must be a multiple of pac ({self._pac})")
        if self._loss not in LOSSES:
            out.append(f"loss={self.loss!r}: choose one of {', '.join(LOSSES)}")
        if self._private:
            from tabsynth.errors import PrivacyConfigError

            dp = []
            if self._pac != 1:
                dp.append(f"pac={self.pac} packs several real rows into one critic input, so one row's "
                          "influence is not clipped on its own: use pac=1 (the DP default)")
            if self._loss != "bce":
                dp.append("loss='wgan-gp' needs a double backward that Opacus' per-sample gradients get wrong: "
                          "use loss='bce' (the DP default)")
            if dp:
                raise PrivacyConfigError("CTGAN with epsilon set: " + "; ".join(dp))
        if not isinstance(self.discriminator_steps, int) or self.discriminator_steps < 1:
            out.append("discriminator_steps must be a positive integer")
        if (isinstance(self.generator_average, bool) or not isinstance(self.generator_average, (int, float))
                or not 0 <= self.generator_average < 1):
            out.append(f"generator_average must be a number in [0, 1), got {self.generator_average!r} "
                       "(0.99 averages about the last 100 steps; 0 turns averaging off)")
        return out

    def _check_distributed(self, runtime) -> None:
        super()._check_distributed(runtime)
        world, bs = runtime.world_size, self._batch_size
        if runtime.distributed and not self._private and (bs % world or (bs // world) % self._pac):
            raise ConfigError(f"batch_size ({bs}) must split into {world} equal per-process batches that are "
                              f"multiples of pac ({self._pac}): use a multiple of {world * self._pac}")

    # --- networks -------------------------------------------------------------------------------
    def _build(self, data_dim: int) -> None:
        self.data_dim_ = data_dim
        cond_dim = sum(s.size for s in self.transformer_.conditional_spans_)
        self.generator_ = Generator(self.embedding_dim + cond_dim, self.generator_dim, data_dim).to(self.device_)
        self.discriminator_ = Discriminator(data_dim + cond_dim, self._resolved("discriminator_dim"), self._pac).to(self.device_)
        self.cond_sampler_ = ConditionSampler(self.layout_, None)  # frequencies set in _train or load

    def _modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator_, "discriminator": self.discriminator_}

    def _extra_tensors(self) -> dict[str, torch.Tensor]:
        return {"cond_counts": self.cond_sampler_.counts} if self.cond_sampler_.counts is not None else {}

    def _load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.cond_sampler_ = ConditionSampler(self.layout_, None, tensors.get("cond_counts"))

    # --- training -------------------------------------------------------------------------------
    def _make_optimizers(self, fused: bool = True) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        fast = _FAST_ADAM if fused else {}
        opt_g = torch.optim.Adam(self.generator_.parameters(), lr=self._resolved("generator_lr"), betas=(0.5, 0.9),
                                 weight_decay=self.generator_decay, **fast)
        opt_d = torch.optim.Adam(self.discriminator_.parameters(), lr=self._resolved("discriminator_lr"), betas=(0.5, 0.9),
                                 weight_decay=self.discriminator_decay, **fast)
        return opt_g, opt_d

    def _noise(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.embedding_dim, device=self.device_, generator=gen)

    def _fake(self, cond: torch.Tensor, gen: torch.Generator | None = None, cond_index: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw generator logits and their activated rows for a batch of conditional vectors; with
        ``cond_index`` (the active position of each one-hot ``cond``), through the generator's split pass."""
        noise = self._noise(len(cond), gen)
        with self._autocast():
            if cond_index is not None or cond.shape[1] == 0:
                logits = self.generator_.forward_split(noise, cond_index)
            else:
                logits = self.generator_(torch.cat([noise, cond], dim=1))
        logits = logits.to(noise.dtype)  # activations and losses in full precision under autocast
        return logits, self.layout_.activate(logits, generator=gen)

    def _real_batch(self, data: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Real rows and their conditional vectors by training-by-sampling."""
        cs = self.cond_sampler_
        if not cs.n_groups:
            idx = torch.randint(0, len(data), (n,), device=data.device)
            return data[idx], torch.zeros(n, 0, device=data.device)
        group, slot = cs.sample_slots(n, log_frequency=self.log_frequency)
        return data.index_select(0, cs.sample_rows(group, slot)), cs.vectors(group, slot)

    def _fake_conditions(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Conditional vectors for the generator, with the asked group and slot of each row."""
        cs = self.cond_sampler_
        if not cs.n_groups:
            empty = torch.zeros(n, dtype=torch.long, device=self.device_)
            return torch.zeros(n, 0, device=self.device_), empty, empty
        group, slot = cs.sample_slots(n, log_frequency=self.log_frequency)
        return cs.vectors(group, slot), group, slot

    def _cond_index(self, group: torch.Tensor, slot: torch.Tensor) -> torch.Tensor | None:
        """Position of the one active entry of each conditional vector (None without conditional groups)."""
        cs = self.cond_sampler_
        return cs.offsets[group] + slot if cs.n_groups else None

    def _critic_loss(self, real_in: torch.Tensor, fake_in: torch.Tensor) -> torch.Tensor:
        # the shared-matmul path's hand-written backward is fp32; under autocast, ordinary ops
        if self._loss == "wgan-gp" and self._pac > 1 and not torch.is_autocast_enabled(real_in.device.type):
            return self._wgan_critic_loss(real_in, fake_in)
        # one critic pass over real and fake packs (whole packs: the batch is a multiple of pac)
        d_real, d_fake = self.discriminator_(torch.cat([real_in, fake_in])).chunk(2)
        if self._loss == "bce":
            return (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                    + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        return d_fake.mean() - d_real.mean() + self._gradient_penalty(real_in, fake_in)

    def _wgan_critic_loss(self, real_in: torch.Tensor, fake_in: torch.Tensor) -> torch.Tensor:
        """WGAN-GP critic loss, the critic's passes over real, fake and mixed packs sharing matmuls."""
        pac, dim = self._pac, real_in.shape[1]
        with torch.no_grad():
            alpha = torch.rand(real_in.shape[0] // pac, 1, 1, device=real_in.device)
            mixed = torch.lerp(fake_in.reshape(-1, pac, dim), real_in.reshape(-1, pac, dim), alpha)
        packs = torch.cat([real_in, fake_in]).reshape(-1, pac * dim)
        scores, grad = self.discriminator_.wgan_terms(packs, mixed.reshape(-1, pac * dim))
        d_real, d_fake = scores.chunk(2)
        penalty = self.gp_lambda * ((grad.norm(2, dim=1) - 1.0) ** 2).mean()
        return d_fake.mean() - d_real.mean() + penalty

    def _gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """WGAN-GP: lambda * mean over packs of (||d critic / d input|| - 1)^2 at random points between
        real and fake packs (one mixing weight per pack)."""
        pac, dim = self._pac, real.shape[1]
        with torch.no_grad():
            alpha = torch.rand(real.shape[0] // pac, 1, 1, device=real.device)
            mixed = torch.lerp(fake.reshape(-1, pac, dim), real.reshape(-1, pac, dim), alpha)
        grad = self.discriminator_.input_gradient(mixed.reshape(-1, pac * dim))
        norms = grad.norm(2, dim=1)
        return self.gp_lambda * ((norms - 1.0) ** 2).mean()

    def _generator_loss(self, fake_in: torch.Tensor) -> torch.Tensor:
        d_fake = self.discriminator_(fake_in)
        if self._loss == "bce":
            return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
        return -d_fake.mean()

    def _train(self, data: torch.Tensor) -> list[dict[str, float]]:
        self.cond_sampler_ = ConditionSampler.from_matrix(self.layout_, data)
        opt_g, opt_d = self._make_optimizers()
        average = self._weight_average()
        scaler = self._grad_scaler()
        world = self._runtime.world_size
        bs = self._batch_size // world  # the batch is global; each rank draws its share
        steps = max(self._n_global // self._batch_size, 1)

        def step(_step: int) -> dict[str, torch.Tensor]:
            self.discriminator_.requires_grad_(True)
            for _ in range(self.discriminator_steps):
                real, real_cond = self._real_batch(data, bs)
                fake_cond, group, slot = self._fake_conditions(bs)
                with torch.no_grad():
                    _, fake = self._fake(fake_cond, cond_index=self._cond_index(group, slot))
                with self._autocast():
                    loss_d = self._critic_loss(torch.cat([real, real_cond], 1),
                                               torch.cat([fake, fake_cond], 1)).to(real.dtype)
                opt_d.zero_grad(set_to_none=True)
                self._backward_step(loss_d, opt_d, self.discriminator_, scaler)
            self.discriminator_.requires_grad_(False)
            cond, group, slot = self._fake_conditions(bs)
            logits, fake = self._fake(cond, cond_index=self._cond_index(group, slot))
            with self._autocast():
                loss_g = self._generator_loss(torch.cat([fake, cond], 1)).to(fake.dtype)
            if self.cond_sampler_.n_groups:
                loss_g = loss_g + self.cond_sampler_.cond_loss(logits, group, slot)
            opt_g.zero_grad(set_to_none=True)
            self._backward_step(loss_g, opt_g, self.generator_, scaler)
            if average is not None:
                average.update()
            return {"generator_loss": loss_g.detach(), "discriminator_loss": loss_d.detach()}

        trainer = PlainTrainer(epochs=self._epochs, desc="CTGAN", verbose=self.verbose, runtime=self._runtime)
        history = trainer.run(step, repeated(steps))
        self.discriminator_.requires_grad_(True)
        if average is not None:
            average.copy_to_module()
        self._runtime.average_buffers(self.generator_)
        return history

    def _weight_average(self) -> WeightAverage | None:
        """The running average of the generator's weights that sampling will use, if any."""
        return WeightAverage(self.generator_, self.generator_average) if self.generator_average else None

    def _train_private(self, data: torch.Tensor, trainer: DPTrainer, cond_counts: list[list[float]],
                       marginals: NoisyMarginals | None) -> list[dict[str, float]]:
        """DP-SGD on the critic only (docs/privacy.md rules 7-11): Poisson-sampled real rows, each paired
        with one fake row in the same per-sample gradient; the generator is post-processing.

        The critic's step draws (real rows' conditions, their fake partners, dropout) run on a secret
        stream, so the seeded stream of the generator's own steps never depends on a batch's size;
        only the generator's and marginal losses (functions of DP outputs) are recorded."""
        width = max((len(c) for c in cond_counts), default=0)
        counts = torch.zeros(len(cond_counts), width)
        for g, c in enumerate(cond_counts):
            counts[g, : len(c)] = torch.tensor(c)
        self.cond_sampler_ = ConditionSampler(self.layout_, None, counts if cond_counts else None)
        opt_g, opt_d = self._make_optimizers(fused=False)
        average = self._weight_average()
        use_marginals = marginals is not None and self._uses_marginals()

        def step(dp: DPTrainer, real: torch.Tensor) -> dict[str, torch.Tensor]:
            with dp.isolated():
                self._private_critic_step(dp, real)
            if not dp.completes:  # a physical batch inside a larger Poisson batch
                return {}
            with dp.hooks_off():  # the generator step: no per-sample state, the critic frozen
                self.discriminator_.requires_grad_(False)
                out = self._private_generator_step(opt_g, marginals if use_marginals else None)
                if average is not None:
                    average.update()
                self.discriminator_.requires_grad_(True)
            return out

        history = trainer.run(self.discriminator_, opt_d, data, step, desc="DP-CTGAN", verbose=self.verbose,
                              mechanism="DP-SGD on the critic (Opacus, Poisson sampling, per-sample clipping)")
        if average is not None:
            average.copy_to_module()
        self._runtime.average_buffers(self.generator_)
        return history

    def _private_critic_step(self, dp: DPTrainer, real: torch.Tensor) -> None:
        """One DP critic update: each real row's condition comes from its own value in a uniformly
        chosen column, and the row is judged in one per-sample gradient with a fake partner."""
        cs, b = self.cond_sampler_, len(real)
        if cs.n_groups:
            group = torch.randint(0, cs.n_groups, (b,), device=self.device_)
            slot = self.layout_.cond_codes(real).gather(1, group[:, None]).squeeze(1) if b else group
            real_cond = cs._vectors(group, slot)[0]
            fake_cond = cs.sample(b, log_frequency=self.log_frequency)[0]
        else:
            real_cond = fake_cond = torch.zeros(b, 0, device=self.device_)
        with torch.no_grad():
            fake = self._fake(fake_cond)[1] if b else torch.zeros_like(real)
        pairs = torch.stack([torch.cat([real, real_cond], 1), torch.cat([fake, fake_cond], 1)], dim=1)
        dp.update(pair_loss(dp.module, pairs))

    def _private_generator_step(self, opt_g: torch.optim.Optimizer, marginals: NoisyMarginals | None
                                ) -> dict[str, torch.Tensor]:
        """One generator update against the (already private) critic, with the DP marginals on rows
        drawn as sample() draws them (conditions by frequency); no real row is read."""
        cs = self.cond_sampler_
        cond, group, slot = self._fake_conditions(self._local_batch)
        logits, fake = self._fake(cond)
        loss_g = self._generator_loss(torch.cat([fake, cond], 1))
        if cs.n_groups:
            loss_g = loss_g + cs.cond_loss(logits, group, slot)
        out = {}
        if marginals is not None:
            m_cond = cs.sample(self._local_batch, log_frequency=False)[0] if cs.n_groups else cond[:, :0]
            m_logits = self.generator_(torch.cat([self._noise(self._local_batch), m_cond], dim=1))
            loss_m = marginal_loss(m_logits, self.layout_, marginals)
            loss_g = loss_g + self._resolved("marginal_weight") * loss_m
            out["marginal_loss"] = loss_m.detach()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self._sync_gradients(self.generator_)
        opt_g.step()
        return {"generator_loss": loss_g.detach(), **out}

    # --- generation -----------------------------------------------------------------------------
    def _direct_conditions(self, conds: list[Requested]) -> list[Requested]:
        """The rarest condition steers the conditional vector; the generator honours it without
        rejection (the others are met by rejection)."""
        probs = self.cond_sampler_.raw_probs
        return [min(conds, key=lambda c: float(probs[c.group, c.slot]))]

    def _draws(self, n: int, condition: Condition | None, generator: torch.Generator) -> dict[str, Any]:
        cs = self.cond_sampler_
        index = None
        if cs.n_groups:
            if condition is None:
                group, slot = cs.sample_slots(n, log_frequency=False, generator=generator)
            else:
                (g, s), = condition.pairs
                group = torch.full((n,), g, dtype=torch.long, device=self.device_)
                slot = torch.full((n,), s, dtype=torch.long, device=self.device_)
            index = self._cond_index(group, slot)
        noise = self._noise(n, generator)
        return {"index": index, "noise": noise, "u": self.layout_.draw_uniforms(n, generator)}

    def _generate_block(self, draws: dict[str, Any]) -> torch.Tensor:
        self.generator_.eval()
        try:
            logits = self.generator_.forward_split(draws["noise"], draws["index"])
        finally:
            self.generator_.train()
        return self.layout_.activate(logits, hard=True, uniforms=draws["u"])
