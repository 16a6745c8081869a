"""TabularAR's network: token embeddings, per-column queries and one MLP head, as one module whose
forward returns each row's loss (so DP-SGD wraps it as it is; Opacus' ghost clipping covers its
``nn.Embedding`` and ``nn.Linear`` layers, the only ones it has).

The context of a token column is the sum of the embeddings of the tokens placed before it in the
row's order: one batched product with a 0/1 "placed before" matrix, causal by construction. The head
adds the column's query embedding, applies a ReLU and an MLP, and gives logits over the largest
vocabulary, masked to the column's own. Summing embeddings of width ``embedding_dim`` is a first
linear layer over the one-hot tokens before the column, computed without its matrix product (the
cost per token is the rest of the MLP).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class ARNet(nn.Module):
    """Autoregressive model over ``len(sizes)`` token columns of vocabularies ``sizes``."""

    # buffers
    offsets: torch.Tensor
    positions: torch.Tensor
    pad_bias: torch.Tensor

    def __init__(self, sizes: Sequence[int], embedding_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        sizes = [int(s) for s in sizes]
        self.n_tokens = len(sizes)
        self.width = max(sizes, default=1)
        self.register_buffer("offsets", torch.tensor([0] + sizes[:-1], dtype=torch.long).cumsum(0)
                             if sizes else torch.zeros(0, dtype=torch.long))
        self.register_buffer("positions", torch.arange(self.n_tokens))
        pad = torch.arange(self.width)[None, :] >= torch.tensor(sizes, dtype=torch.long).reshape(-1, 1)
        self.register_buffer("pad_bias", torch.zeros(pad.shape).masked_fill(pad, float("-inf")))
        self.tokens = nn.Embedding(max(sum(sizes), 1), embedding_dim)
        self.queries = nn.Embedding(max(self.n_tokens, 1), embedding_dim)
        nn.init.normal_(self.tokens.weight, std=1.0 / max(self.n_tokens, 1) ** 0.5)
        layers: list[nn.Module] = [nn.ReLU()]
        dim = embedding_dim
        for h in hidden:
            layers += [nn.Linear(dim, h), nn.ReLU()]
            dim = h
        self.head = nn.Sequential(*layers, nn.Linear(dim, self.width))

    def _columns(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, K]`` token column of each position, contiguous (Opacus' embedding norms view it flat)."""
        return self.positions.repeat(len(tokens), 1)

    def embed(self, tokens: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Embeddings of ``tokens`` of token columns ``columns`` (same shape)."""
        return self.tokens(tokens + self.offsets[columns])

    def logits(self, context: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Logits ``[..., width]`` of token columns ``columns [...]`` given ``context [..., d]``, padding -inf."""
        return self.head(context + self.queries(columns)) + self.pad_bias[columns]

    def context(self, tokens: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """``[B, K, d]``: per token column, the sum of the embeddings of the tokens before it in
        ``order [B, K]`` (the token column placed at each step), as one batched product with the
        0/1 matrix ``before[b, k, j] = rank_j < rank_k``."""
        rank = order.argsort(1)
        before = (rank.unsqueeze(1) < rank.unsqueeze(2)).to(self.tokens.weight.dtype)
        return torch.bmm(before, self.embed(tokens, self._columns(tokens)))

    def all_logits(self, tokens: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """``[B, K, width]`` logits of every token column under ``order``, in one batched pass."""
        return self.logits(self.context(tokens, order), self._columns(tokens))

    def forward(self, tokens: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """Per-row loss ``[B]``: cross-entropy of every token given those before it, summed over columns."""
        logits = self.all_logits(tokens, order)
        ce = F.cross_entropy(logits.reshape(-1, self.width), tokens.reshape(-1), reduction="none")
        return ce.view(tokens.shape).sum(1)
