"""The DP fit of a person table and its event table: the person (their row and all their events) is
the unit of privacy (docs/privacy.md rules 22-26, :mod:`tabsynth.privacy.two_tables`).

Nothing is read off the values to shape the model: the kinds come from the dtypes, the sequence
column's origin is a person column learned with the person table (each person's first value), the
contribution bound and every encoder come from noisy statistics, and one DP-SGD run trains the
person network and the event network together on Poisson samples of persons, one clipped gradient
per person. Events without a sequence value are left out (never named in an error), and declared
order bounds clip the values they would break.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from tabsynth.errors import DataError
from tabsynth.metadata import ColumnSpec, Metadata
from tabsynth.metadata.public import public_schema
from tabsynth.models.ar_networks import ARNet
from tabsynth.models.sequence_data import SequenceColumn, prepare
from tabsynth.models.sequence_networks import SequenceNet
from tabsynth.models.sequence_schema import event_metadata, person_metadata, start_spec
from tabsynth.privacy import PrivacySpent
from tabsynth.privacy.config import DPConfig
from tabsynth.privacy.persons import FLOOR_SIGMAS, PersonUnit, count_grid, count_law
from tabsynth.privacy.trainer import DPTrainer
from tabsynth.privacy.two_tables import PrivateTwoTables
from tabsynth.transform.identifier import IdEncoder
from tabsynth.transform.tokens import Tokenizer

#: Persons per physical batch of DP-SGD (each holds its per-sample gradients).
PHYSICAL_PERSONS = 128
#: The networks' embedding width and hidden sizes when left unset: DP-SGD per person computes a
#: gradient per person for every parameter (at 256 wide, nine times the engine's CPU on pbcseq).
DP_WIDTHS = (64, (64,))


class PersonsAndEvents(nn.Module):
    """The person network and the event network as one private module: the loss of a person is that
    of their row plus that of all their kept events, so DP-SGD clips one gradient per person."""

    def __init__(self, person: ARNet | None, events: SequenceNet) -> None:
        super().__init__()
        self.person, self.events = person, events

    def forward(self, person_tokens: torch.Tensor, orders: torch.Tensor | None, tokens: torch.Tensor,
                lengths: torch.Tensor) -> torch.Tensor:
        loss = self.events.forward_padded(person_tokens, tokens, lengths)
        if self.person is not None and orders is not None:
            loss = loss + self.person(person_tokens, orders)
        return loss


def start_column(persons: pd.DataFrame, order_by: str) -> str:
    """A fresh person column name for each person's first value of ``order_by``."""
    name = f"{order_by}_first"
    while name in persons.columns:
        name += "_"
    return name


def private_tables(events: pd.DataFrame, persons: pd.DataFrame, key: str, column: SequenceColumn
                   ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray | None]:
    """``(events, persons, values)`` as a DP fit reads them: events without a sequence value left
    out, values clipped into declared bounds, and (without a ``lower`` bound) each person's first
    value as the person column ``column.start``; ``values`` the kept events' float sequence values."""
    if column.name is None:
        return events, persons, None
    values = column.fit_private(events[column.name])
    keep = ~np.isnan(values)
    events, values = events[keep].reset_index(drop=True), values[keep]
    index = pd.Index(persons[key]).get_indexer(events[key])
    lower = column.bound(persons, column.lower)[index]
    upper = column.bound(persons, column.upper)[index]
    values = np.fmin(np.fmax(values, lower), upper)
    if column.lower is None:
        column.start = start_column(persons, column.name)
        first = np.full(len(persons), np.nan)
        np.fmin.at(first, index, values)
        persons = persons.copy()
        persons[column.start] = column.restore(first).to_numpy() if column.kind == "datetime" else first
        if column.kind == "datetime":
            persons.loc[np.isnan(first), column.start] = pd.NaT
    return events, persons, values


