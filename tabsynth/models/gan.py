"""CTGAN: the conditional tabular GAN of Xu et al. (NeurIPS 2019) on tabsynth's encoders.

Conditional vector over every discrete column (missing-value indicators included), training by
sampling with log-frequency, a residual generator with gumbel-softmax/tanh heads, a PacGAN critic
with WGAN-GP. The critic has no BatchNorm, its loss can switch to BCE and its real batches come
from a replaceable sampler, so the DP mode swaps those parts without a second training loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from tabsynth.models.base import BaseSynthesizer
from tabsynth.sampling.conditional import ConditionSampler

LOSSES = ("wgan-gp", "bce")
#: One fused kernel per Adam step instead of several per parameter.
_FAST_ADAM = {"fused": True}


def pair_loss(critic: nn.Module, pairs: torch.Tensor) -> torch.Tensor:
    """Per-pair BCE critic loss for ``[batch, 2, features]`` inputs (real row, its fake partner): one
    per-sample gradient covers both, so a real row's whole influence is clipped together."""
    out = critic(pairs)
    real = F.binary_cross_entropy_with_logits(out[:, 0], torch.ones_like(out[:, 0]), reduction="none")
    fake = F.binary_cross_entropy_with_logits(out[:, 1], torch.zeros_like(out[:, 1]), reduction="none")
    return (real + fake).sum(-1)


