"""Torch view of the span layout: all span activations and losses in a few padded passes.

Instead of a Python loop over spans (one kernel launch, and often one device sync, per span),
discrete groups of similar width are gathered into ``[batch, n_groups, width]`` tensors padded
with -inf, so a softmax, a gumbel-softmax or a cross-entropy over every group is one call per
width bucket (at most four), and the activated row is put back together with one gather.
"""

from __future__ import annotations

import torch

from tabsynth.transform import CONTINUOUS, Span

#: Upper widths of the buckets discrete groups are padded to.
_BUCKETS = (4, 16, 64)


class _Bucket:
    def __init__(self, groups: list[int], spans: list[Span], device: torch.device) -> None:
        width = max(spans[g].size for g in groups)
        index = torch.zeros(len(groups), width, dtype=torch.long)
        mask = torch.zeros(len(groups), width, dtype=torch.bool)
        for row, g in enumerate(groups):
            s = spans[g]
            index[row, : s.size] = torch.arange(s.start, s.end)
            mask[row, : s.size] = True
        self.groups = groups
        self.index = index.to(device)
        self.mask = mask.to(device)
        self.positions = self.index[self.mask]

    def grouped(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.index].masked_fill(~self.mask, float("-inf"))


class SpanLayout:
    """Index tensors for a list of spans, on one device."""

    def __init__(self, spans: list[Span], device: torch.device) -> None:
        self.spans = spans
        self.dim = spans[-1].end if spans else 0
        self.device = device
        cont = [s.start for s in spans if s.kind == CONTINUOUS]
        self.cont_idx = torch.tensor(cont, dtype=torch.long, device=device)
        self.disc_spans = [s for s in spans if s.kind != CONTINUOUS]
        self.n_groups = len(self.disc_spans)
        by_bucket: dict[int, list[int]] = {}
        for g, s in enumerate(self.disc_spans):
            key = next((b for b in _BUCKETS if s.size <= b), 10**9)
            by_bucket.setdefault(key, []).append(g)
        self.buckets = [_Bucket(gs, self.disc_spans, device) for _, gs in sorted(by_bucket.items())]
        # activated rows are assembled as [tanh(cont), softmax slots of bucket 0, bucket 1, ...]
        order = torch.cat([self.cont_idx] + [b.positions for b in self.buckets]) if spans else torch.zeros(0)
        self.assemble = torch.argsort(order.long()).to(device)
        self.cond_groups = [g for g, s in enumerate(self.disc_spans) if s.conditional]
        # per conditional group: its slot positions padded to the widest conditional group
        cond_width = max((self.disc_spans[g].size for g in self.cond_groups), default=1)
        cidx = torch.zeros(len(self.cond_groups), cond_width, dtype=torch.long)
        cmask = torch.zeros(len(self.cond_groups), cond_width, dtype=torch.bool)
        for row, g in enumerate(self.cond_groups):
            s = self.disc_spans[g]
            cidx[row, : s.size] = torch.arange(s.start, s.end)
            cmask[row, : s.size] = True
        self.cond_index = cidx.to(device)
        self.cond_mask = cmask.to(device)
        self.cond_widths = cmask.sum(1).to(device)

    def activate(self, logits: torch.Tensor, *, tau: float = 0.2, hard: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """tanh on continuous slots; gumbel-softmax (temperature ``tau``) on every discrete group, or,
        with ``hard=True``, one-hot draws from each group's softmax (for sampling)."""
        if hard:
            return self._sample_one_hot(logits, generator)
        parts = [torch.tanh(logits[:, self.cont_idx])]
        for b in self.buckets:
            g = b.grouped(logits)
            # Gumbel(0, 1) noise is -log of an Exponential(1) draw: one log per slot
            expo = torch.empty(g.shape, device=g.device, dtype=g.dtype).exponential_(generator=generator)
            expo.clamp_min_(1e-30)  # an exact 0 would give an infinite logit
            soft = torch.softmax((g - expo.log()) / tau, dim=-1)
            parts.append(soft[:, b.mask])
        return torch.cat(parts, dim=1)[:, self.assemble]

    def _sample_one_hot(self, logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One draw per group by inverse CDF (one uniform per group), written straight into the row."""
        out = torch.zeros_like(logits)
        out[:, self.cont_idx] = torch.tanh(logits[:, self.cont_idx])
        for b in self.buckets:
            cdf = torch.softmax(b.grouped(logits), dim=-1).cumsum_(-1)
            u = torch.rand(cdf.shape[:-1], device=cdf.device, dtype=cdf.dtype, generator=generator)
            slot = (cdf < u.unsqueeze(-1)).sum(-1)
            slot = torch.minimum(slot, b.mask.sum(1) - 1)  # rounding can leave u above the last cdf value
            out.scatter_(1, b.index.gather(1, slot.t()).t(), 1.0)
        return out

    def group_cross_entropy(self, logits: torch.Tensor, target_onehot: torch.Tensor) -> torch.Tensor:
        """Summed cross-entropy over every discrete group, per row: ``[B]``."""
        total = torch.zeros(len(logits), device=logits.device, dtype=logits.dtype)
        for b in self.buckets:
            g = b.grouped(logits)
            target = b.grouped(target_onehot).argmax(-1)
            logp = torch.log_softmax(g, dim=-1)
            total = total - logp.gather(-1, target.unsqueeze(-1)).squeeze(-1).sum(1)
        return total

    def cond_codes(self, onehot: torch.Tensor) -> torch.Tensor:
        """Active slot of each conditional group per row: ``[B, n_cond_groups]``."""
        g = onehot[:, self.cond_index].masked_fill(~self.cond_mask, float("-inf"))
        return g.argmax(-1)

    def cond_logits(self, logits: torch.Tensor, cond_group: torch.Tensor) -> torch.Tensor:
        """Logits of one conditional group per row (padding -inf): ``[B, width]``."""
        return logits.gather(1, self.cond_index[cond_group]).masked_fill(~self.cond_mask[cond_group], float("-inf"))
