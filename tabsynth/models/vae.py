"""TVAE: the tabular variational autoencoder of Xu et al. (NeurIPS 2019).

Encoder and decoder MLPs; per-span losses (cross-entropy for one-hot groups, Gaussian with a
learned sigma for scalars) and a KL term, all computed per row in one padded pass. The whole
model, sigma included, is one module whose forward returns per-row losses, so the DP mode can
wrap it in Opacus as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from tabsynth.models.base import BaseSynthesizer
from tabsynth.models.registry import register
from tabsynth.models.layout import SpanLayout


def _mlp(i: int, hidden: Sequence[int]) -> tuple[nn.Sequential, int]:
    layers, dim = [], i
    for h in hidden:
        layers += [nn.Linear(dim, h), nn.ReLU()]
        dim = h
    return nn.Sequential(*layers), dim


class Sigma(nn.Module):
    """The learned per-scalar sigma as a layer, so Opacus computes its per-sample gradients too."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.sigma = nn.Parameter(torch.ones(n) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sigma.expand(x.shape[0], -1)


#: In the loss, logits more than this far below their group's largest are raised to it before the
#: exp: exp() of anything below about -87 (the -inf padding included) takes a slow path on CPU, and
#: trained decoders' logits spread that far (12% of a TVAE epoch). exp(-80) = 1.8e-35 changes no fp32
#: sum, so values and gradients stay those of the exact softmax.
EXP_FLOOR = -80.0


def _reconstruction(recon: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor, lay: SpanLayout
                    ) -> tuple[torch.Tensor, tuple]:
    """Per-row reconstruction loss of TVAE (Gaussian with learned sigma on tanh scalars, cross-entropy
    on one-hot groups), and what :func:`_reconstruction_grads` needs."""
    rec = torch.zeros(len(x), device=x.device, dtype=x.dtype)
    diff = t = None
    if len(lay.cont_idx):
        t = torch.tanh(recon.index_select(1, lay.cont_idx))
        diff = x.index_select(1, lay.cont_idx) - t
        rec += diff.square().mv(0.5 / sigma.square()) + torch.log(sigma).sum()
    probs = None
    if lay.buckets:
        probs, groups = lay.grouped(recon)  # turned into the softmax in place, bucket by bucket
        for g in groups:  # one exp per slot gives both the softmax and the log-sum-exp
            top = g.amax(-1, keepdim=True)
            e = g.sub_(top).clamp_(min=EXP_FLOOR).exp_()
            total = e.sum(-1, keepdim=True)
            rec += (top + total.log()).sum((1, 2))
            e.div_(total)
        rec -= torch.mv(x * recon, lay.disc_weight)
    return rec, (x, sigma, t, diff, probs)


