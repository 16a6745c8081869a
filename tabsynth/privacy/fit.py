"""One DP fit's budget, spent in order: the preprocessing release (noisy row count, encoder
statistics), the marginals release, then training (docs/privacy.md rules 3, 4, 15, 16).

A model that trains by DP-SGD asks :meth:`PrivateFit.trainer` for a :class:`~tabsynth.privacy.
trainer.DPTrainer`; one fitted to DP statistics alone uses :meth:`PrivateFit.transformer` and
:meth:`PrivateFit.marginals` and never trains on rows. Either way :meth:`PrivateFit.statement`
composes everything into the one (epsilon, delta) of the fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from tabsynth.errors import PrivacyConfigError
from tabsynth.metadata import Metadata
from tabsynth.privacy.accountant import Accountant, Release
from tabsynth.privacy.config import DPConfig, resolve_delta
from tabsynth.privacy.marginals import NoisyMarginals, measure_marginals, plan_marginals
from tabsynth.privacy.persons import ContributionBound, PersonUnit, bound_contributions, count_persons, plan_persons
from tabsynth.privacy.preprocessing import condition_counts, noisy_row_count, plan, private_transformer
from tabsynth.privacy.randomness import Randomness
from tabsynth.privacy.spent import PrivacySpent
from tabsynth.privacy.trainer import DPTrainer, StepRule
from tabsynth.transform import TableTransformer
from tabsynth.transform.layout import SpanLayout


class PrivateFit:
    """The accountant, the private randomness and the planned releases of one DP fit.

    Made by :meth:`begin`, which plans every release at a planning delta before any row is read,
    then measures the noisy row count ``n_hat``: from there on only ``n_hat`` is used (the default
    delta, the sample rate, the steps, the released rows), never the exact count.
    """

    def __init__(self, config: DPConfig, metadata: Metadata, runtime: Any, *, persons: bool = False) -> None:
        self.config, self.metadata, self.runtime = config, metadata, runtime
        self.randomness = Randomness.for_fit(config.secure_mode, rank=runtime.rank)
        self.accountant = Accountant(config.epsilon, resolve_delta(config.delta, None, config.max_delta))
        self._bound_release: Release | None = None
        if persons:
            self.accountant.unit = "person"
            self._preprocessing, self._bound_release = plan_persons(metadata, self.accountant,
                                                                    config.preprocessing_epsilon_share)
        else:
            self._preprocessing = plan(metadata, self.accountant, config.preprocessing_epsilon_share)
        self._marginals = plan_marginals(self.accountant, config.marginal_epsilon_share)
        self.n_hat: int | None = None
        self.persons: ContributionBound | None = None

    @classmethod
    def begin(cls, config: DPConfig, df: pd.DataFrame, metadata: Metadata, runtime: Any, *,
              persons: PersonUnit | None = None) -> PrivateFit:
        """Plan the releases and measure the noisy row count; the final delta is fixed from it.

        With ``persons`` (an event table's person key, docs/privacy.md rules 22-25) the unit is the
        person: ``n_hat`` is the noisy person count, the contribution bound is applied
        (:attr:`persons`: pass ``fit.persons.select(df)`` to :meth:`transformer`) and every
        statistic weighs a person's kept events to sum to 1."""
        fit = cls(config, metadata, runtime, persons=persons is not None)
        if persons is None:
            n_hat = noisy_row_count(df, fit._preprocessing, fit.randomness, runtime)
        else:
            n_hat = noisy_row_count(df, fit._preprocessing, fit.randomness, runtime, count=count_persons(persons))
        fit.n_hat = n_hat
        fit.accountant.set_delta(resolve_delta(config.delta, n_hat, config.max_delta))
        if persons is not None:
            assert fit._bound_release is not None, "planned by plan_persons"
            window_rng = np.random.default_rng(fit.randomness.secret_seed())
            fit.persons = bound_contributions(persons, fit._bound_release, n_hat, fit.randomness, runtime,
                                              rng=window_rng)
        return fit

    def counted_rows(self) -> int:
        """The noisy row (or person) count measured by :meth:`begin`."""
        if self.n_hat is None:
            raise RuntimeError("start a private fit with PrivateFit.begin, which measures the noisy row count")
        return self.n_hat

    def trainer(self, *, epochs: int | None, batch_size: int | None, rule: StepRule,
                device: torch.device) -> DPTrainer:
        """DP-SGD planned over ``n_hat`` rows (``rule`` sizes what is None); sigma is calibrated for the
        whole fit."""
        return DPTrainer(self.accountant, self.config, self.randomness, self.runtime, n_hat=self.counted_rows(),
                         epochs=epochs, batch_size=batch_size, rule=rule, device=device)

    def transformer(self, df: pd.DataFrame, *, max_categories: int, seed: int | None
                    ) -> tuple[TableTransformer, list[list[float]]]:
        """Encoders built from the preprocessing release alone, and the noisy counts of every
        conditional group's slots; under torchrun, rank 0's for every rank. Per person, ``df`` is
        the kept events (``self.persons.select(events)``), weighted by ``self.persons.weights``."""
        bound = self.persons
        if bound is not None and len(df) != len(bound.weights):
            raise PrivacyConfigError(f"the contribution bound kept {len(bound.weights)} events, got {len(df)} rows: "
                                     "pass fit.persons.select(events)")
        stats = private_transformer(df, self.metadata, self.accountant, self._preprocessing, n_hat=self.counted_rows(),
                                    max_modes=10, max_categories=max_categories, rng=np.random.default_rng(seed),
                                    noise_rng=self.randomness, runtime=self.runtime,
                                    weights=None if bound is None else bound.weights,
                                    max_cells=1 if bound is None else bound.max_events)
        transformer, counts = stats.transformer, condition_counts(stats)
        if self.runtime.distributed:  # their mixture fits draw from rank 0's RNG
            state, counts = self.runtime.broadcast_object((transformer.to_dict(), counts))
            transformer = TableTransformer.from_dict(state)
        return transformer, counts

    def marginals(self, data: torch.Tensor, layout: SpanLayout) -> NoisyMarginals | None:
        """The noisy 1- and 2-way marginals of the encoded rows (None when none is planned or none
        rises above the noise)."""
        if self._marginals is None:
            return None
        return measure_marginals(data, layout, self._marginals, self.randomness, runtime=self.runtime)

    def statement(self, assumptions: dict[str, Any] | None) -> PrivacySpent:
        """Every release composed into the fit's (epsilon, delta), with what was taken as public."""
        return self.accountant.statement(randomness=self.randomness.mode, assumptions=assumptions)
