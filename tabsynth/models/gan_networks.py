"""CTGAN's networks: the residual generator (with a fused inference pass) and the PacGAN critic
(with hand-written input gradients for WGAN-GP), and the per-pair critic loss of the DP mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F


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
    ``bernoulli_`` draws one random number per element, sixteen times the draws."""
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
        layers: list[nn.Module] = []
        dim = in_dim
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
            fc = mod.fc if isinstance(mod, Residual) else cast(nn.Linear, mod)
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
            fc = mod.fc if isinstance(mod, Residual) else cast(nn.Linear, mod)
            w, b = fc.weight.detach(), fc.bias.detach()
            if isinstance(mod, Residual):
                if fold:
                    bn = mod.bn
                    assert bn.running_var is not None and bn.running_mean is not None, "tracked by Residual's BatchNorm"
                    scale = bn.weight.detach() * torch.rsqrt(bn.running_var + bn.eps)
                    w, b = w * scale[:, None], (b - bn.running_mean) * scale + bn.bias.detach()
                hidden.append(w.shape[0])
            ws.append(w)
            bs.append(b)
        h_cols = [sum(hidden[:i]) for i in range(len(ws))]  # layer i sees [h_{i-1}, ..., h_0, noise, cond]
        # the stacked outputs padded with zero rows to a multiple of 16 columns: with an odd row
        # length the matrix products into that buffer are markedly slower on CPU
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

    def _activate(self, pre: torch.Tensor, act: nn.LeakyReLU, drop: nn.Dropout) -> tuple[torch.Tensor, torch.Tensor]:
        """LeakyReLU then dropout of one layer's pre-activation, and the derivative of that with respect
        to ``pre`` under the same mask: slope 1 where ``pre > 0``, else ``negative_slope`` (as torch's
        leaky_relu backward)."""
        h = F.leaky_relu(pre, act.negative_slope)
        scale = torch.where(pre > 0, 1.0, act.negative_slope)
        if self.training and drop.p > 0:
            mask = dropout_mask(pre, drop.p)
            h.mul_(mask)
            scale.mul_(mask)
        return h, scale

    def _layers(self) -> tuple[list[tuple[nn.Linear, nn.LeakyReLU, nn.Dropout]], nn.Linear]:
        """The (linear, activation, dropout) blocks of the network and its output layer."""
        mods = list(self.net)
        blocks = [cast(tuple[nn.Linear, nn.LeakyReLU, nn.Dropout], tuple(mods[i:i + 3]))
                  for i in range(0, len(mods) - 1, 3)]
        return blocks, cast(nn.Linear, mods[-1])

    def wgan_terms(self, packs: torch.Tensor, mixed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Critic scores of ``packs`` (``[n, pac * features]``) and the input gradient at ``mixed``
        packs (as :meth:`input_gradient`), with one first-layer matmul for both sets of packs and one
        for the first layer's weight gradient."""
        blocks, last = self._layers()
        if not blocks:
            return self.net(packs), last.weight.expand(len(mixed), -1)
        first = blocks[0][0]
        scales = []
        h: torch.Tensor
        with torch.no_grad():
            pre_all = torch.addmm(first.bias, torch.cat([packs, mixed]), first.weight.t())
            pre = pre_all[len(packs):]
            for i, (fc, act, drop) in enumerate(blocks):
                if i:
                    pre = F.linear(h, fc.weight, fc.bias)  # noqa: F821 (h is the previous block's output)
                h, scale = self._activate(pre, act, drop)
                scales.append(scale)
        s = last.weight
        for (fc, _, _), scale in zip(reversed(blocks[1:]), reversed(scales[1:])):
            s = (s * scale) @ fc.weight
        s = s * scales[0]
        h, grad = _SharedFirstLayer.apply(packs, s, first.weight, first.bias, pre_all[:len(packs)])
        _, act, drop = blocks[0]
        out = drop(act(h))
        for fc, act, drop in blocks[1:]:
            out = drop(act(fc(out)))
        return last(out), grad

    def input_gradient(self, packs: torch.Tensor) -> torch.Tensor:
        """d(critic output)/d(input) for packed rows ``[n_packs, pac * features]``, with one fresh
        dropout draw, as a graph in the weights only.

        The value ``autograd.grad(critic(x).sum(), x, create_graph=True)`` gives, but the forward pass
        that fixes the LeakyReLU slopes and dropout masks runs without a graph, so backpropagating a
        penalty on it is one ordinary backward pass (the activations' second derivative is zero)."""
        blocks, last = self._layers()
        scales = []
        with torch.no_grad():
            h = packs
            for fc, act, drop in blocks:
                h, scale = self._activate(F.linear(h, fc.weight, fc.bias), act, drop)
                scales.append(scale)
        grad = last.weight
        for (fc, _, _), scale in zip(reversed(blocks), reversed(scales)):
            grad = (grad * scale) @ fc.weight
        return grad
