"""Encoded rows as integer tokens, one per token column, and back (the autoregressive family's view).

Every discrete span of the layout (a category one-hot, a missing indicator, a numeric column's mode)
is one token column whose token is its active slot; every continuous scalar is one token column of
``bins`` bins. The bin edges are a public function of ``bins`` and the layout alone: for a scalar
whose column has a mode span (mode-specific normalisation, roughly N(0, 0.25) within its mode) the
edges sit at normal quantiles of that law, otherwise (quantile or min-max scalars) they split
[-1, 1] evenly. A bin decodes to a value drawn uniformly inside it. Exact values are the encoder's
part (:mod:`tabsynth.transform.numerical`): a column of few repeated values has no scalar, only its
value token (a category); a point mass is a mode token of its own and decodes to exactly its value,
whatever its scalar; every value is rounded to the column's recorded precision.

Token columns follow the table's columns; within a column the missing indicator comes first, then
the mode or category, then the scalar, so that a column's tokens stay adjacent and each is
predicted after what it depends on. Everything is vectorised over rows (one op per token column).
"""

from __future__ import annotations

import torch

from tabsynth.transform.base import CONTINUOUS, Span
from tabsynth.transform.numerical import SCALAR_SIGMAS

#: Default number of bins of a continuous scalar.
DEFAULT_BINS = 32
#: Spread of a mode-normalised scalar within its mode (the encoder divides by ``SCALAR_SIGMAS`` deviations).
MODE_SCALE = 1.0 / SCALAR_SIGMAS
#: Position of a span's token within its column, by role (lower first).
_ROLE_RANK = {"missing": 0, "mode": 1, "category": 1, "value": 2}


def bin_edges(bins: int, normal: bool) -> torch.Tensor:
    """``bins + 1`` increasing edges from -1 to 1: at quantiles ``k / bins`` of N(0, MODE_SCALE^2)
    (clipped inside [-1, 1]) when ``normal``, else evenly spaced."""
    if not normal:
        return torch.linspace(-1.0, 1.0, bins + 1, dtype=torch.float64).float()
    p = torch.arange(1, bins, dtype=torch.float64) / bins
    inner = (MODE_SCALE * torch.special.ndtri(p)).clamp(-0.999, 0.999)
    return torch.cat([torch.tensor([-1.0], dtype=torch.float64), inner,
                      torch.tensor([1.0], dtype=torch.float64)]).float()


class Tokenizer:
    """Token columns of a span layout: ``encode`` an encoded matrix to tokens, ``decode`` them back.

    Attributes:
        spans: the span of each token column, in token order.
        sizes: ``[K]`` vocabulary of each token column.
        columns: ``[K]`` index of each token column's table column (its tokens are adjacent).
        continuous: ``[K]`` whether each token column is a binned scalar.
    """

    def __init__(self, spans: list[Span], device: torch.device, bins: int = DEFAULT_BINS) -> None:
        names = list(dict.fromkeys(sp.column for sp in spans))
        order = sorted(range(len(spans)), key=lambda i: (names.index(spans[i].column),
                                                           _ROLE_RANK.get(spans[i].role, 1), i))
        self.spans = [spans[i] for i in order]
        self.bins = bins
        self.device = device
        self.dim = max((sp.end for sp in spans), default=0)
        moded = {sp.column for sp in spans if sp.role == "mode"}
        self.n_tokens = len(self.spans)
        self.sizes = torch.tensor([bins if sp.kind == CONTINUOUS else sp.size for sp in self.spans],
                                  dtype=torch.long, device=device)
        self.columns = torch.tensor([names.index(sp.column) for sp in self.spans], dtype=torch.long, device=device)
        self.n_columns = len(names)
        self.continuous = torch.tensor([sp.kind == CONTINUOUS for sp in self.spans], dtype=torch.bool, device=device)
        self.cont_tokens = [k for k, sp in enumerate(self.spans) if sp.kind == CONTINUOUS]
        self.disc_tokens = [k for k, sp in enumerate(self.spans) if sp.kind != CONTINUOUS]
        # per scalar token column: its edges ([n_cont, bins + 1]) and its position in the matrix
        edges = [bin_edges(bins, self.spans[k].column in moded) for k in self.cont_tokens]
        self.edges = torch.stack(edges).to(device) if edges else torch.zeros(0, bins + 1, device=device)
        self.cont_pos = torch.tensor([self.spans[k].start for k in self.cont_tokens], dtype=torch.long, device=device)
        # discrete slots: slot number within its span and owning token column, for every discrete position
        self._disc_pos = torch.cat([torch.arange(self.spans[k].start, self.spans[k].end)
                                    for k in self.disc_tokens]).to(device) if self.disc_tokens else None
        self._disc_slot = torch.cat([torch.arange(self.spans[k].size) for k in self.disc_tokens]).to(
            device) if self.disc_tokens else None
        self._disc_owner = torch.cat([torch.full((self.spans[k].size,), j) for j, k in enumerate(self.disc_tokens)]
                                     ).to(device) if self.disc_tokens else None
        self._disc_start = torch.tensor([self.spans[k].start for k in self.disc_tokens], dtype=torch.long,
                                        device=device)

    def token_of_span(self, start: int) -> int:
        """The token column of the span starting at matrix position ``start``."""
        return next(k for k, sp in enumerate(self.spans) if sp.start == start)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, K]`` long tokens of encoded rows ``x [N, dim]``: the active slot of each discrete span
        (its largest entry), and the bin of each scalar (clamped into [-1, 1] first)."""
        out = torch.zeros(len(x), self.n_tokens, dtype=torch.long, device=x.device)
        if self.disc_tokens:
            # active slot per discrete span (rows are one-hot): the slot numbers of hot entries, summed per span
            hot = x.index_select(1, self._disc_pos) > 0.5  # type: ignore[arg-type]  # set when disc_tokens
            slot = torch.zeros(len(x), len(self.disc_tokens), dtype=torch.long, device=x.device)
            slot.index_add_(1, self._disc_owner, hot.long() * self._disc_slot)  # type: ignore[arg-type,operator]  # as above
            out[:, self.disc_tokens] = slot
        if self.cont_tokens:
            scalars = x.index_select(1, self.cont_pos).clamp(-1.0, 1.0)
            inner = self.edges[:, 1:-1]  # [n_cont, bins - 1]
            out[:, self.cont_tokens] = (scalars.unsqueeze(-1) > inner.unsqueeze(0)).sum(-1)
        return out

    def decode(self, tokens: torch.Tensor, within: torch.Tensor | None) -> torch.Tensor:
        """Activated rows ``[N, dim]`` from tokens: one-hot groups, each scalar at ``within [N, n_cont]``
        (uniforms in [0, 1)) of the way through its bin."""
        out = torch.zeros(len(tokens), self.dim, device=tokens.device)
        if self.disc_tokens:
            out.scatter_(1, tokens[:, self.disc_tokens] + self._disc_start, 1.0)
        if self.cont_tokens:
            b = tokens[:, self.cont_tokens]
            idx = torch.arange(len(self.cont_tokens), device=tokens.device)
            lo, hi = self.edges[idx, b], self.edges[idx, b + 1]
            out[:, self.cont_pos] = lo + within * (hi - lo)  # type: ignore[operator]  # given when cont_tokens
        return out
