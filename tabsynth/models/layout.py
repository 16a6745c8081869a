"""Torch view of the span layout: all span activations and losses in one padded pass.

Instead of a Python loop over spans (one kernel launch, and often one device sync, per span),
discrete groups are gathered into a ``[batch, n_groups, max_width]`` tensor padded with -inf, so a
softmax, a gumbel-softmax or a cross-entropy over every group is one call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tabsynth.transform import CONTINUOUS, Span


class SpanLayout:
    """Index tensors for a list of spans, on one device."""

    def __init__(self, spans: list[Span], device: torch.device) -> None:
        self.spans = spans
        self.dim = spans[-1].end if spans else 0
        self.device = device
        cont = [s.start for s in spans if s.kind == CONTINUOUS]
        self.cont_idx = torch.tensor(cont, dtype=torch.long, device=device)
        disc = [s for s in spans if s.kind != CONTINUOUS]
        self.n_groups = len(disc)
        self.max_width = max((s.size for s in disc), default=0)
        index = torch.zeros(self.n_groups, max(self.max_width, 1), dtype=torch.long)
        mask = torch.zeros(self.n_groups, max(self.max_width, 1), dtype=torch.bool)
        for g, s in enumerate(disc):
            index[g, : s.size] = torch.arange(s.start, s.end)
            mask[g, : s.size] = True
        self.group_index = index.to(device)
        self.group_mask = mask.to(device)
        self.flat_index = self.group_index[self.group_mask]  # positions of all discrete slots
        self.cond_groups = torch.tensor([g for g, s in enumerate(disc) if s.conditional], dtype=torch.long,
                                        device=device)

    def grouped(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, n_groups, max_width]`` view of the discrete slots, padding set to -inf."""
        g = x[:, self.group_index]
        return g.masked_fill(~self.group_mask, float("-inf"))

    def activate(self, logits: torch.Tensor, *, tau: float = 0.2, hard: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """tanh on continuous slots, gumbel-softmax (temperature ``tau``) on every discrete group."""
        out = torch.empty_like(logits)
        if len(self.cont_idx):
            out[:, self.cont_idx] = torch.tanh(logits[:, self.cont_idx])
        if self.n_groups:
            g = self.grouped(logits)
            u = torch.rand(g.shape, device=g.device, dtype=g.dtype, generator=generator)
            gumbel = -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))
            soft = torch.softmax((g + gumbel) / tau, dim=-1)
            if hard:
                soft = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
            out[:, self.flat_index] = soft[:, self.group_mask]
        return out

    def group_targets(self, onehot: torch.Tensor) -> torch.Tensor:
        """Index of the active slot of each discrete group: ``[B, n_groups]``."""
        return self.grouped(onehot).argmax(-1)

    def group_cross_entropy(self, logits: torch.Tensor, target_onehot: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of every discrete group: ``[B, n_groups]`` (not reduced)."""
        g = self.grouped(logits)
        target = self.group_targets(target_onehot)
        logp = torch.log_softmax(g, dim=-1)
        return -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
