"""TVAE's network: encoder, decoder and the learned per-scalar sigma as one module whose forward
returns per-row loss terms (so DP-SGD can wrap it as it is), with a hand-written backward for the
plain fp32 loop that gives autograd's values bit for bit in fewer ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast, overload

import torch
from torch import nn
from torch.nn import functional as F

from tabsynth.transform.layout import SpanLayout


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
#: trained decoders' logits spread that far. exp(-80) = 1.8e-35 changes no fp32
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


@overload
def _linear_grads(layer: nn.Linear, grad: torch.Tensor, inp: torch.Tensor, input_grad: Literal[True] = True
                  ) -> torch.Tensor: ...
@overload
def _linear_grads(layer: nn.Linear, grad: torch.Tensor, inp: torch.Tensor, input_grad: bool) -> torch.Tensor | None: ...
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
        # without scalars no loss reads sigma: frozen, or DP-SGD would find no per-sample gradient for it
        self.sigma.sigma.requires_grad_(bool(len(layout.cont_idx)))
        self.layout = layout
        self.loss_factor = loss_factor

    def _decoder_layers(self) -> tuple[nn.Sequential, nn.Linear]:
        """The decoder's hidden stack and its output layer."""
        return cast(nn.Sequential, self.decoder[0]), cast(nn.Linear, self.decoder[1])

    def _linears(self, stack: nn.Sequential) -> list[nn.Linear]:
        return [m for m in stack if isinstance(m, nn.Linear)]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.decoder(z)
        # sampling: the same products, ReLU in place (no second large buffer per layer)
        hidden, out_layer = self._decoder_layers()
        h = _relu_layers(self._linears(hidden), z)[-1]
        return torch.addmm(out_layer.bias, h, out_layer.weight.t())

    @torch.no_grad()
    def loss_and_grads(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward(x, eps, fused=True)``, with the gradients of ``mean(rec + kl)`` written to every
        parameter's ``.grad`` by hand: the same ops as autograd's backward of that pass (the same
        values, bit for bit), without building or walking its graph (fp32 training without DP)."""
        lay = self.layout
        hidden, out_layer = self._decoder_layers()
        enc, dec = self._linears(self.encoder), self._linears(hidden)
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
            grad_in = _linear_grads(enc[i], torch.ops.aten.threshold_backward(grad, acts[i + 1], 0), acts[i], i > 0)
            if grad_in is not None:  # None for the first layer, whose input is the data
                grad = grad_in
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
