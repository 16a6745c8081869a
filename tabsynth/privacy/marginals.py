"""DP 1-way and 2-way marginals of the encoded table, and the loss that matches a model to them.

In the style of MargNet and GEM, part of the budget measures the marginals of every discrete
group of the encoded matrix (categories, missing indicators and the mixture-mode of each numeric
column) and of the pairs of groups whose joint table is small enough to measure, in one Gaussian
release. Every encoded row has exactly one active slot in every discrete group, so adding or
removing a row changes one cell of each measured table by one: the L2 sensitivity is
``sqrt(number of tables)``. The pairs are chosen from the encoded layout alone (itself built from DP
statistics), never from the rows. The noise multiplier depends only on epsilon, delta and the
share, so the release is planned (and charged to the one :class:`Accountant`) before any row is
read, like the preprocessing release.

Everything after the noise is post-processing: the noisy tables are cleaned (cells under
``EMPTY_SIGMAS`` noise standard deviations set to zero, each table normalised) and a model is
pulled towards them by :func:`marginal_loss` on generated rows only, which costs no budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tabsynth.privacy.accountant import Accountant, Release

if TYPE_CHECKING:
    from tabsynth.transform.layout import SpanLayout

#: Largest joint table (cells) measured for a pair of groups; wider pairs are left out.
MAX_PAIR_CELLS = 256
#: Noisy cells below this many noise standard deviations are taken as empty.
EMPTY_SIGMAS = 2.0


@dataclass
class NoisyMarginals:
    """Cleaned DP marginals over discrete groups (indices into ``layout.disc_spans``).

    ``one_way`` / ``two_way`` hold each measured table as probabilities; for the loss they are also
    laid out as one vector / matrix over every discrete slot of the encoded row (``target1 [D]``,
    ``target2 [D, D]``, zero outside measured tables), so matching all tables is one matmul.
    """

    singles: list[int]
    pairs: list[tuple[int, int]]
    one_way: list[torch.Tensor]   # [size_g] probabilities
    two_way: list[torch.Tensor]   # [size_g, size_h] probabilities
    noise_std: float
    slots: torch.Tensor | None = None     # [D] positions of the discrete slots in the encoded row
    target1: torch.Tensor | None = None   # [D]
    target2: torch.Tensor | None = None   # [D, D] (upper blocks g < h)

    @property
    def n_tables(self) -> int:
        return len(self.singles) + len(self.pairs)

    def pack(self, layout: SpanLayout) -> NoisyMarginals:
        spans = layout.disc_spans
        offsets, pos = [], 0
        for sp in spans:
            offsets.append(pos)
            pos += sp.size
        dev = layout.device
        self.slots = torch.cat([torch.arange(sp.start, sp.end) for sp in spans]).to(dev) if spans else None
        self.target1 = torch.zeros(pos, device=dev)
        self.target2 = torch.zeros(pos, pos, device=dev)
        for g, t in zip(self.singles, self.one_way):
            self.target1[offsets[g]:offsets[g] + spans[g].size] = t
        for (g, h), t in zip(self.pairs, self.two_way):
            self.target2[offsets[g]:offsets[g] + spans[g].size, offsets[h]:offsets[h] + spans[h].size] = t
        return self


def plan_marginals(accountant: Accountant, share: float) -> Release | None:
    """Charge the marginal release to the accountant before any row is read (``share`` of epsilon alone).

    The noise multiplier (std / L2 sensitivity) is fixed here; the sensitivity, ``sqrt(tables)``,
    is known once the layout exists and is recorded by :func:`measure_marginals`.
    """
    if not share:
        return None
    multiplier = accountant.preprocessing_noise(share, 1.0)
    release = Release("marginals", multiplier,
                      mechanism="gaussian (1-way and 2-way marginals of the encoded discrete groups, "
                                "L2 sensitivity sqrt(tables))",
                      details={"share_of_epsilon": share})
    accountant.add(release)
    return release


def select_tables(layout: SpanLayout, max_pair_cells: int = MAX_PAIR_CELLS) -> tuple[list[int], list[tuple[int, int]]]:
    """Groups and pairs of groups to measure: every discrete group, every pair of groups of different
    columns whose joint table has at most ``max_pair_cells`` cells (layout only: no data)."""
    spans = layout.disc_spans
    singles = [g for g, s in enumerate(spans) if s.size > 1]
    pairs = [(g, h) for i, g in enumerate(singles) for h in singles[i + 1:]
             if spans[g].column != spans[h].column and spans[g].size * spans[h].size <= max_pair_cells]
    return singles, pairs


def exact_tables(codes: np.ndarray, sizes: list[int], singles: list[int],
                 pairs: list[tuple[int, int]]) -> list[np.ndarray]:
    """Counts of each table from the active slot of every group per row (``codes [n, groups]``)."""
    out = [np.bincount(codes[:, g], minlength=sizes[g]).astype(np.float64) for g in singles]
    for g, h in pairs:
        flat = codes[:, g] * sizes[h] + codes[:, h]
        out.append(np.bincount(flat, minlength=sizes[g] * sizes[h]).astype(np.float64).reshape(sizes[g], sizes[h]))
    return out


def group_codes(data: torch.Tensor, layout: SpanLayout) -> np.ndarray:
    """Active slot of every discrete group per encoded row: ``[n, n_groups]``."""
    cols = [data[:, s.start:s.end].argmax(1) for s in layout.disc_spans]
    return torch.stack(cols, 1).cpu().numpy() if cols else np.zeros((len(data), 0), dtype=np.int64)


def measure_marginals(data: torch.Tensor, layout: SpanLayout, release: Release, noise_rng: Any, *,
                      max_pair_cells: int = MAX_PAIR_CELLS, runtime: Any = None) -> NoisyMarginals | None:
    """The planned release: noisy counts of the selected tables, cleaned into probabilities.

    Under torchrun ``data`` is this rank's shard: the counts are summed over ranks and rank 0 adds
    the noise once, so the release is the single-process one."""
    singles, pairs = select_tables(layout, max_pair_cells)
    tables = len(singles) + len(pairs)
    if not tables:
        release.details.update({"tables": 0, "noise_std": 0.0, "l2_sensitivity": 0.0})
        return None
    sizes = [s.size for s in layout.disc_spans]
    counts = exact_tables(group_codes(data, layout), sizes, singles, pairs)
    sensitivity = math.sqrt(tables)
    std = release.noise_multiplier * sensitivity
    names = [layout.disc_spans[g].column + ":" + layout.disc_spans[g].role for g in range(len(sizes))]
    release.details.update({
        "noise_std": std, "l2_sensitivity": sensitivity, "tables": tables, "one_way": len(singles),
        "two_way": len(pairs), "max_pair_cells": max_pair_cells,
        "pairs": [f"{names[g]} x {names[h]}" for g, h in pairs]})
    if runtime is not None and runtime.distributed:
        counts = [runtime.all_reduce_sum(c) for c in counts]
    is_main = runtime is None or runtime.is_main
    noisy_counts: list[Any] = [c + noise_rng.normal(0.0, std, size=c.shape) if is_main else None for c in counts]
    if runtime is not None and runtime.distributed:
        noisy_counts = runtime.broadcast_object(noisy_counts)
    cleaned = []
    for noisy in noisy_counts:
        noisy = noisy.copy()
        noisy[noisy < EMPTY_SIGMAS * std] = 0.0
        total = noisy.sum()
        cleaned.append(noisy / total if total > 0 else None)  # nothing above the noise: no information
    keep1 = [i for i in range(len(singles)) if cleaned[i] is not None]
    keep2 = [i for i in range(len(pairs)) if cleaned[len(singles) + i] is not None]
    release.details["tables_above_noise"] = len(keep1) + len(keep2)
    if not keep1 and not keep2:
        return None
    dev = layout.device
    as_t = {i: torch.tensor(t, dtype=torch.float32, device=dev) for i, t in enumerate(cleaned) if t is not None}
    return NoisyMarginals([singles[i] for i in keep1], [pairs[i] for i in keep2], [as_t[i] for i in keep1],
                          [as_t[len(singles) + i] for i in keep2], std).pack(layout)


def group_probs(logits: torch.Tensor, layout: SpanLayout) -> torch.Tensor:
    """Softmax of every discrete group's logits, concatenated: ``[B, D]`` (the model's sampling
    distribution of each row's discrete slots)."""
    parts = [torch.softmax(logits[:, s.start:s.end], dim=1) for s in layout.disc_spans]
    return torch.cat(parts, 1) if parts else logits[:, :0]


def marginal_loss(logits: torch.Tensor, layout: SpanLayout, marginals: NoisyMarginals) -> torch.Tensor:
    """Mean KL(noisy target || model) over the measured tables, the model's tables being the batch
    means of its per-row group probabilities (outer products for pairs: groups are drawn
    independently given the row's latent input). All tables at once: one ``[D, D]`` matmul."""
    assert marginals.target1 is not None and marginals.target2 is not None, "marginals are packed on creation"
    probs = group_probs(logits, layout)
    n = max(len(logits), 1)
    one = probs.mean(0)
    two = probs.T @ probs / n
    return (_kl(marginals.target1, one) + _kl(marginals.target2, two)) / marginals.n_tables


def _kl(target: torch.Tensor, model: torch.Tensor) -> torch.Tensor:
    mask = target > 0
    t = target[mask]
    return (t * (t.log() - model[mask].clamp_min(1e-8).log())).sum()