def private_ids(key: str, s: pd.Series) -> IdEncoder:
    """Keys in a generic format: the real ones' pattern is not read under DP."""
    if pd.api.types.is_numeric_dtype(s.dtype):
        return IdEncoder(key, "integer", start=0, dtype=str(s.dtype))
    return IdEncoder(key, "prefixed", prefix=f"{key}-", digits=6, dtype=str(s.dtype))


def expected_events(noisy_counts: np.ndarray, std: float, n_hat: int, max_events: int) -> int:
    """The kept events, estimated from the noisy events-per-person histogram and the noisy person
    count (post-processing): ``n_hat`` times the mean kept count over the cells above
    :data:`~tabsynth.privacy.persons.FLOOR_SIGMAS` noise deviations (one event each when none is)."""
    grid = count_grid()
    tops = np.append(grid[1:] - 1, grid[-1])
    kept = np.minimum((grid + tops) / 2.0, max_events)
    c = np.asarray(noisy_counts, dtype=np.float64)
    live = c >= FLOOR_SIGMAS * std
    mean = float((c[live] * kept[live]).sum() / c[live].sum()) if live.any() else 1.0
    return int(round(n_hat * mean))


def fit_private(tables: Any, owner: Any, events: pd.DataFrame, persons: pd.DataFrame, max_events: int | None,
                dp: DPConfig) -> PrivacySpent:
    """Fit ``tables`` (a :class:`~tabsynth.models.sequence.TwoTables` with no person model yet) and
    its person model under DP per person; returns the statement of the whole fit."""
    key, column = tables.key, tables.column
    events, persons, values = private_tables(events, persons, key, column)
    # each person's number of events is drawn from the law of the noisy events-per-person histogram
    # (measured for the bound anyway): as a person column it would need a histogram of its own, and
    # an end token trained by DP-SGD on a few hundred persons ends sequences far too early
    attrs = persons.drop(columns=[key])
    rising = list(tables.rising)
    data_frame = prepare(events, persons, key, column, None, values=values, rising=rising, private=True).frame
    declared = tables.metadata
    added = {column.start: start_spec(declared, column.start, attrs[column.start])} if column.start else {}
    person_meta, person_assumed = public_schema(attrs, person_metadata(declared, attrs, added)) if attrs.shape[1] \
        else (Metadata([ColumnSpec(key, "id")]), {"schema": "the person table has no column besides the key",
                                                  "kinds": {}})
    event_meta, event_assumed = public_schema(data_frame, event_metadata(declared, data_frame, column.name,
                                                                         column.integer, private=True))
    order = None if values is None else values
    config = dataclasses.replace(dp, grad_sample_mode="hooks",
                                 max_physical_batch_size=dp.max_physical_batch_size or PHYSICAL_PERSONS)
    fit = PrivateTwoTables.begin_two_tables(config, persons, person_meta, PersonUnit(
        events[key], order=order, subjects=persons[key], max_events=max_events), event_meta, owner._runtime, key)
    bound, bound_release = fit.persons, fit._bound_release
    assert bound is not None and bound_release is not None and fit.n_hat is not None, "measured by begin_two_tables"
    kept = events[bound.kept].reset_index(drop=True)
    data = prepare(kept, persons, key, column, bound.max_events, values=None if values is None else values[bound.kept],
                   rising=rising, private=True)
    if data.frame.shape[1] == 0:
        raise DataError(f"the event table has no column besides the key {key!r}; give it at least one column to learn")
    tables.ids = private_ids(key, persons[key])
    _set_bound(tables, bound, bound_release, fit.n_hat)
    tables.transformer = fit.event_transformer(data.frame, 1.0 / data.lengths[data.person], seed=owner.seed,
                                               max_categories=owner.max_categories)
    tables.tokens = Tokenizer(tables.transformer.spans_, tables.device, owner.bins)
    tables.widths = dp_widths(owner)
    tables.persons = _person_model(owner, fit, attrs, tables.widths) if attrs.shape[1] else None
    person_tokens = tables.person_tokens(persons)
    sizes = tables.persons.tokens_.sizes.tolist() if tables.persons is not None else []
    width, hidden = tables.widths
    tables.net = SequenceNet(sizes, tables.tokens.sizes.tolist(), width, hidden, tables.cap, rnn="linear").to(
        tables.device)
    trainer = fit.trainer(epochs=owner._epochs, batch_size=owner._batch_size, rule=owner._DP_STEPS,
                          device=tables.device)
    history = _train(tables, owner, trainer, person_tokens, tables._padded(data),
                     torch.as_tensor(data.lengths, device=tables.device))
    tables.loss_history = pd.DataFrame(history)
    statement = fit.statement({"schema": person_assumed["schema"], "person_kinds": person_assumed["kinds"],
                               "event_kinds": event_assumed["kinds"]})
    if tables.persons is not None:
        tables.persons.privacy_ = statement
    owner.n_subjects_ = fit.n_hat
    owner.n_rows_ = expected_events(np.asarray(bound_release.details["noisy_counts"]), bound_release.noise_multiplier,
                                    fit.n_hat, bound.max_events)
    return statement