def _reconstruction_grads(saved: tuple, grad: torch.Tensor, lay: SpanLayout
                          ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradients of ``sum(grad * rec)`` with respect to the decoder output and sigma."""
    x, sigma, t, diff, probs = saved
    g = grad.unsqueeze(1)
    if probs is not None:  # softmax minus the one-hot target on discrete slots
        grad_recon = (probs.index_select(1, lay.unpad) - x).mul_(lay.disc_weight).mul_(g)
    else:
        grad_recon = torch.zeros_like(x)
    grad_sigma = None
    if t is not None:
        inv = 1.0 / sigma.square()
        grad_recon.index_copy_(1, lay.cont_idx, (diff * inv).mul_(1 - t * t).mul_(-g))
        grad_sigma = (g * (1.0 / sigma - diff.square() * (inv / sigma))).sum(0)
    return grad_recon, grad_sigma


class _Reconstruction(torch.autograd.Function):
    """:func:`_reconstruction` with a hand-written backward: the same values and gradients as the
    autograd graph of :meth:`VAENet.forward`, in a few flat ops."""

    @staticmethod
    def forward(ctx, recon: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor, lay: SpanLayout) -> torch.Tensor:
        rec, saved = _reconstruction(recon, x, sigma, lay)
        ctx.save_for_backward(*saved)
        ctx.lay = lay
        return rec

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad_recon, grad_sigma = _reconstruction_grads(ctx.saved_tensors, grad, ctx.lay)
        return grad_recon, None, grad_sigma, None


def _reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """``z = mu + eps * exp(logvar / 2)`` and each row's KL divergence from the standard normal,
    ``-0.5 * sum(1 + logvar - mu^2 - exp(logvar))``, and what :func:`_reparameterize_grads` needs."""
    std = (0.5 * logvar).exp_()
    z = torch.addcmul(mu, eps, std)
    kl = torch.addcmul(std * std - logvar, mu, mu).sum(1).sub_(mu.shape[1]).mul_(0.5)
    return z, kl, (mu, eps, std)


def _reparameterize_grads(saved: tuple, grad_z: torch.Tensor | None, grad_kl: torch.Tensor | None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients with respect to ``mu`` and ``logvar`` of ``sum(grad_z * z) + sum(grad_kl * kl)``."""
    mu, eps, std = saved
    grad_mu = torch.zeros_like(mu) if grad_z is None else grad_z.clone()
    grad_logvar = torch.zeros_like(mu) if grad_z is None else (grad_z * eps).mul_(std).mul_(0.5)
    if grad_kl is not None:
        gk = grad_kl.unsqueeze(1)
        grad_mu.addcmul_(gk, mu)
        grad_logvar.addcmul_(gk, (std * std).sub_(1.0), value=0.5)
    return grad_mu, grad_logvar


class _Reparameterize(torch.autograd.Function):
    """:func:`_reparameterize` with a hand-written backward: the values and gradients of the plain
    expressions in a third of the ops."""

    @staticmethod
    def forward(ctx, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, kl, saved = _reparameterize(mu, logvar, eps)
        ctx.save_for_backward(*saved)
        return z, kl

    @staticmethod
    def backward(ctx, grad_z: torch.Tensor | None, grad_kl: torch.Tensor | None):
        return (*_reparameterize_grads(ctx.saved_tensors, grad_z, grad_kl), None)


def _relu_layers(linears: Sequence[nn.Linear], h: torch.Tensor) -> list[torch.Tensor]:
    """``[h, relu(linear_1(h)), ...]``: the inputs and outputs of a Linear-ReLU stack, without autograd
    modules (the products ``F.linear`` makes, ReLU in place)."""
    acts = [h]
    for lin in linears:
        acts.append(torch.addmm(lin.bias, acts[-1], lin.weight.t()).relu_())
    return acts


def _linear_grads(layer: nn.Linear, grad: torch.Tensor, inp: torch.Tensor, input_grad: bool = True
                  ) -> torch.Tensor | None:
    """Set ``layer``'s weight and bias gradients for output gradient ``grad`` and input ``inp``, as
    autograd's addmm backward computes them; return the input's gradient."""
    layer.weight.grad = grad.t().mm(inp)
    layer.bias.grad = grad.sum(0)
    return grad.mm(layer.weight) if input_grad else None


class VAENet(nn.Module):
    """Encoder, decoder and per-scalar sigma; ``forward(x)`` gives each row's loss terms."""

    def __init__(self, data_dim: int, embedding_dim: int, compress_dims: Sequence[int],
                 decompress_dims: Sequence[int], layout: SpanLayout, loss_factor: float) -> None:
        super().__init__()
        self.encoder, dim = _mlp(data_dim, compress_dims)
        self.mu = nn.Linear(dim, embedding_dim)
        self.logvar = nn.Linear(dim, embedding_dim)
        dec, dim = _mlp(embedding_dim, decompress_dims)
        self.decoder = nn.Sequential(dec, nn.Linear(dim, data_dim))
        self.sigma = Sigma(max(len(layout.cont_idx), 1))
        self.layout = layout
        self.loss_factor = loss_factor

    def _linears(self, stack: nn.Sequential) -> list[nn.Linear]:
        return [m for m in stack if isinstance(m, nn.Linear)]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.decoder(z)
        # sampling: the same products, ReLU in place (no second large buffer per layer)
        h = _relu_layers(self._linears(self.decoder[0]), z)[-1]
        return torch.addmm(self.decoder[1].bias, h, self.decoder[1].weight.t())

    @torch.no_grad()
    def loss_and_grads(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward(x, eps, fused=True)``, with the gradients of ``mean(rec + kl)`` written to every
        parameter's ``.grad`` by hand: the same ops as autograd's backward of that pass (the same
        values, bit for bit), without building or walking its graph (fp32 training without DP)."""
        lay = self.layout
        enc, dec = self._linears(self.encoder), self._linears(self.decoder[0])
        out_layer = self.decoder[1]
        acts = _relu_layers(enc, x)
        w = torch.cat([self.mu.weight, self.logvar.weight])
        mu, logvar = torch.addmm(torch.cat([self.mu.bias, self.logvar.bias]), acts[-1], w.t()).chunk(2, dim=1)
        z, kl, saved_z = _reparameterize(mu, logvar, eps)
        dacts = _relu_layers(dec, z)
        recon = torch.addmm(out_layer.bias, dacts[-1], out_layer.weight.t())
        sigma_param = self.sigma.sigma
        rec, saved_rec = _reconstruction(recon, x, sigma_param[: len(lay.cont_idx)], lay)
        rec = self.loss_factor * rec
        # backward of mean(loss_factor * rec + kl)
        g = torch.full((len(x),), 1.0 / max(len(x), 1), device=x.device, dtype=x.dtype)
        grad, grad_sigma = _reconstruction_grads(saved_rec, g * self.loss_factor, lay)
        grad = _linear_grads(out_layer, grad, dacts[-1])
        for lin, inp, out in zip(reversed(dec), reversed(dacts[:-1]), reversed(dacts[1:])):
            grad = _linear_grads(lin, torch.ops.aten.threshold_backward(grad, out, 0), inp)
        grad_mu, grad_logvar = _reparameterize_grads(saved_z, grad, g)
        grad = torch.cat([grad_mu, grad_logvar], dim=1)
        gw = grad.t().mm(acts[-1])
        gb = grad.sum(0)
        self.mu.weight.grad, self.logvar.weight.grad = gw.chunk(2, dim=0)
        self.mu.bias.grad, self.logvar.bias.grad = gb.chunk(2, dim=0)
        if enc:
            grad = grad.mm(w)
        for i in reversed(range(len(enc))):
            grad = _linear_grads(enc[i], torch.ops.aten.threshold_backward(grad, acts[i + 1], 0), acts[i], i > 0)
        if grad_sigma is not None:
            full = torch.zeros_like(sigma_param)
            full[: len(grad_sigma)] = grad_sigma
            sigma_param.grad = full
        else:
            sigma_param.grad = None
        return rec, kl

    def forward(self, x: torch.Tensor, eps: torch.Tensor, fused: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row (reconstruction, KL) for rows ``x`` and reparameterisation noise ``eps``.

        ``fused=True`` computes the reconstruction term in one custom autograd op (the plain training
        loop); the default keeps ordinary autograd ops, whose graph the DP mode's per-sample
        gradients are computed through."""
        h = self.encoder(x)
        if fused:  # both heads in one matmul (module calls stay separate for DP's per-layer hooks)
            w = torch.cat([self.mu.weight, self.logvar.weight])
            mu, logvar = F.linear(h, w, torch.cat([self.mu.bias, self.logvar.bias])).chunk(2, dim=1)
        else:
            mu, logvar = self.mu(h), self.logvar(h)
        mu, logvar = mu.to(x.dtype), logvar.to(x.dtype)  # losses in the data's precision under autocast
        if fused:
            z, kl = _Reparameterize.apply(mu, logvar, eps)
        else:
            z = mu + eps * torch.exp(0.5 * logvar)
            kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)
        recon = self.decoder(z).to(x.dtype)
        lay = self.layout
        if fused:
            sigma = self.sigma.sigma[: len(lay.cont_idx)]
            return self.loss_factor * _Reconstruction.apply(recon, x, sigma, lay), kl
        rec = torch.zeros(len(x), device=x.device, dtype=x.dtype)
        if len(lay.cont_idx):
            sigma = self.sigma(x)[:, : len(lay.cont_idx)]
            diff = x.index_select(1, lay.cont_idx) - torch.tanh(recon.index_select(1, lay.cont_idx))
            rec = rec + (diff ** 2 / (2 * sigma ** 2) + torch.log(sigma)).sum(1)
        if lay.n_groups:
            rec = rec + lay.group_cross_entropy(recon, x)
        return self.loss_factor * rec, kl


@register("TVAE")
class TVAE(BaseSynthesizer):
    """Tabular variational autoencoder.

    Args:
        epochs: passes over the data; default 300, or 10 under DP.
        batch_size: rows per step (expected Poisson batch under DP); default 500, or 2000 under DP.
        embedding_dim: latent size.
        compress_dims, decompress_dims: encoder and decoder hidden sizes.
        l2scale: Adam weight decay.
        lr: Adam learning rate; default 1e-3, or 1e-2 under DP (few noisy steps need larger ones:
            on Adult at epsilon 1 TSTR AUC rose from 0.49 at 1e-3 to 0.69).
        loss_factor: weight of the reconstruction term against the KL term.
        numerical, max_categories, device, seed, verbose, epsilon, delta, max_grad_norm,
        preprocessing_epsilon_share, secure_mode, max_physical_batch_size, grad_sample_mode, precision:
        as for :class:`CTGAN`.
        marginal_epsilon_share: under DP, the share of epsilon (alone) spent on noisy 1-way and 2-way
            marginals of the encoded discrete groups (``tabsynth.privacy.marginals``); 0 turns them off.
            Default 0.3: on Adult at epsilon 1 it lifted quality / TSTR AUC from 0.822 / 0.598 to
            0.872 / 0.871 (benchmarks/dp_sweep.py).
        marginal_weight: learning rate of the decoder's marginal-matching steps (one after each DP
            step, on decoded prior draws only), relative to ``lr``.
    """

    def __init__(self, epochs: int | None = None, batch_size: int | None = None, embedding_dim: int = 128,
                 compress_dims: Sequence[int] = (128, 128), decompress_dims: Sequence[int] = (128, 128),
                 l2scale: float = 1e-5, lr: float | None = None, loss_factor: float = 2.0, numerical: str = "mode",
                 max_categories: int = 500, device: str = "auto", seed: int | None = None,
                 verbose: bool = True, epsilon: float | None = None, delta: float | None = None,
                 max_grad_norm: float = 1.0, preprocessing_epsilon_share: float = 0.2,
                 secure_mode: bool = False, max_physical_batch_size: int | None = None,
                 grad_sample_mode: str = "ghost", precision: str = "fp32", marginal_epsilon_share: float = 0.3,
                 marginal_weight: float = 1.0) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.embedding_dim = embedding_dim
        self.compress_dims = tuple(compress_dims)
        self.decompress_dims = tuple(decompress_dims)
        self.l2scale = l2scale
        self.lr = lr
        self.loss_factor = loss_factor
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

    @property
    def _lr(self) -> float:
        return self.lr if self.lr is not None else (1e-2 if self.epsilon is not None else 1e-3)

    def _build(self, data_dim: int) -> None:
        self.net_ = VAENet(data_dim, self.embedding_dim, self.compress_dims, self.decompress_dims,
                           self.layout_, self.loss_factor).to(self.device_)

    def _modules(self) -> dict[str, nn.Module]:
        return {"net": self.net_}

    def _state_json(self) -> dict:
        return {}

    def _load_state_json(self, state: dict) -> None:
        pass

    def _train(self, data: torch.Tensor) -> list[dict[str, float]]:
        opt = torch.optim.Adam(self.net_.parameters(), lr=self._lr, weight_decay=self.l2scale, fused=True)
        scaler = self._grad_scaler()
        by_hand = self._PRECISIONS[self.precision] is None  # gradients without autograd (fp32)
        n, bs = len(data), min(self._batch_size, len(data))
        runtime = self._runtime
        # under torchrun every rank takes the same number of steps, each on its share of the batch
        steps_per_epoch = math.ceil(self._n_global / min(self._batch_size, self._n_global))
        history = []
        bar = tqdm(range(self._epochs), desc="TVAE", disable=not self.verbose or not self._runtime.is_main, unit="epoch")
        for epoch in bar:
            sums = torch.zeros(2, device=self.device_)  # per-step means of the two terms, summed
            perm = torch.randperm(n, device=self.device_)
            steps = 0
            chunks = perm.tensor_split(steps_per_epoch) if runtime.distributed else perm.split(bs)
            for idx in chunks:
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
                sums += torch.stack([rec.detach().sum(), kl.detach().sum()]) / max(len(x), 1)
                steps += 1
            rec_sum, kl_sum = sums.tolist()
            record = {"epoch": epoch, "reconstruction_loss": rec_sum / steps, "kl_loss": kl_sum / steps}
            record["loss"] = record["reconstruction_loss"] + record["kl_loss"]
            history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}")
        return history

    def _train_private(self, data: torch.Tensor, accountant, cond_counts, *, sigma: float, q: float, steps: int,
                       batch_size: int, randomness) -> list[dict[str, float]]:
        """DP-SGD on the whole VAE, sigma included, as one Opacus module (docs/privacy.md rule 13).

        The DP step's draws run on a secret stream (their number follows the private batch size);
        the losses on real rows are never recorded, only the marginal loss on prior draws.

        With DP marginals (``marginal_epsilon_share``), each DP step is followed by a plain Adam step
        on the decoder alone (learning rate ``marginal_weight * lr``) that pulls the marginals of
        decoded prior draws towards the noisy ones: no real row is read, the Opacus hooks are off,
        so it is post-processing of already-private state.
        """
        from tabsynth.privacy.marginals import marginal_loss

        marginals = getattr(self, "_dp_marginals", None)
        use_marginals = marginals is not None and self.marginal_weight > 0
        opt_m = (torch.optim.Adam(self.net_.decoder.parameters(), lr=self._lr * self.marginal_weight)
                 if use_marginals else None)

        def step(dp, x):
            net = dp.module
            with randomness.isolated(self.device_):
                rec, kl = net(x, torch.randn(len(x), self.embedding_dim, device=self.device_))
                loss = dp.loss(rec + kl)
                dp.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                dp.optimizer.step()
            self.net_.sigma.sigma.data.clamp_(0.01, 1.0)
            out = {}
            if use_marginals and not dp.optimizer._is_last_step_skipped:  # once per logical batch
                net.disable_hooks()
                try:
                    z = torch.randn(self._local_batch, self.embedding_dim, device=self.device_)
                    loss_m = marginal_loss(self.net_.decode(z), self.layout_, marginals)
                    opt_m.zero_grad(set_to_none=True)
                    loss_m.backward()
                    self._sync_gradients(self.net_.decoder)
                    opt_m.step()
                    opt_m.zero_grad(set_to_none=True)
                finally:
                    net.enable_hooks()
                out["marginal_loss"] = loss_m.detach()
            return out

        opt = torch.optim.Adam(self.net_.parameters(), lr=self._lr, weight_decay=self.l2scale)
        return self._run_private(self.net_, opt, data, step=step, accountant=accountant, sigma=sigma, q=q,
                                 steps=steps, batch_size=batch_size, randomness=randomness, desc="DP-TVAE",
                                 mechanism="DP-SGD on the whole VAE (Opacus, Poisson sampling, per-sample clipping)")

    def _draws(self, n: int, condition: tuple[int, int] | None, generator: torch.Generator) -> dict[str, Any]:
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
