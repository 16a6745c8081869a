"""The event network of the two-table mode: each person's events, one after another.

A person is their row (its tokens, as the flat model tokenises the person table) and their events
(the event table's tokens). Event ``t`` is predicted from a history vector: a GRU over the previous
events (each the sum of its tokens' embeddings) started from the person's vector, plus the person's
vector itself and an embedding of the position ``t``, so nothing is forgotten with a fixed window.
Within the event, token column 0 says
whether the person has another event (0) or ends here (1), then the event's tokens follow in the
table's column order, each predicted from the history plus the embeddings of the tokens before it
(TabularAR's head, :class:`~tabsynth.models.ar_networks.ARNet`). The forward pass returns one loss
per person, so a DP fit can clip whole persons: under DP the GRU is :class:`LinearGRU` (the same
cell of ``nn.Linear`` layers, whose per-person gradients Opacus computes) and the loss is
:meth:`SequenceNet.forward_padded`, every layer seeing the persons as its first dimension.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from tabsynth.models.ar_networks import ARNet

#: The recurrent cells: torch's fused GRU, or the same cell of linear layers (DP-SGD per person).
RNNS = ("gru", "linear")


class LinearGRU(nn.Module):
    """``nn.GRU``'s cell (one layer, batch first, gates ``r, z, n``) made of two ``nn.Linear``: the
    input projection of all steps in one product, the hidden one step by step."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ih = nn.Linear(dim, 3 * dim)
        self.hh = nn.Linear(dim, 3 * dim)
        bound = dim ** -0.5  # nn.GRU's initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, T, d]`` from state ``h0 [1, B, d]``: outputs ``[B, T, d]`` and the last state."""
        gi = self.ih(x)
        h, out = h0[0], []
        for t in range(x.shape[1]):
            i_r, i_z, i_n = gi[:, t].chunk(3, -1)
            h_r, h_z, h_n = self.hh(h).chunk(3, -1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            h = (1 - z) * torch.tanh(i_n + r * h_n) + z * h
            out.append(h)
        return torch.stack(out, 1), h.unsqueeze(0)


class SequenceNet(nn.Module):
    """Events of ``event_sizes`` token vocabularies, conditioned on persons of ``person_sizes``;
    ``rnn`` one of :data:`RNNS`."""

    # buffers
    person_offsets: torch.Tensor
    columns: torch.Tensor
    before: torch.Tensor

    def __init__(self, person_sizes: Sequence[int], event_sizes: Sequence[int], embedding_dim: int,
                 hidden: Sequence[int], max_events: int, rnn: str = "gru") -> None:
        super().__init__()
        person_sizes = [int(s) for s in person_sizes]
        self.n_event_tokens = len(event_sizes)
        self.events = ARNet([2, *event_sizes], embedding_dim, hidden)
        self.register_buffer("person_offsets", torch.tensor([0] + person_sizes[:-1], dtype=torch.long).cumsum(0)
                             if person_sizes else torch.zeros(0, dtype=torch.long))
        self.person = nn.Embedding(max(sum(person_sizes), 1), embedding_dim)
        nn.init.normal_(self.person.weight, std=1.0 / max(len(person_sizes), 1) ** 0.5)
        self.person.weight.requires_grad_(bool(person_sizes))  # unused without person tokens
        # row 0: the person vector's bias, row 1: the first event's input (embeddings, so that every
        # parameter sits in a layer with per-sample gradients)
        self.constants = nn.Embedding(2, embedding_dim)
        nn.init.zeros_(self.constants.weight)
        # the event's position within the person: the GRU alone counts long histories poorly
        self.positions = nn.Embedding(max_events + 1, embedding_dim)
        nn.init.zeros_(self.positions.weight)
        self.init = nn.Linear(embedding_dim, embedding_dim)
        self.rnn_kind = rnn
        self.rnn: nn.Module = nn.GRU(embedding_dim, embedding_dim, batch_first=True) if rnn == "gru" else \
            LinearGRU(embedding_dim)
        self.register_buffer("columns", torch.arange(self.n_event_tokens + 1))
        # before[j, i] = 1 when token column i precedes j within an event (the end token first)
        self.register_buffer("before", torch.ones(len(self.columns), len(self.columns)).tril(-1), persistent=False)

    def person_vector(self, person_tokens: torch.Tensor) -> torch.Tensor:
        """``[B, d]`` from the persons' tokens ``[B, Kp]`` (``Kp`` may be 0: persons without attributes)."""
        out = self.constants(torch.zeros(len(person_tokens), dtype=torch.long, device=person_tokens.device))
        if person_tokens.shape[1]:
            out = out + self.person(person_tokens + self.person_offsets).sum(1)
        return out

    def initial_state(self, person: torch.Tensor) -> torch.Tensor:
        """The GRU's ``[1, B, d]`` state before a person's first event."""
        return torch.tanh(self.init(person)).unsqueeze(0).contiguous()

    def forward(self, person_tokens: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Per-person loss ``[B]``: the end token at positions ``0..lengths`` and every token of events
        ``0..lengths-1`` (``tokens [B, T, K]`` padded, ``T > max(lengths)``), given what came before.
        Positions past a person's end are left out of every per-token product."""
        b, t, k = tokens.shape
        pos = torch.arange(t, device=tokens.device)
        rows = pos[None, :] <= lengths[:, None]
        end = (pos[None, :] >= lengths[:, None]).long()
        full = torch.cat([end.unsqueeze(-1), tokens], -1)[rows]
        cols = self.columns.expand(len(full), -1)
        emb = self.events.embed(full, cols)
        events = torch.zeros(b, t, emb.shape[-1], dtype=emb.dtype, device=emb.device).index_put(
            (rows.nonzero(as_tuple=True)), emb[:, 1:].sum(1))
        person = self.person_vector(person_tokens)
        inputs = torch.cat([self._start(b, tokens.device), events[:, :-1]], 1)
        history, _ = self.rnn(inputs, self.initial_state(person))
        history = history + person[:, None] + self.positions(pos)[None]
        context = torch.matmul(self.before, emb) + history[rows].unsqueeze(1)
        valid = torch.ones_like(full, dtype=torch.bool)
        valid[:, 1:] = (end[rows] == 0).unsqueeze(1)
        logits = self.events.logits(context[valid], cols[valid])
        ce = F.cross_entropy(logits, full[valid], reduction="none")
        owner = rows.nonzero(as_tuple=True)[0][:, None].expand(-1, k + 1)[valid]
        return torch.zeros(b, dtype=ce.dtype, device=ce.device).index_add(0, owner, ce)

    def _start(self, b: int, device: torch.device) -> torch.Tensor:
        """``[B, 1, d]``: the input before a person's first event."""
        return self.constants(torch.ones(b, 1, dtype=torch.long, device=device))

    def forward_padded(self, person_tokens: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor
                       ) -> torch.Tensor:
        """The loss of :meth:`forward` computed on the padded ``[B, T, K + 1]`` grid, positions past a
        person's end masked out of the sum: every layer sees the persons first, as per-person
        gradients (DP-SGD) need."""
        b, t, k = tokens.shape
        pos = torch.arange(t, device=tokens.device).expand(b, -1)
        rows = pos <= lengths[:, None]
        end = (pos >= lengths[:, None]).long()
        full = torch.cat([end.unsqueeze(-1), tokens], -1)
        cols = self.columns.expand(b, t, -1)
        emb = self.events.embed(full, cols)
        person = self.person_vector(person_tokens)
        inputs = torch.cat([self._start(b, tokens.device), emb[:, :-1, 1:].sum(2)], 1)
        history, _ = self.rnn(inputs, self.initial_state(person))
        history = history + person[:, None] + self.positions(pos)
        context = torch.matmul(self.before, emb) + history.unsqueeze(2)
        logits = self.events.logits(context, cols)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), full.reshape(-1), reduction="none").view(b, t, k + 1)
        valid = rows.unsqueeze(-1) & torch.cat([torch.ones_like(end, dtype=torch.bool).unsqueeze(-1),
                                                (end == 0).unsqueeze(-1).expand(-1, -1, k)], -1)
        return torch.where(valid, ce, torch.zeros_like(ce)).sum((1, 2))

    def draw_event(self, history: torch.Tensor, u: torch.Tensor, sizes: torch.Tensor, end: torch.Tensor | None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """One event of every person from ``history [B, d]``: its tokens ``[B, K + 1]`` (column 0 the
        end token, set to ``end [B]`` where that is 0 or 1, drawn where it is -1 or ``end`` is None)
        drawn by inverse CDF at uniforms ``u [B, K + 1]``, and the sum of its event tokens'
        embeddings ``[B, d]`` (the next GRU input)."""
        b = len(history)
        out = torch.zeros(b, self.n_event_tokens + 1, dtype=torch.long, device=history.device)
        context, summed = history, torch.zeros_like(history)
        for j in range(self.n_event_tokens + 1):
            col = self.columns[j].expand(b)
            cdf = torch.softmax(self.events.logits(context, col), -1).cumsum_(-1)
            value = torch.searchsorted(cdf, u[:, j:j + 1].contiguous()).squeeze(1).clamp_max(sizes[j] - 1)
            if j == 0 and end is not None:
                value = torch.where(end >= 0, end, value)
            out[:, j] = value
            e = self.events.embed(value, col)
            context = context + e
            if j:
                summed = summed + e
        return out, summed

    def generate(self, person_tokens: torch.Tensor, u: torch.Tensor, counts: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Events ``[B, cap, K]`` and their number per person ``[B]``, one position at a time for all
        persons together, from uniforms ``u [B, cap + 1, K + 1]``. ``counts [B]`` gives a person's
        number of events (-1: the end token decides)."""
        b, steps = len(person_tokens), u.shape[1]
        sizes = torch.tensor([2, *self.events.pad_bias.isfinite().sum(1)[1:].tolist()], device=u.device)
        person = self.person_vector(person_tokens)
        state = self.initial_state(person)
        x = self._start(b, u.device)[:, 0]
        tokens = torch.zeros(b, steps - 1, self.n_event_tokens, dtype=torch.long, device=u.device)
        alive = torch.ones(b, dtype=torch.bool, device=u.device)
        lengths = torch.zeros(b, dtype=torch.long, device=u.device)
        for t in range(steps):
            out, state = self.rnn(x.unsqueeze(1), state)
            history = out[:, 0] + person + self.positions.weight[t]
            end = None if counts is None else torch.where(counts >= 0, (t >= counts).long(), -1)
            if t == steps - 1:
                end = torch.ones(b, dtype=torch.long, device=u.device)
            drawn, x = self.draw_event(history, u[:, t], sizes, end)
            alive &= drawn[:, 0] == 0
            if not alive.any():
                break
            tokens[:, t] = drawn[:, 1:]
            lengths += alive.long()
        return tokens, lengths