def _set_bound(tables: Any, bound: Any, release: Any, n_hat: float) -> None:
    """The cap, the noisy shares cut and the law of events per person, from the bound's release."""
    tables.cap = bound.max_events
    tables.cut_events_ = tables.cut_persons_ = None
    tables.cut_shares_ = (bound.cut_share_events, bound.cut_share_persons)
    law = count_law(np.asarray(release.details["noisy_counts"]), release.noise_multiplier, bound.max_events, n_hat)
    tables.count_law = None if law is None else law.tolist()


def dp_widths(owner: Any) -> tuple[int, tuple[int, ...]]:
    """The networks' ``(embedding_dim, hidden)``: the owner's where set, else :data:`DP_WIDTHS`."""
    d = owner.embedding_dim if owner.embedding_dim is not None else DP_WIDTHS[0]
    return int(d), tuple(owner.hidden if owner.hidden is not None else DP_WIDTHS[1])


def _person_model(owner: Any, fit: PrivateTwoTables, attrs: pd.DataFrame, widths: tuple[int, tuple[int, ...]]) -> Any:
    """The flat model of the person table, its encoders from the noisy statistics (trained below,
    with the events)."""
    model = type(owner)(**{**owner.get_params(), "embedding_dim": widths[0], "hidden": widths[1]})
    model._runtime = owner._runtime
    model._n_global = fit.counted_rows()
    model._fit_batch = model._fit_epochs = None
    model._init_fitted(fit.person_transformer(attrs, max_categories=owner.max_categories, seed=owner.seed),
                       owner.device_)
    model.loss_history_ = pd.DataFrame()
    model.n_rows_ = fit.counted_rows()
    model._sample_calls = 0
    return model


def _train(tables: Any, owner: Any, trainer: DPTrainer, person_tokens: torch.Tensor, tokens: torch.Tensor,
           lengths: torch.Tensor) -> list[dict[str, float]]:
    """DP-SGD over persons: each Poisson batch of persons is cut to its longest kept sequence."""
    person = tables.persons
    module = PersonsAndEvents(person.net_ if person is not None else None, tables.net)

    def step(dp: DPTrainer, idx: torch.Tensor) -> dict[str, Any]:
        with dp.isolated():
            n = lengths[idx]
            steps = int(n.max()) + 1 if len(idx) else 1
            orders = person._orders(len(idx)) if person is not None else None
            dp.update(dp.module(person_tokens[idx], orders, tokens[idx, :steps], n))
        return {}

    opt = torch.optim.Adam(module.parameters(), lr=owner._lr, weight_decay=owner.l2scale)
    index = torch.arange(len(lengths), device=tables.device)
    return trainer.run(module, opt, index, step, desc="DP-TabularAR persons", verbose=owner.verbose,
                       mechanism="DP-SGD per person on the person and event networks together (Opacus, Poisson "
                                 "sampling of persons, one clipped gradient per person: their row and all their "
                                 "kept events)")