class Residual(nn.Module):
    """Linear -> BatchNorm -> ReLU, concatenated with the input (CTGAN's generator block)."""

    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.fc = nn.Linear(i, o)
        self.bn = nn.BatchNorm1d(o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class Generator(nn.Module):
    def __init__(self, in_dim: int, hidden: Sequence[int], data_dim: int) -> None:
        super().__init__()
        layers, dim = [], in_dim
        for h in hidden:
            layers.append(Residual(dim, h))
            dim += h
        layers.append(nn.Linear(dim, data_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """PacGAN critic: ``pac`` rows are judged together; LeakyReLU + Dropout, no BatchNorm."""

    def __init__(self, in_dim: int, hidden: Sequence[int], pac: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.pac = pac
        layers, dim = [], in_dim * pac
        for h in hidden:
            layers += [nn.Linear(dim, h), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            dim = h
        layers.append(nn.Linear(dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pac == 1:  # also takes [batch, pair, features] inputs (the DP critic judges pairs)
            return self.net(x)
        return self.net(x.reshape(-1, x.shape[1] * self.pac))


class CTGAN(BaseSynthesizer):
    """Conditional tabular GAN.

    Args:
        epochs: passes over the data (steps per epoch = rows / batch_size); default 300, or 10 under DP.
        batch_size: rows per step (expected Poisson batch under DP); a multiple of ``pac``; default 500,
            or 2000 under DP.
        embedding_dim: size of the generator's noise input.
        generator_dim, discriminator_dim: hidden layer sizes.
        generator_lr, generator_decay, discriminator_lr, discriminator_decay: Adam settings
            (betas 0.5, 0.9 as in the paper).
        discriminator_steps: critic updates per generator update.
        pac: rows per PacGAN pack.
        loss: ``"wgan-gp"`` (the paper) or ``"bce"`` (non-saturating GAN loss; the DP default).
        gp_lambda: weight of the gradient penalty.
        log_frequency: draw training conditions by log-frequency (helps rare categories).
        numerical: numeric encoding, ``"mode"`` (mode-specific normalisation) or ``"quantile"``.
        max_categories: widest one-hot; rarer values fold into ``other``.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        seed: makes fit and sample reproducible on the same machine and device.
        verbose: progress bar with the current losses.
        epsilon, delta: train under (epsilon, delta)-DP end to end (privacy.md); delta defaults to
            ``min(1e-5, n ** -1.5)``.
        max_grad_norm: per-sample clipping norm of DP-SGD.
        preprocessing_epsilon_share: share of epsilon (alone) for the private preprocessing release.
        secure_mode: Opacus' cryptographic noise for production releases.
        marginal_epsilon_share: under DP, the share of epsilon (alone) spent on noisy 1-way and 2-way
            marginals of the encoded discrete groups (``tabsynth.privacy.marginals``), matched by a
            generator loss term; 0 turns them off.
        marginal_weight: weight of that term in the generator loss.
    """

    _conditional_vector = True

    def __init__(self, epochs: int | None = None, batch_size: int | None = None, embedding_dim: int = 128,
                 generator_dim: Sequence[int] = (256, 256), discriminator_dim: Sequence[int] = (256, 256),
                 generator_lr: float = 2e-4, generator_decay: float = 1e-6, discriminator_lr: float = 2e-4,
                 discriminator_decay: float = 1e-6, discriminator_steps: int = 1, pac: int | None = None,
                 loss: str | None = None, gp_lambda: float = 10.0, log_frequency: bool = True,
                 numerical: str = "mode", max_categories: int = 500, device: str = "auto",
                 seed: int | None = None, verbose: bool = True, epsilon: float | None = None,
                 delta: float | None = None, max_grad_norm: float = 1.0, preprocessing_epsilon_share: float = 0.2,
                 secure_mode: bool = False, marginal_epsilon_share: float = 0.3,
                 marginal_weight: float = 1.0) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.embedding_dim = embedding_dim
        self.generator_dim = tuple(generator_dim)
        self.discriminator_dim = tuple(discriminator_dim)
        self.generator_lr = generator_lr
        self.generator_decay = generator_decay
        self.discriminator_lr = discriminator_lr
        self.discriminator_decay = discriminator_decay
        self.discriminator_steps = discriminator_steps
        self.pac = pac
        self.loss = loss
        self.gp_lambda = gp_lambda
        self.log_frequency = log_frequency
        self.numerical = numerical
        self.max_categories = max_categories
        self.device = device
        self.seed = seed
        self.verbose = verbose
        self.epsilon = epsilon
        self.delta = delta
        self.max_grad_norm = max_grad_norm
        self.preprocessing_epsilon_share = preprocessing_epsilon_share
        self.secure_mode = secure_mode
        self.marginal_epsilon_share = marginal_epsilon_share
        self.marginal_weight = marginal_weight

    @property
    def _pac(self) -> int:
        """PacGAN pack size: 10 (the paper), 1 under DP (privacy.md rule 10)."""
        return self.pac if self.pac is not None else (1 if self.epsilon is not None else 10)

    @property
    def _loss(self) -> str:
        """WGAN-GP (the paper), non-saturating BCE under DP (privacy.md rule 11)."""
        return self.loss if self.loss is not None else ("bce" if self.epsilon is not None else "wgan-gp")

    def _check_params(self) -> list[str]:
        out = []
        if not isinstance(self._pac, int) or self._pac < 1:
            out.append(f"pac must be a positive integer, got {self.pac!r}")
        elif isinstance(self._batch_size, int) and self.epsilon is None and self._batch_size % self._pac:
            out.append(f"batch_size ({self._batch_size}) must be a multiple of pac ({self._pac})")
        if self._loss not in LOSSES:
            out.append(f"loss={self.loss!r}: choose one of {', '.join(LOSSES)}")
        if self.epsilon is not None:
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
        return out

    # --- networks -------------------------------------------------------------------------------
    def _build(self, data_dim: int) -> None:
        self.data_dim_ = data_dim
        cond_dim = sum(s.size for s in self.transformer_.conditional_spans_)
        self.generator_ = Generator(self.embedding_dim + cond_dim, self.generator_dim, data_dim).to(self.device_)
        self.discriminator_ = Discriminator(data_dim + cond_dim, self.discriminator_dim, self._pac).to(self.device_)
        self.cond_sampler_ = ConditionSampler(self.layout_, None)  # frequencies set in _train or load

    def _modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator_, "discriminator": self.discriminator_}

    def _extra_tensors(self) -> dict[str, torch.Tensor]:
        return {"cond_counts": self.cond_sampler_.counts} if self.cond_sampler_.counts is not None else {}

    def _load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.cond_sampler_ = ConditionSampler(self.layout_, None, tensors.get("cond_counts"))

    def _state_json(self) -> dict:
        return {}

    def _load_state_json(self, state: dict) -> None:
        pass

    # --- training -------------------------------------------------------------------------------
    def _make_optimizers(self, fused: bool = True) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        fast = _FAST_ADAM if fused else {}
        opt_g = torch.optim.Adam(self.generator_.parameters(), lr=self.generator_lr, betas=(0.5, 0.9),
                                 weight_decay=self.generator_decay, **fast)
        opt_d = torch.optim.Adam(self.discriminator_.parameters(), lr=self.discriminator_lr, betas=(0.5, 0.9),
                                 weight_decay=self.discriminator_decay, **fast)
        return opt_g, opt_d

    def _noise(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.embedding_dim, device=self.device_, generator=gen)

    def _fake(self, cond: torch.Tensor, gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw generator logits and their activated rows for a batch of conditional vectors."""
        logits = self.generator_(torch.cat([self._noise(len(cond), gen), cond], dim=1))
        return logits, self.layout_.activate(logits, generator=gen)

    def _real_batch(self, data: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Real rows and their conditional vectors by training-by-sampling."""
        cs = self.cond_sampler_
        if not cs.n_groups:
            idx = torch.randint(0, len(data), (n,), device=data.device)
            return data[idx], torch.zeros(n, 0, device=data.device)
        cond, _, group, slot = cs.sample(n, log_frequency=self.log_frequency)
        return data[cs.sample_rows(group, slot)], cond

    def _fake_conditions(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Conditional vectors for the generator, with the asked group and slot of each row."""
        cs = self.cond_sampler_
        if not cs.n_groups:
            empty = torch.zeros(n, dtype=torch.long, device=self.device_)
            return torch.zeros(n, 0, device=self.device_), empty, empty
        cond, _, group, slot = cs.sample(n, log_frequency=self.log_frequency)
        return cond, group, slot

    def _critic_loss(self, real_in: torch.Tensor, fake_in: torch.Tensor) -> torch.Tensor:
        d_real = self.discriminator_(real_in)
        d_fake = self.discriminator_(fake_in)
        if self._loss == "bce":
            return (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                    + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        return d_fake.mean() - d_real.mean() + self._gradient_penalty(real_in, fake_in)

    def _gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        pac, dim = self._pac, real.shape[1]
        alpha = torch.rand(real.shape[0] // pac, 1, 1, device=real.device).expand(-1, pac, dim).reshape(-1, dim)
        mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        out = self.discriminator_(mixed)
        grad = torch.autograd.grad(out.sum(), mixed, create_graph=True)[0]
        norms = grad.reshape(-1, pac * dim).norm(2, dim=1)
        return self.gp_lambda * ((norms - 1.0) ** 2).mean()

    def _generator_loss(self, fake_in: torch.Tensor) -> torch.Tensor:
        d_fake = self.discriminator_(fake_in)
        if self._loss == "bce":
            return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
        return -d_fake.mean()

    def _train(self, data: torch.Tensor) -> list[dict[str, float]]:
        self.cond_sampler_ = ConditionSampler.from_matrix(self.layout_, data)
        opt_g, opt_d = self._make_optimizers()
        n, bs = len(data), self._batch_size
        steps = max(n // bs, 1)
        history = []
        bar = tqdm(range(self._epochs), desc="CTGAN", disable=not self.verbose, unit="epoch")
        for epoch in bar:
            g_sum = torch.zeros((), device=self.device_)
            d_sum = torch.zeros((), device=self.device_)
            for _ in range(steps):
                self.discriminator_.requires_grad_(True)
                for _ in range(self.discriminator_steps):
                    real, real_cond = self._real_batch(data, bs)
                    fake_cond, _, _ = self._fake_conditions(bs)
                    with torch.no_grad():
                        _, fake = self._fake(fake_cond)
                    loss_d = self._critic_loss(torch.cat([real, real_cond], 1), torch.cat([fake, fake_cond], 1))
                    opt_d.zero_grad(set_to_none=True)
                    loss_d.backward()
                    opt_d.step()
                self.discriminator_.requires_grad_(False)
                cond, group, slot = self._fake_conditions(bs)
                logits, fake = self._fake(cond)
                loss_g = self._generator_loss(torch.cat([fake, cond], 1))
                if self.cond_sampler_.n_groups:
                    loss_g = loss_g + self.cond_sampler_.cond_loss(logits, group, slot)
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                g_sum += loss_g.detach()
                d_sum += loss_d.detach()
            record = {"epoch": epoch, "generator_loss": float(g_sum) / steps,
                      "discriminator_loss": float(d_sum) / steps}
            history.append(record)
            bar.set_postfix(g=f"{record['generator_loss']:.3f}", d=f"{record['discriminator_loss']:.3f}")
        self.discriminator_.requires_grad_(True)
        return history

    def _train_private(self, data: torch.Tensor, accountant, cond_counts, *, sigma: float, q: float, steps: int,
                       batch_size: int) -> list[dict[str, float]]:
        """DP-SGD on the critic only (privacy.md rules 7-11): Poisson-sampled real rows, each paired with
        one fake row in the same per-sample gradient; the generator is post-processing."""
        width = max((len(c) for c in cond_counts), default=0)
        counts = torch.zeros(len(cond_counts), width)
        for g, c in enumerate(cond_counts):
            counts[g, : len(c)] = torch.tensor(c)
        self.cond_sampler_ = ConditionSampler(self.layout_, None, counts if cond_counts else None)
        cs = self.cond_sampler_
        opt_g, opt_d = self._make_optimizers(fused=False)
        from tabsynth.privacy.marginals import marginal_loss

        marginals = getattr(self, "_dp_marginals", None)
        use_marginals = marginals is not None and self.marginal_weight > 0

        def step(critic, opt_d, real):
            b = len(real)
            # each real row's condition comes from its own value in a uniformly chosen column
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
            loss_d = pair_loss(critic, pairs).sum() / max(b, 1)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            # generator step: the critic's hooks are off and its weights frozen, no per-sample state left
            critic.disable_hooks()
            self.discriminator_.requires_grad_(False)
            cond, group, slot = self._fake_conditions(batch_size)
            logits, fake = self._fake(cond)
            loss_g = self._generator_loss(torch.cat([fake, cond], 1))
            if cs.n_groups:
                loss_g = loss_g + cs.cond_loss(logits, group, slot)
            out = {"discriminator_loss": loss_d.detach()}
            if use_marginals:
                # DP marginals on rows drawn as sample() draws them (conditions by frequency, not log-frequency)
                m_cond = cs.sample(batch_size, log_frequency=False)[0] if cs.n_groups else cond[:, :0]
                m_logits = self.generator_(torch.cat([self._noise(batch_size), m_cond], dim=1))
                loss_m = marginal_loss(m_logits, self.layout_, marginals)
                loss_g = loss_g + self.marginal_weight * loss_m
                out["marginal_loss"] = loss_m.detach()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            self.discriminator_.requires_grad_(True)
            critic.enable_hooks()
            return {"generator_loss": loss_g.detach(), **out}

        return self._run_private(self.discriminator_, opt_d, data, step=step, accountant=accountant, sigma=sigma,
                                 q=q, steps=steps, batch_size=batch_size, desc="DP-CTGAN",
                                 mechanism="DP-SGD on the critic (Opacus, Poisson sampling, per-sample clipping)")

    # --- generation -----------------------------------------------------------------------------
    def _generate(self, n: int, condition: tuple[int, int] | None, generator: torch.Generator) -> torch.Tensor:
        cs = self.cond_sampler_
        self.generator_.eval()
        try:
            if not cs.n_groups:
                cond = torch.zeros(n, 0, device=self.device_)
            elif condition is None:
                cond = cs.sample(n, log_frequency=False, generator=generator)[0]
            else:
                cond = cs.fixed(n, *condition)[0]
            logits = self.generator_(torch.cat([self._noise(n, generator), cond], dim=1))
            return self.layout_.activate(logits, hard=True, generator=generator)
        finally:
            self.generator_.train()
