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
from tqdm.auto import tqdm

from tabsynth.errors import ConfigError
from tabsynth.models.averaging import WeightAverage
from tabsynth.models.base import BaseSynthesizer
from tabsynth.models.registry import register
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


class _SharedFirstLayer(torch.autograd.Function):
    """The critic's first layer used twice in a WGAN-GP step: ``h = x @ W.T + b`` for the real and fake
    packs (``h`` computed beforehand, without a graph, together with the mixed packs' pass) and
    ``gx = s @ W``, the input gradient at the mixed packs. Its backward gives ``W`` both contributions
    in one matmul, ``[dh; s].T @ [x; dgx]``, instead of two thin ones."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, s: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.save_for_backward(x, s, weight)
        return h.clone(), s @ weight

    @staticmethod
    def backward(ctx, dh: torch.Tensor, dgx: torch.Tensor):
        x, s, weight = ctx.saved_tensors
        if dh is None:
            dh = torch.zeros(len(x), weight.shape[0], dtype=x.dtype, device=x.device)
        if dgx is None:
            dgx = torch.zeros(len(s), weight.shape[1], dtype=x.dtype, device=x.device)
        dw = torch.cat([dh, s]).t() @ torch.cat([x, dgx])
        return None, dgx @ weight.t(), dw, dh.sum(0), None


#: Row length (elements) the generator's stacked inference outputs are padded to.
_ROW_ALIGN = 16
#: Mask bits taken from each random draw at dropout 0.5.
_MASK_BITS = 16


def dropout_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted-dropout mask shaped like ``like``: 0 with probability ``p``, else ``1 / (1 - p)``.

    At ``p = 0.5`` (the critic's) every random 16-bit integer gives 16 mask bits: on CPU, torch's
    ``bernoulli_`` draws one random number per element and took ~5% of a CTGAN epoch."""
    if p >= 1.0:
        return torch.zeros_like(like)
    if p == 0.5:
        n = like.numel()
        words = torch.randint(0, 1 << _MASK_BITS, (-(-n // _MASK_BITS), 1), dtype=torch.int32, device=like.device)
        shifts = torch.arange(_MASK_BITS, dtype=torch.int32, device=like.device)
        bits = words.bitwise_right_shift(shifts).bitwise_and_(1)
        return bits.view(-1)[:n].view(like.shape).to(like.dtype).mul_(2.0)
    keep = torch.rand(like.shape, dtype=like.dtype, device=like.device) >= p
    return keep.to(like.dtype).div_(1.0 - p)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with masks from :func:`dropout_mask` (same distribution, cheaper draws)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * dropout_mask(x, self.p)


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

    def forward_split(self, noise: torch.Tensor, cond_index: torch.Tensor | None) -> torch.Tensor:
        """``forward(cat([noise, one_hot(cond_index)]))`` without building that input.

        Every layer sees ``[h_k, ..., h_0, noise, cond]``; each piece gets its own matmul on a column
        block of the weight, so the residual concatenations are never copied, no gradient is computed
        for the noise or the condition, and the one-hot condition is a column gather, not a matmul.
        ``cond_index`` holds the one active position of each row's conditional vector (None: no
        conditional vector)."""
        if not torch.is_grad_enabled():
            return self._infer(noise, cond_index)
        hs: list[torch.Tensor] = []
        out = noise
        for mod in self.net:
            fc = mod.fc if isinstance(mod, Residual) else mod
            w = fc.weight
            col = sum(h.shape[1] for h in hs)
            pre = F.linear(noise, w[:, col:col + noise.shape[1]], fc.bias)
            if cond_index is not None:
                pre = pre + F.embedding(cond_index, w[:, col + noise.shape[1]:].t().contiguous())
            col = 0
            for h in reversed(hs):  # the newest block comes first in the residual concatenation
                pre = torch.addmm(pre, h, w[:, col:col + h.shape[1]].t())
                col += h.shape[1]
            if isinstance(mod, Residual):
                hs.append(F.relu(mod.bn(pre)))
            else:
                out = pre
        return out

    def _pass_weights(self, noise_dim: int, fold: bool) -> dict:
        """Weights for :meth:`_infer`: the noise and condition columns of every layer stacked together;
        with ``fold`` (eval mode), BatchNorm's running affine map folded into each residual layer and the
        result cached until a parameter or buffer changes (optimiser steps and loads bump the tensors'
        versions or replace them)."""
        key = (noise_dim, tuple((t.data_ptr(), t._version) for t in (*self.parameters(), *self.buffers())))
        cached = self.__dict__.get("_infer_cache")
        if fold and cached is not None and cached["key"] == key:
            return cached
        ws, bs, hidden = [], [], []
        for mod in self.net:
            fc = mod.fc if isinstance(mod, Residual) else mod
            w, b = fc.weight.detach(), fc.bias.detach()
            if isinstance(mod, Residual):
                if fold:
                    bn = mod.bn
                    scale = bn.weight.detach() * torch.rsqrt(bn.running_var + bn.eps)
                    w, b = w * scale[:, None], (b - bn.running_mean) * scale + bn.bias.detach()
                hidden.append(w.shape[0])
            ws.append(w)
            bs.append(b)
        h_cols = [sum(hidden[:i]) for i in range(len(ws))]  # layer i sees [h_{i-1}, ..., h_0, noise, cond]
        # the stacked outputs padded with zero rows to a multiple of 16 columns: with an odd row
        # length (678 for Adult) the matrix products into that buffer took 60% longer on CPU
        pad = -sum(w.shape[0] for w in ws) % _ROW_ALIGN
        noise_w = torch.cat([w[:, c:c + noise_dim] for w, c in zip(ws, h_cols)])
        bias = torch.cat(bs)
        cond_w = torch.cat([w[:, c + noise_dim:] for w, c in zip(ws, h_cols)])
        cached = {
            "key": key, "hidden": hidden, "out_dims": [w.shape[0] for w in ws],
            "noise_w": F.pad(noise_w, (0, 0, 0, pad)).contiguous(),
            "bias": F.pad(bias, (0, pad)),
            "cond_w_bias": F.pad(cond_w.t() + bias, (0, pad)).contiguous(),
            "h_w": [w[:, :c].contiguous() for w, c in zip(ws, h_cols)],
        }
        if fold:
            self.__dict__["_infer_cache"] = cached
        return cached

    def _infer(self, noise: torch.Tensor, cond_index: torch.Tensor | None) -> torch.Tensor:
        """:meth:`forward_split` without autograd: one matmul for the noise part of all layers, the
        residual outputs written side by side into one buffer. In training mode BatchNorm runs as a
        module (batch statistics, running averages updated), in eval mode it is folded into the weights."""
        fold = not self.training
        p = self._pass_weights(noise.shape[1], fold)
        norms = [m.bn for m in self.net if isinstance(m, Residual)]
        # each row has exactly one active condition entry, so the biases ride on the gathered rows
        if cond_index is None:
            pre_all = torch.addmm(p["bias"], noise, p["noise_w"].t())
        else:
            pre_all = F.embedding(cond_index, p["cond_w_bias"]).addmm_(noise, p["noise_w"].t())
        hidden = p["hidden"]
        # buffer columns [h_{L-1}, ..., h_1, h_0]: layer i's residual input is the tail from h_{i-1} on
        pos = [sum(hidden[i + 1:]) for i in range(len(hidden))]
        buf = torch.empty(len(noise), sum(hidden), dtype=noise.dtype, device=noise.device)
        col = 0
        for i, (h, w) in enumerate(zip(hidden, p["h_w"])):
            pre = pre_all[:, col:col + h]
            if i:  # accumulated in place: the gemm writes into the column block, no copy of it
                pre.addmm_(buf[:, pos[i - 1]:], w.t())
            torch.clamp(pre if fold else norms[i](pre), min=0, out=buf[:, pos[i]:pos[i] + h])
            col += h
        out = pre_all[:, col:col + p["out_dims"][-1]]
        return out.addmm_(buf, p["h_w"][-1].t()) if hidden else out


class Discriminator(nn.Module):
    """PacGAN critic: ``pac`` rows are judged together; LeakyReLU + Dropout, no BatchNorm."""

    def __init__(self, in_dim: int, hidden: Sequence[int], pac: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.pac = pac
        layers, dim = [], in_dim * pac
        for h in hidden:
            layers += [nn.Linear(dim, h), nn.LeakyReLU(0.2), Dropout(dropout)]
            dim = h
        layers.append(nn.Linear(dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pac == 1:  # also takes [batch, pair, features] inputs (the DP critic judges pairs)
            return self.net(x)
        return self.net(x.reshape(-1, x.shape[1] * self.pac))

    def wgan_terms(self, packs: torch.Tensor, mixed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Critic scores of ``packs`` (``[n, pac * features]``) and the input gradient at ``mixed``
        packs (as :meth:`input_gradient`), with one first-layer matmul for both sets of packs and one
        for the first layer's weight gradient."""
        mods = list(self.net)
        blocks = [mods[i:i + 3] for i in range(0, len(mods) - 1, 3)]
        if not blocks:
            return self.net(packs), mods[-1].weight.expand(len(mixed), -1)
        first = blocks[0][0]
        scales = []
        with torch.no_grad():
            pre_all = torch.addmm(first.bias, torch.cat([packs, mixed]), first.weight.t())
            pre = pre_all[len(packs):]
            for i, (fc, act, drop) in enumerate(blocks):
                if i:
                    pre = F.linear(h, fc.weight, fc.bias)
                h = F.leaky_relu(pre, act.negative_slope)
                scale = torch.where(pre > 0, 1.0, act.negative_slope)
                if self.training and drop.p > 0:
                    mask = dropout_mask(pre, drop.p)
                    h.mul_(mask)
                    scale.mul_(mask)
                scales.append(scale)
        s = mods[-1].weight
        for (fc, _, _), scale in zip(reversed(blocks[1:]), reversed(scales[1:])):
            s = (s * scale) @ fc.weight
        s = s * scales[0]
        h, grad = _SharedFirstLayer.apply(packs, s, first.weight, first.bias, pre_all[:len(packs)])
        _, act, drop = blocks[0]
        out = drop(act(h))
        for fc, act, drop in blocks[1:]:
            out = drop(act(fc(out)))
        return mods[-1](out), grad

    def input_gradient(self, packs: torch.Tensor) -> torch.Tensor:
        """d(critic output)/d(input) for packed rows ``[n_packs, pac * features]``, with one fresh
        dropout draw, as a graph in the weights only.

        The value ``autograd.grad(critic(x).sum(), x, create_graph=True)`` gives, but the forward pass
        that fixes the LeakyReLU slopes and dropout masks runs without a graph, so backpropagating a
        penalty on it is one ordinary backward pass (the activations' second derivative is zero)."""
        mods = list(self.net)
        blocks = [mods[i:i + 3] for i in range(0, len(mods) - 1, 3)]
        scales = []
        with torch.no_grad():
            h = packs
            for fc, act, drop in blocks:
                pre = F.linear(h, fc.weight, fc.bias)
                h = F.leaky_relu(pre, act.negative_slope)
                # slope 1 where pre > 0, else negative_slope (as torch's leaky_relu backward)
                scale = torch.where(pre > 0, 1.0, act.negative_slope)
                if self.training and drop.p > 0:
                    mask = dropout_mask(pre, drop.p)
                    h.mul_(mask)
                    scale.mul_(mask)
                scales.append(scale)
        grad = mods[-1].weight
        for (fc, _, _), scale in zip(reversed(blocks), reversed(scales)):
            grad = (grad * scale) @ fc.weight
        return grad


@register("CTGAN")
class CTGAN(BaseSynthesizer):
    """Conditional tabular GAN.

    Args:
        epochs: passes over the data (steps per epoch = rows / batch_size); default 300, or 10 under DP.
        batch_size: rows per step (expected Poisson batch under DP); a multiple of ``pac``; default 500
            (under DP too).
        embedding_dim: size of the generator's noise input.
        generator_dim, discriminator_dim: hidden layer sizes.
        generator_lr, generator_decay, discriminator_lr, discriminator_decay: Adam settings
            (betas 0.5, 0.9 as in the paper); the learning rates default to 2e-4, or 2e-3 under DP.
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
        epsilon, delta: train with differential privacy at this budget (the whole pipeline: private
            preprocessing and DP-SGD on the critic); delta defaults to ``min(1e-5, n ** -1.5)``.
        max_grad_norm: per-sample clipping norm of DP-SGD.
        preprocessing_epsilon_share: part of the budget for the private encoder statistics.
        secure_mode: draw every DP noise value and Poisson batch from the OS cryptographic RNG
            (slower; the default already takes fresh OS entropy at every fit).
        max_physical_batch_size: under DP, split each Poisson batch into physical batches of at most
            this many rows (Opacus' BatchMemoryManager), so large logical batches fit in memory.
        precision: ``"fp32"``, or mixed precision without DP: ``"bf16"`` (autocast; CPU or GPU) or
            ``"fp16"`` (autocast with gradient scaling; CUDA only). Losses stay in fp32.
        grad_sample_mode: under DP, ``"ghost"`` (the default: Opacus' fast gradient clipping, per-sample
            gradient norms without materialising per-sample gradients; about 5-10x faster on CPU for
            these MLPs) or ``"hooks"`` (per-sample gradients, Opacus' classic mode). The clipped step
            is the same.
        marginal_epsilon_share: under DP, the share of epsilon (alone) spent on noisy 1-way and 2-way
            marginals of the encoded discrete groups (``tabsynth.privacy.marginals``), matched by a
            generator loss term; 0 turns them off.
        marginal_weight: weight of that term in the generator loss; default 1, or 5 under DP.
        generator_average: decay of the exponential moving average of the generator's weights that
            sampling uses (``tabsynth.models.averaging``; 0.99 averages about the last 100 steps); 0
            samples from the last step's weights, as the paper does. On Adult at 300 epochs it lifts
            quality from 0.92 to 0.95 with TSTR unchanged. Under DP it is post-processing.

    Under DP the critic is smaller (64, 64), both learning rates are 2e-3 and the expected Poisson batch
    stays at 500 rows (TVAE's DP default is 2000) unless given: few noisy critic steps need a small
    critic and larger steps, and the generator needs many of them (Adult, epsilon 1, quality / TSTR
    AUC: 0.78 / 0.40 with the paper's settings; 0.84 / 0.87 with these at batch 2000, 0.88 / 0.88 at
    batch 500; benchmarks/results/dp_quality.md).
    """

    _conditional_vector = True
    #: (paper / non-DP, DP) defaults of the parameters left as None (DP ones tuned on public Adult).
    _DEFAULTS = {**BaseSynthesizer._DEFAULTS, "discriminator_dim": ((256, 256), (64, 64)),
                 "generator_lr": (2e-4, 2e-3), "discriminator_lr": (2e-4, 2e-3), "marginal_weight": (1.0, 5.0),
                 "batch_size": (500, 500)}

    def __init__(self, epochs: int | None = None, batch_size: int | None = None, embedding_dim: int = 128,
                 generator_dim: Sequence[int] = (256, 256), discriminator_dim: Sequence[int] | None = None,
                 generator_lr: float | None = None, generator_decay: float = 1e-6, discriminator_lr: float | None = None,
                 discriminator_decay: float = 1e-6, discriminator_steps: int = 1, pac: int | None = None,
                 loss: str | None = None, gp_lambda: float = 10.0, log_frequency: bool = True,
                 numerical: str = "mode", max_categories: int = 500, device: str = "auto",
                 seed: int | None = None, verbose: bool = True, epsilon: float | None = None,
                 delta: float | None = None, max_grad_norm: float = 1.0, preprocessing_epsilon_share: float = 0.2,
                 secure_mode: bool = False, max_physical_batch_size: int | None = None,
                 grad_sample_mode: str = "ghost", precision: str = "fp32", marginal_epsilon_share: float = 0.3,
                 marginal_weight: float | None = None, generator_average: float = 0.99) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.embedding_dim = embedding_dim
        self.generator_dim = tuple(generator_dim)
        self.discriminator_dim = tuple(discriminator_dim) if discriminator_dim is not None else None
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
        self.max_physical_batch_size = max_physical_batch_size
        self.grad_sample_mode = grad_sample_mode
        self.precision = precision
        self.marginal_epsilon_share = marginal_epsilon_share
        self.marginal_weight = marginal_weight
        self.generator_average = generator_average

    @property
    def _pac(self) -> int:
        """PacGAN pack size: 10 (the paper), 1 under DP (docs/privacy.md rule 10)."""
        return self.pac if self.pac is not None else (1 if self.epsilon is not None else 10)

    @property
    def _loss(self) -> str:
        """WGAN-GP (the paper), non-saturating BCE under DP (docs/privacy.md rule 11)."""
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
        if (isinstance(self.generator_average, bool) or not isinstance(self.generator_average, (int, float))
                or not 0 <= self.generator_average < 1):
            out.append(f"generator_average must be a number in [0, 1), got {self.generator_average!r} "
                       "(0.99 averages about the last 100 steps; 0 turns averaging off)")
        return out

    def _check_distributed(self, runtime) -> None:
        super()._check_distributed(runtime)
        world, bs = runtime.world_size, self._batch_size
        if runtime.distributed and self.epsilon is None and (bs % world or (bs // world) % self._pac):
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

    def _state_json(self) -> dict:
        return {}

    def _load_state_json(self, state: dict) -> None:
        pass

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
        history = []
        bar = tqdm(range(self._epochs), desc="CTGAN", disable=not self.verbose or not self._runtime.is_main, unit="epoch")
        for epoch in bar:
            g_sum = torch.zeros((), device=self.device_)
            d_sum = torch.zeros((), device=self.device_)
            for _ in range(steps):
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
                g_sum += loss_g.detach()
                d_sum += loss_d.detach()
            record = {"epoch": epoch, "generator_loss": float(g_sum) / steps,
                      "discriminator_loss": float(d_sum) / steps}
            history.append(record)
            bar.set_postfix(g=f"{record['generator_loss']:.3f}", d=f"{record['discriminator_loss']:.3f}")
        self.discriminator_.requires_grad_(True)
        if average is not None:
            average.copy_to_module()
        self._runtime.average_buffers(self.generator_)
        return history

    def _weight_average(self) -> WeightAverage | None:
        """The running average of the generator's weights that sampling will use, if any."""
        return WeightAverage(self.generator_, self.generator_average) if self.generator_average else None

    def _train_private(self, data: torch.Tensor, accountant, cond_counts, *, sigma: float, q: float, steps: int,
                       batch_size: int, randomness) -> list[dict[str, float]]:
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
        cs = self.cond_sampler_
        opt_g, opt_d = self._make_optimizers(fused=False)
        average = self._weight_average()
        from tabsynth.privacy.marginals import marginal_loss

        marginals = getattr(self, "_dp_marginals", None)
        use_marginals = marginals is not None and self._resolved("marginal_weight") > 0

        def critic_step(dp, real):
            critic, opt_d = dp.module, dp.optimizer
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
            loss_d = dp.loss(pair_loss(critic, pairs))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

        def step(dp, real):
            critic, opt_d = dp.module, dp.optimizer
            with randomness.isolated(self.device_):
                critic_step(dp, real)
            if opt_d._is_last_step_skipped:  # a physical batch inside a larger Poisson batch
                return {}
            # generator step: the critic's hooks are off and its weights frozen, no per-sample state left
            critic.disable_hooks()
            self.discriminator_.requires_grad_(False)
            cond, group, slot = self._fake_conditions(self._local_batch)
            logits, fake = self._fake(cond)
            loss_g = self._generator_loss(torch.cat([fake, cond], 1))
            if cs.n_groups:
                loss_g = loss_g + cs.cond_loss(logits, group, slot)
            out = {}
            if use_marginals:
                # DP marginals on rows drawn as sample() draws them (conditions by frequency, not log-frequency)
                m_cond = cs.sample(self._local_batch, log_frequency=False)[0] if cs.n_groups else cond[:, :0]
                m_logits = self.generator_(torch.cat([self._noise(self._local_batch), m_cond], dim=1))
                loss_m = marginal_loss(m_logits, self.layout_, marginals)
                loss_g = loss_g + self._resolved("marginal_weight") * loss_m
                out["marginal_loss"] = loss_m.detach()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self._sync_gradients(self.generator_)
            opt_g.step()
            if average is not None:
                average.update()
            self.discriminator_.requires_grad_(True)
            critic.enable_hooks()
            return {"generator_loss": loss_g.detach(), **out}

        history = self._run_private(self.discriminator_, opt_d, data, step=step, accountant=accountant,
                                    sigma=sigma, q=q, steps=steps, batch_size=batch_size, randomness=randomness,
                                    desc="DP-CTGAN",
                                    mechanism="DP-SGD on the critic (Opacus, Poisson sampling, per-sample clipping)")
        if average is not None:
            average.copy_to_module()
        self._runtime.average_buffers(self.generator_)
        return history

    # --- generation -----------------------------------------------------------------------------
    def _draws(self, n: int, condition: tuple[int, int] | None, generator: torch.Generator) -> dict[str, Any]:
        cs = self.cond_sampler_
        index = None
        if cs.n_groups:
            if condition is None:
                group, slot = cs.sample_slots(n, log_frequency=False, generator=generator)
            else:
                group = torch.full((n,), condition[0], dtype=torch.long, device=self.device_)
                slot = torch.full((n,), condition[1], dtype=torch.long, device=self.device_)
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
