"""One DP fit of a person table and its event table, the person as the unit (docs/privacy.md rules 22-26).

Neighbouring data sets differ by one person: their row of the person table and all their events.
Four releases, planned from the two schemas before any row is read:

- ``preprocessing_persons``: the noisy person count and the person table's statistics (a person is
  one row there);
- ``preprocessing_events``: the event table's statistics over the kept events, each of a person's
  ``k_i`` kept events weighing ``1 / k_i`` (a person adds at most 1 to every count);
- ``events_per_person``: the histogram that chooses the contribution bound (a person is one count);
- ``training``: DP-SGD over persons, Poisson-sampled from the noisy person count, one clipped
  gradient per person (the loss of their row plus all their kept events).

The three preprocessing releases share the preprocessing share of epsilon (their RDP curves add up
to the one calibrated to it), and DP-SGD's noise is calibrated last, for the total: one accountant,
one (epsilon, delta) per person over both tables.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tabsynth.errors import PrivacyConfigError
from tabsynth.metadata import Metadata
from tabsynth.privacy.accountant import Accountant, Release
from tabsynth.privacy.config import DPConfig, resolve_delta
from tabsynth.privacy.fit import PrivateFit
from tabsynth.privacy.persons import (
    QUANTILE,
    UNITS_BOUND,
    PersonUnit,
    bound_contributions,
    count_grid,
    total_units,
)
from tabsynth.privacy.preprocessing import UNITS_ROW_COUNT, _modelled, _selects, noisy_row_count, plan, private_transformer
from tabsynth.privacy.randomness import Randomness
from tabsynth.transform import TableTransformer

PERSONS, EVENTS = "preprocessing_persons", "preprocessing_events"


def plan_two_tables(persons: Metadata, events: Metadata, accountant: Accountant, share: float
                    ) -> tuple[Release, Release, Release]:
    """Record the person table's, the event table's and the events-per-person releases, which share
    ``share``: with ``z`` calibrated to it and ``U = U_p + U_e + b`` their units, release ``j`` gets
    multiplier ``z sqrt(U / U_j)``, so their RDP curves sum to that of ``z``. From the schemas alone."""
    u_persons = total_units(persons)
    u_events = total_units(events) - UNITS_ROW_COUNT
    if u_events <= 0:
        raise PrivacyConfigError("the event table has no modelled column (all are ids or personal identifiers): "
                                 "there is nothing to learn from it; model at least one column")
    z = accountant.preprocessing_noise(share, 1.0)
    total = u_persons + u_events + UNITS_BOUND
    person_release = plan(persons, accountant, share, noise_multiplier=z * math.sqrt(total / u_persons),
                          name=PERSONS, always=True)
    event_release = plan(events, accountant, share, noise_multiplier=z * math.sqrt(total / u_events),
                         row_count=False, name=EVENTS)
    assert person_release is not None and event_release is not None, "both tables have a statistic"
    std = z * math.sqrt(total / UNITS_BOUND)
    bound = Release("events_per_person", std,
                    mechanism="gaussian (noisy histogram of events per person on a public grid; a person is one "
                              "count, L2 sensitivity 1)",
                    details={"noise_std": std, "l2_sensitivity": 1.0, "share_of_epsilon": share,
                             "grid": count_grid().tolist(), "quantile": QUANTILE})
    accountant.add(bound)
    return person_release, event_release, bound


class PrivateTwoTables(PrivateFit):
    """The accountant, the private randomness and the releases of one DP fit of two tables.

    :meth:`begin` plans every release, measures the noisy person count ``n_hat`` (which alone sets
    the default delta, the sample rate, the steps and the persons released) and the contribution
    bound :attr:`persons`; :meth:`person_transformer` and :meth:`event_transformer` build the
    encoders from noisy statistics alone, and :meth:`trainer` plans DP-SGD over persons.
    """

    def __init__(self, config: DPConfig, persons: Metadata, events: Metadata, runtime: Any,
                 key: str | None = None) -> None:
        if runtime.distributed:
            raise PrivacyConfigError("a DP fit of a person table and its event table runs in one process; "
                                     "start it without torchrun")
        self.config, self.metadata, self.runtime = config, events, runtime
        self.person_metadata = persons
        self.randomness = Randomness.for_fit(config.secure_mode, rank=runtime.rank)
        self.accountant = Accountant(config.epsilon, resolve_delta(config.delta, None, config.max_delta))
        self.accountant.unit, self.accountant.unit_key = "person", key
        self._person_release, self._preprocessing, self._bound_release = plan_two_tables(
            persons, events, self.accountant, config.preprocessing_epsilon_share)
        self._marginals = None
        self._selections = sum(_selects(s) for m in (persons, events) for s in _modelled(m))
        self.n_hat = None
        self.persons = None

    @classmethod
    def begin_two_tables(cls, config: DPConfig, subjects: pd.DataFrame, person_metadata: Metadata, unit: PersonUnit,
                         event_metadata: Metadata, runtime: Any, key: str | None = None) -> PrivateTwoTables:
        """Plan the releases, measure the noisy person count (``subjects`` has one row per person) and
        the contribution bound of ``unit`` (the event rows' keys and order); ``key`` names the person
        key column in the statement."""
        fit = cls(config, person_metadata, event_metadata, runtime, key)
        fit.n_hat = noisy_row_count(subjects, fit._person_release, fit.randomness, runtime)
        fit.accountant.set_delta(resolve_delta(config.delta, fit.n_hat, config.max_delta))
        window_rng = np.random.default_rng(fit.randomness.secret_seed())
        assert fit._bound_release is not None, "planned in __init__"
        fit.persons = bound_contributions(unit, fit._bound_release, fit.n_hat, fit.randomness, runtime,
                                          rng=window_rng)
        return fit

    def person_transformer(self, persons: pd.DataFrame, *, max_categories: int, seed: int | None) -> TableTransformer:
        """Encoders of the person table (without its key) from its noisy statistics alone."""
        return private_transformer(persons, self.person_metadata, self.accountant, self._person_release,
                                   n_hat=self.counted_rows(), max_modes=10, max_categories=max_categories,
                                   rng=np.random.default_rng(seed), noise_rng=self.randomness, runtime=self.runtime,
                                   selections=self._selections, table="persons").transformer

    def event_transformer(self, events: pd.DataFrame, weights: np.ndarray, *, max_categories: int,
                          seed: int | None) -> TableTransformer:
        """Encoders of the kept events (``weights``: ``1 / k_i`` for each of person ``i``'s ``k_i``
        kept events) from their noisy weighted statistics alone."""
        assert self.persons is not None, "measured by begin_two_tables"
        return private_transformer(events, self.metadata, self.accountant, self._preprocessing,
                                   n_hat=self.counted_rows(), max_modes=10, max_categories=max_categories,
                                   rng=np.random.default_rng(seed), noise_rng=self.randomness, runtime=self.runtime,
                                   weights=weights, max_cells=self.persons.max_events, selections=self._selections,
                                   table="events").transformer
