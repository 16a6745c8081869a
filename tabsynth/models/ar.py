"""TabularAR: an autoregressive model over discretised columns (in the spirit of TabularARGN).

Each encoded row becomes tokens (:class:`~tabsynth.transform.tokens.Tokenizer`: one per discrete
span, one binned token per continuous scalar), and one network predicts every token from the sum of
the embeddings of the tokens before it. Trained on a fresh random order of the table's columns for
every row (``order="any"``), the model can generate in any order: conditions on any set of
categorical columns are met by placing them first with their tokens fixed, every row honouring
them without rejection. Sampling walks the order one token column at a time for a whole block of
rows, and writes the activated rows (one-hot groups, scalars in [-1, 1]) the transformer decodes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from tabsynth.errors import PrivacyConfigError
from tabsynth.models.ar_networks import ARNet
from tabsynth.models.base import BaseSynthesizer
from tabsynth.models.generation import Condition, Requested
from tabsynth.models.marginal_matching import MarginalMatching
from tabsynth.models.params import Hyperparameters
from tabsynth.models.sequence_api import TwoTableMixin
from tabsynth.models.stopping import EarlyStopping, split_validation, validation_loss
from tabsynth.models.training import PlainTrainer, shuffled
from tabsynth.privacy.config import DPConfig
from tabsynth.privacy.marginals import NoisyMarginals
from tabsynth.privacy.trainer import DPTrainer
from tabsynth.transform.tokens import DEFAULT_BINS, Tokenizer

#: Training orders: a random column order per row (any-order), or the table's column order.
ORDERS = ("any", "fixed")


class TabularAR(TwoTableMixin, MarginalMatching, BaseSynthesizer):
    """Autoregressive model over tokenised columns; with ``fit(events, subjects=..., key=...)`` a person
    table and its event table together (:mod:`tabsynth.models.sequence_api`).

    Args:
        epochs: passes over the data (without DP, early stopping usually ends sooner).
        batch_size: rows per step (expected Poisson batch under DP).
        embedding_dim: width of the token and query embeddings; the context of a column is the sum of
            the embeddings of the tokens before it, plus its query (the MLP's first layer). Left unset,
            a two-table fit under DP uses 64: DP-SGD per person computes a gradient per person for
            every parameter, and the narrower networks cost a tenth of the CPU.
        hidden: hidden sizes of the MLP head after that first layer.
        bins: bins of each continuous scalar (edges a public function of ``bins`` alone).
        order: ``"any"`` (a random column order per training row; conditions are met directly) or
            ``"fixed"`` (the table's column order; conditions by rejection); under DP one order
            learns much more from the few noisy steps (suite: benchmarks/results/suite.md,
            ``ts-ar-dp`` against ``ts-ar-fixed-dp``).
        lr: Adam learning rate (halved on validation plateaus without DP; larger under DP: few
            large noisy steps).
        early_stopping: hold out 10% of the rows and stop when their loss has not improved for 4
            epochs, keeping the best weights. Under DP it cannot be turned on (the held-out loss
            would be an unaccounted statistic of real rows).
        l2scale: Adam weight decay.
        marginal_weight: under DP, learning rate of the marginal-matching steps (exact model
            marginals of the empty and one-token contexts against the noisy ones), relative to ``lr``;
            at 0 no marginals are measured and their share of epsilon goes to DP-SGD (on Adult at
            epsilon 1, 0.1 lowered quality from 0.79 to 0.73 and 1.0 to 0.54: the ar_quick
            benchmark in the git history).
        numerical, max_categories, device, seed, verbose, precision, epsilon, delta, max_grad_norm, dp:
            as for :class:`~tabsynth.models.gan.CTGAN`.
    """

    embedding_dim: int | None
    hidden: Sequence[int] | None
    bins: int
    order: str | None
    lr: float | None
    l2scale: float
    early_stopping: bool | None

    _DEFAULTS = {**Hyperparameters._DEFAULTS, "epochs": (100, None), "batch_size": (None, None),
                 "order": ("any", "fixed"), "embedding_dim": (256, 256), "hidden": ((256,), (256,))}

    _RULES = {"batch_size": ("the largest power of two giving 64 steps per epoch, 32 to 512 rows", None),
              "embedding_dim": (None, "256 (a two-table fit: 64)"),
              "hidden": (None, "(256,) (a two-table fit: (64,))"),
              "lr": ("1e-3 * sqrt(batch_size / 32)", None),
              "early_stopping": ("on (10% of the rows held out)", "off")}

    def __init__(self, epochs: int | None = None, batch_size: int | None = None, embedding_dim: int | None = None,
                 hidden: Sequence[int] | None = None, bins: int = DEFAULT_BINS, order: str | None = None,
                 lr: float | None = None, l2scale: float = 1e-6, early_stopping: bool | None = None,
                 marginal_weight: float = 0.0,
                 numerical: str = "mode", max_categories: int = 500, device: str = "auto", seed: int | None = None,
                 verbose: bool = True, precision: str = "fp32", epsilon: float | None = None,
                 delta: float | None = None, max_grad_norm: float | None = None, dp: DPConfig | None = None) -> None:
        self._store(locals())

    @property
    def _lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return 1e-2 if self._private else 1e-3 * math.sqrt(self._batch_size / 32)

    @property
    def _embedding_dim(self) -> int:
        return int(self._resolved("embedding_dim"))

    @property
    def _hidden(self) -> Sequence[int]:
        return tuple(self._resolved("hidden"))

    @property
    def _order(self) -> str:
        return self._resolved("order")

    @property
    def _batch_size(self) -> int:
        if self.batch_size is not None or self._private:
            return super()._batch_size
        n = getattr(self, "_n_global", None) or 1
        return int(min(512, max(32, 2 ** int(math.log2(max(n / 64, 1))))))

    def _uses_marginals(self) -> bool:
        """Only the any-order model with ``marginal_weight > 0`` reads them."""
        return super()._uses_marginals() and self._order == "any"

    def _check_params(self) -> list[str]:
        problems = super()._check_params()
        if self._order not in ORDERS:
            problems.append(f"order must be one of {', '.join(map(repr, ORDERS))}, got {self.order!r}")
        if not isinstance(self.bins, int) or isinstance(self.bins, bool) or self.bins < 2:
            problems.append(f"bins must be an integer of at least 2, got {self.bins!r}")
        if self.early_stopping not in (None, True, False):
            problems.append(f"early_stopping must be True, False or None, got {self.early_stopping!r}")
        elif self.early_stopping and self._private:
            raise PrivacyConfigError("TabularAR: early_stopping=True under DP would choose the weights by a loss on "
                                     "held-out real rows that no accountant charges; leave it unset (DP fits "
                                     "train for the planned steps)")
        return problems

    # --- networks -------------------------------------------------------------------------------
    def _build(self, data_dim: int) -> None:
        self.tokens_ = Tokenizer(self.layout_.spans, self.device_, self.bins)
        self.net_ = ARNet(self.tokens_.sizes.tolist(), self._embedding_dim, self._hidden).to(self.device_)

    def _modules(self) -> dict[str, nn.Module]:
        return {"net": self.net_}

    def _orders(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[n, K]`` token columns in generation order: per row a random order of the table's columns
        (``order="any"``; a column's tokens stay together, in their own order), else the fixed one."""
        tok = self.tokens_
        steps = torch.arange(tok.n_tokens, device=self.device_)
        if self._order == "fixed" or tok.n_columns < 2:
            return steps.expand(n, -1)
        rank = torch.rand(n, tok.n_columns, device=self.device_, generator=generator).argsort(1).argsort(1)
        return (rank[:, tok.columns] * tok.n_tokens + steps).argsort(1)

    # --- training -------------------------------------------------------------------------------
    def _train(self, data: torch.Tensor) -> list[dict[str, float]]:
        """Adam on random orders; with early stopping (the default) 10% of the rows are held out and
        decide when to stop, and the best epoch's weights are kept."""
        tokens, valid = self.tokens_.encode(data), None
        if self.early_stopping is not False:
            tokens, valid = split_validation(tokens, self._n_global)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self._lr, weight_decay=self.l2scale)
        scaler = self._grad_scaler()
        bs = min(self._batch_size, len(tokens))
        self._fit_batch = bs
        stopper = EarlyStopping(self.net_, opt, self._runtime) if valid is not None else None
        valid_orders = self._orders(len(valid), torch.Generator(self.device_).manual_seed(0)) if stopper else None  # type: ignore[arg-type]  # stopper implies valid

        def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
            t = tokens.index_select(0, idx)
            with self._autocast():
                loss = self.net_(t, self._orders(len(t))).float()
            opt.zero_grad(set_to_none=True)
            self._backward_step(loss.sum() / max(len(t), 1), opt, self.net_, scaler)
            return {"loss": loss.detach().sum() / max(len(t), 1)}

        def validate() -> tuple[float, int]:
            # only called with the stopper, so with the held-out rows
            rows = torch.arange(len(valid), device=self.device_)  # type: ignore[arg-type]
            return validation_loss(lambda i: self.net_(valid[i], valid_orders[i]), rows, 4 * bs), len(valid)  # type: ignore[arg-type,index]

        trainer = PlainTrainer(epochs=self._epochs, desc="TabularAR", verbose=self.verbose, runtime=self._runtime,
                               stopper=stopper, validate=validate)
        steps = math.ceil(self._n_global / bs)
        history = trainer.run(step, shuffled(len(tokens), bs, steps, self._runtime, self.device_))
        self._fit_epochs = len(history)
        return history

    def _train_private(self, data: torch.Tensor, trainer: DPTrainer, cond_counts: list[list[float]],
                       marginals: NoisyMarginals | None) -> list[dict[str, float]]:
        """DP-SGD on the whole network as one private module (docs/privacy.md rule 13).

        The rows are tokenised one Poisson batch at a time inside the private step, whose random
        orders come from the secret stream (their number follows the private batch size); no loss
        on real rows is recorded. With DP marginals, each DP step is followed by a plain step that
        pulls the model's exact 1- and 2-way marginals (read off the empty and one-token contexts:
        no row is read, the hooks are off) towards the noisy ones: post-processing.
        """
        use_marginals = marginals is not None and self._uses_marginals()
        opt_m = (torch.optim.Adam(self.net_.parameters(), lr=self._lr * self.marginal_weight)
                 if use_marginals else None)
        targets = _MarginalTargets(self.tokens_, self.layout_, marginals) if use_marginals else None  # type: ignore[arg-type]  # use_marginals implies marginals

        def step(dp: DPTrainer, x: torch.Tensor) -> dict[str, torch.Tensor]:
            with dp.isolated():
                tokens = self.tokens_.encode(x)
                dp.update(dp.module(tokens, self._orders(len(tokens))))
            if not use_marginals or not dp.completes:
                return {}
            with dp.hooks_off():
                return {"marginal_loss": self._marginal_step(opt_m, targets)}  # type: ignore[arg-type]  # both set with use_marginals

        opt = torch.optim.Adam(self.net_.parameters(), lr=self._lr, weight_decay=self.l2scale)
        return trainer.run(self.net_, opt, data, step, desc="DP-TabularAR", verbose=self.verbose,
                           mechanism="DP-SGD on the whole autoregressive network (Opacus, Poisson sampling, "
                                     "per-sample clipping)")

    def _marginal_step(self, opt_m: torch.optim.Optimizer, targets: _MarginalTargets) -> torch.Tensor:
        loss = targets.loss(self.net_)
        opt_m.zero_grad(set_to_none=True)
        loss.backward()
        self._sync_gradients(self.net_)
        opt_m.step()
        opt_m.zero_grad(set_to_none=True)
        return loss.detach()

    # --- sampling -------------------------------------------------------------------------------
    def _direct_conditions(self, conds: list[Requested]) -> list[Requested]:
        """Every condition met directly by the any-order model (the conditioned columns come first
        with their tokens fixed); the fixed-order model meets them by rejection."""
        return list(conds) if self._order == "any" else []

    def _draws(self, n: int, condition: Condition | None, generator: torch.Generator) -> dict[str, Any]:
        """One uniform per token column (inverse-CDF draw) and per scalar (place in its bin), the
        generation order, and the fixed tokens of ``condition`` (``(group, slot)`` pairs; -1: free)."""
        tok = self.tokens_
        fixed = torch.full((n, tok.n_tokens), -1, dtype=torch.long, device=self.device_)
        first = torch.zeros(tok.n_tokens, dtype=torch.long, device=self.device_)
        spans = self.transformer_.conditional_spans_
        for group, slot in condition.pairs if condition is not None else ():
            k = tok.token_of_span(spans[group].start)
            fixed[:, k] = slot
            first[tok.columns == tok.columns[k]] = -1
        steps = torch.arange(tok.n_tokens, device=self.device_)
        order = (first * tok.n_tokens + steps).argsort().expand(n, -1)
        return {"u": torch.rand(n, tok.n_tokens, device=self.device_, generator=generator),
                "within": torch.rand(n, len(tok.cont_tokens), device=self.device_, generator=generator),
                "order": order, "fixed": fixed}

    def _generate_block(self, draws: dict[str, Any]) -> torch.Tensor:
        tok, net = self.tokens_, self.net_
        u, order, fixed = draws["u"], draws["order"], draws["fixed"]
        n = len(u)
        tokens = torch.zeros(n, tok.n_tokens, dtype=torch.long, device=self.device_)
        context = torch.zeros(n, self._embedding_dim, device=self.device_)
        for j in range(tok.n_tokens):
            col = order[:, j]
            cdf = torch.softmax(net.logits(context, col), dim=-1).cumsum_(-1)
            drawn = torch.searchsorted(cdf, u.gather(1, col[:, None])).squeeze(1)
            drawn = torch.minimum(drawn, tok.sizes[col] - 1)  # rounding can leave u above the last cdf value
            pinned = fixed.gather(1, col[:, None]).squeeze(1)
            value = torch.where(pinned >= 0, pinned, drawn)
            tokens.scatter_(1, col[:, None], value[:, None])
            context = context + net.embed(value, col)
        return tok.decode(tokens, draws["within"])


class _MarginalTargets:
    """The noisy marginals of the discrete groups as token-column tables, and the model's exact ones.

    The any-order network gives a column's marginal as its distribution at the empty context, and a
    pair's joint as ``p(a) p(b | a)`` from the one-token contexts of ``a``'s values (one batched
    pass for all pairs): the KL from the noisy tables, averaged, with no row involved."""

    def __init__(self, tok: Tokenizer, layout: Any, marginals: NoisyMarginals) -> None:
        starts = [sp.start for sp in layout.disc_spans]
        dev = self.device = tok.device
        self.sizes = tok.sizes.tolist()
        self.singles = [tok.token_of_span(starts[g]) for g in marginals.singles]
        self.pairs = [(tok.token_of_span(starts[g]), tok.token_of_span(starts[h])) for g, h in marginals.pairs]
        self.n_tables = len(self.singles) + len(self.pairs)
        # one-token contexts: every value of every pair's first column, asking for its second
        a_cols = [a for a, _ in self.pairs for _ in range(self.sizes[a])]
        self.values = torch.tensor([v for a, _ in self.pairs for v in range(self.sizes[a])], dtype=torch.long,
                                   device=dev)
        self.a_cols = torch.tensor(a_cols, dtype=torch.long, device=dev)
        self.b_cols = torch.tensor([b for a, b in self.pairs for _ in range(self.sizes[a])], dtype=torch.long,
                                   device=dev)
        self.target = torch.cat([t.reshape(-1) for t in marginals.one_way + marginals.two_way])

    def loss(self, net: ARNet) -> torch.Tensor:
        every = torch.arange(len(self.sizes), device=self.device)
        first = torch.softmax(net.logits(torch.zeros(len(every), net.queries.embedding_dim, device=self.device),
                                         every), -1)
        cond = torch.softmax(net.logits(net.embed(self.values, self.a_cols), self.b_cols), -1)
        parts = [first[col, : self.sizes[col]] for col in self.singles]
        row = 0
        for a, b in self.pairs:
            rows = cond[row:row + self.sizes[a], : self.sizes[b]]
            parts.append((first[a, : self.sizes[a], None] * rows).reshape(-1))
            row += self.sizes[a]
        model = torch.cat(parts)
        keep = self.target > 0
        t = self.target[keep]
        return (t * (t.log() - model[keep].clamp_min(1e-8).log())).sum() / max(self.n_tables, 1)
