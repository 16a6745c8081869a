"""CTGAN's conditional vector and training-by-sampling, vectorised on the device.

The conditional vector has one one-hot block per conditional group (category columns and
missing-value indicators); each row activates exactly one group. Training draws the group
uniformly and its value by log-frequency, then real rows holding that value through one
flattened value-to-row index (a gather, no Python loop per row).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tabsynth.transform.layout import SpanLayout


class ConditionSampler:
    """Draws conditional vectors and the real rows that match them.

    Args:
        layout: the model's span layout.
        codes: ``[N, n_cond_groups]`` active slot of each row in each conditional group, or None
            when only frequencies are known (then :meth:`sample_rows` is unavailable).
        counts: ``[n_cond_groups, max_width]`` value counts; derived from ``codes`` when omitted
            (the DP mode passes noisy counts instead).
    """

    def __init__(self, layout: SpanLayout, codes: torch.Tensor | None, counts: torch.Tensor | None = None) -> None:
        self.layout = layout
        device = layout.device
        self.widths = layout.cond_widths.long()
        self.n_groups = len(self.widths)
        self.max_width = int(self.widths.max()) if self.n_groups else 0
        self.offsets = (torch.cumsum(self.widths, 0) - self.widths) if self.n_groups else self.widths
        self.dim = int(self.widths.sum()) if self.n_groups else 0
        if counts is None and codes is not None and self.n_groups:
            counts = torch.zeros(self.n_groups, self.max_width, device=device)
            for g in range(self.n_groups):
                counts[g] = torch.bincount(codes[:, g], minlength=self.max_width)[: self.max_width].float()
        self.counts = counts.to(device).float() if counts is not None else None
        if self.counts is not None:
            self.counts = self.counts.clamp_min(0)
            logf = torch.log1p(self.counts)
            self.log_probs = logf / logf.sum(-1, keepdim=True).clamp_min(1e-12)
            self.raw_probs = self.counts / self.counts.sum(-1, keepdim=True).clamp_min(1e-12)
            # cumulative tables for inverse-CDF draws; a group's padding slots sit at 2 (never below u)
            pad = torch.arange(self.max_width, device=device)[None, :] >= self.widths[:, None]
            self._log_cdf = self.log_probs.cumsum(-1).masked_fill(pad, 2.0)
            self._raw_cdf = self.raw_probs.cumsum(-1).masked_fill(pad, 2.0)
            # last slot with a non-zero count: where a u above the rounded cumulative total lands
            pos = torch.arange(self.max_width, device=device).expand_as(self.counts)
            self._last = torch.where(self.counts > 0, pos, -1).amax(-1)
            self._last = torch.where(self._last < 0, self.widths - 1, self._last)
        self._row_index = None
        if codes is not None and self.n_groups:
            assert self.counts is not None, "counted from codes above"
            n = codes.shape[0]
            flat = torch.empty(self.n_groups * n, dtype=torch.long, device=device)
            for g in range(self.n_groups):  # one argsort per column, not per row
                flat[g * n:(g + 1) * n] = torch.argsort(codes[:, g], stable=True)
            starts = torch.cumsum(self.counts, dim=1) - self.counts
            self._row_starts = (starts + torch.arange(self.n_groups, device=device)[:, None] * n).long()
            self._row_index = flat

    @classmethod
    def from_matrix(cls, layout: SpanLayout, data: torch.Tensor) -> ConditionSampler:
        """Sampler over an encoded matrix (the non-DP path: real frequencies and rows)."""
        return cls(layout, layout.cond_codes(data) if layout.cond_groups else None)

    def sample(self, n: int, *, log_frequency: bool = True, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(cond [n, dim], mask [n, n_groups], group [n], slot [n])`` for ``n`` rows."""
        return self._vectors(*self.sample_slots(n, log_frequency=log_frequency, generator=generator))

    def sample_slots(self, n: int, *, log_frequency: bool = True, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(group [n], slot [n])``: a uniformly chosen conditional group per row and a value of it drawn
        by (log-)frequency, by inverse CDF (one uniform per row)."""
        device = self.layout.device
        group = torch.randint(0, self.n_groups, (n,), device=device, generator=generator)
        cdf = (self._log_cdf if log_frequency else self._raw_cdf).index_select(0, group)
        u = torch.rand(n, 1, device=device, generator=generator)
        slot = torch.minimum((cdf <= u).sum(1), self._last[group])
        return group, slot

    def fixed(self, n: int, group: int, slot: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Conditional vectors that all ask for ``slot`` of conditional group ``group``."""
        device = self.layout.device
        g = torch.full((n,), group, dtype=torch.long, device=device)
        s = torch.full((n,), slot, dtype=torch.long, device=device)
        return self._vectors(g, s)

    def vectors(self, group: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """Conditional vectors ``[n, dim]`` asking for ``slot`` of ``group`` in each row."""
        cond = torch.zeros(len(group), self.dim, device=self.layout.device)
        return cond.scatter_(1, (self.offsets[group] + slot).unsqueeze(1), 1.0)

    def _vectors(self, group: torch.Tensor, slot: torch.Tensor):
        n = len(group)
        cond = self.vectors(group, slot)
        mask = torch.zeros(n, self.n_groups, device=self.layout.device)
        mask.scatter_(1, group.unsqueeze(1), 1.0)
        return cond, mask, group, slot

    def sample_rows(self, group: torch.Tensor, slot: torch.Tensor, generator: torch.Generator | None = None
                    ) -> torch.Tensor:
        """Indices of real rows, uniformly among those holding ``slot`` in ``group``."""
        if self._row_index is None or self.counts is None:
            raise RuntimeError("this sampler holds no row index (frequencies only)")
        count = self.counts[group, slot]
        u = torch.rand(len(group), device=count.device, generator=generator)
        pick = (u * count).long().clamp_max((count - 1).clamp_min(0).long())
        return self._row_index[self._row_starts[group, slot] + pick]

    def cond_loss(self, logits: torch.Tensor, group: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """CTGAN's generator penalty: cross-entropy of the asked group's logits against the asked value."""
        return F.cross_entropy(self.layout.cond_logits(logits, group), slot, reduction="sum") / len(slot)
