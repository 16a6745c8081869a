"""The two-table mode of TabularAR: a person table and its event table, learned and generated together.

The person table (without its key) is learned by the flat TabularAR; the events by
:class:`~tabsynth.models.sequence_networks.SequenceNet`, conditioned on each person's row. Keys are
regenerated in the key's format (never learned), the sequence column is generated as gaps (so order
holds within every person), and a learned end token sets the number of events per person, up to a
cap (by default the 99th percentile of events per person; the events over it are counted). Training
batches whole persons, padded to the longest person of the batch with masks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from tabsynth.datasets import Sequences
from tabsynth.errors import ConfigError, DataError, InvalidConditionError
from tabsynth.models.device import make_generator
from tabsynth.models.sequence_data import Prepared, SequenceColumn, assemble, prepare
from tabsynth.models.sequence_networks import SequenceNet
from tabsynth.models.sequence_schema import event_metadata
from tabsynth.models.stopping import VALIDATION_SHARE, EarlyStopping, validation_loss
from tabsynth.models.training import PlainTrainer, shuffled
from tabsynth.transform import TableTransformer
from tabsynth.transform.identifier import IdEncoder
from tabsynth.transform.tokens import Tokenizer

#: Persons generated together: their random numbers are drawn as one block, so a seed gives the
#: same tables whatever the device.
PERSON_CHUNK = 4_096


class TwoTables:
    """The fitted two-table state of a TabularAR: its person model, event encoders and network.

    Attributes:
        cap: most events per person; ``cut_events_`` events of ``cut_persons_`` persons were over it
            (under DP None: ``cut_shares_`` holds the noisy shares of events and persons cut).
        loss_history: the event network's loss per epoch.
    """

    def __init__(self, owner: Any, persons: Any, key: str, column: SequenceColumn, person_columns: list[str],
                 event_columns: list[str]) -> None:
        self.owner, self.persons, self.key, self.column = owner, persons, key, column
        self.person_columns, self.event_columns = person_columns, event_columns
        self.device = owner.device_
        self.cut_shares_: tuple[float, float] | None = None
        #: The event network's embedding width and hidden sizes.
        self.widths: tuple[int, tuple[int, ...]] = (0, ())
        #: The person column the person model learns each person's number of (kept) events in.
        self.count_column: str | None = None
        #: Under DP: the law of each person's number of events ``0..cap`` read off the noisy
        #: events-per-person histogram (None: the end token decides).
        self.count_law: list[float] | None = None
        #: The event columns that never fall within a person, each with the bounds its values are kept in.
        self.rising: dict[str, tuple[float, float] | None] = {}
        #: Declared metadata of both tables (None: detected); read by the fit only, never saved.
        self.metadata: Any = None

    # --- fit -------------------------------------------------------------------------------------
    def fit(self, events: pd.DataFrame, subjects: pd.DataFrame, max_events: int | None) -> TwoTables:
        """Learn the events of ``subjects``' persons (the person model is fitted already)."""
        self.ids = IdEncoder.fit(self.key, subjects[self.key])
        data = prepare(events, subjects, self.key, self.column, max_events, rising=list(self.rising))
        self.cap, self.cut_events_, self.cut_persons_ = data.cap, data.cut, data.cut_persons
        self.cut_shares_ = None
        if data.frame.shape[1] == 0:
            raise DataError(f"the event table has no column besides the key {self.key!r}; give it at least one "
                            "column to learn, or declare its order with order_by")
        if data.frame.shape[0] == 0:
            raise DataError("no person has an event; the event table needs at least one row")
        owner = self.owner
        self.transformer = TableTransformer(numerical=owner.numerical, max_categories=owner.max_categories,
                                            seed=owner.seed if owner.seed is not None else 0)
        self.transformer.fit(data.frame, event_metadata(self.metadata, data.frame, self.column.name,
                                                        self.column.integer, private=False))
        self.tokens = Tokenizer(self.transformer.spans_, self.device, owner.bins)
        person_tokens = self.person_tokens(subjects)
        sizes = self.persons.tokens_.sizes.tolist() if self.persons is not None else []
        self.widths = (owner._embedding_dim, tuple(owner._hidden))
        self.net = SequenceNet(sizes, self.tokens.sizes.tolist(), *self.widths, self.cap).to(
            self.device)
        if owner.verbose and data.cut:
            print(f"tabsynth TabularAR: {data.cut} events of {data.cut_persons} persons are over the cap of "
                  f"{data.cap} events per person and were left out")
        self.loss_history = _Trainer(self, owner).run(person_tokens, self._padded(data), torch.as_tensor(
            data.lengths, device=self.device))
        return self

    def _padded(self, data: Prepared) -> torch.Tensor:
        """``[P, cap + 1, K]`` tokens of every person's events, zeros past their end."""
        encoded = torch.from_numpy(self.transformer.transform(data.frame)).to(self.device)
        flat = self.tokens.encode(encoded)
        out = torch.zeros(len(data.lengths), self.cap + 1, self.tokens.n_tokens, dtype=torch.long,
                          device=self.device)
        out[torch.as_tensor(data.person, device=self.device), torch.as_tensor(data.position, device=self.device)] = flat
        return out

    def person_tokens(self, subjects: pd.DataFrame) -> torch.Tensor:
        """``[P, Kp]`` tokens of person rows as the person model tokenises them (``Kp = 0`` without one)."""
        if self.persons is None or not len(subjects):
            width = self.persons.tokens_.n_tokens if self.persons is not None else 0
            return torch.zeros(len(subjects), width, dtype=torch.long, device=self.device)
        attrs = subjects[self.persons.metadata_.column_names]
        encoded = torch.from_numpy(self.persons.transformer_.transform(attrs)).to(self.device)
        return self.persons.tokens_.encode(encoded)

    # --- sample ----------------------------------------------------------------------------------
    def sample(self, n_subjects: int | None, subjects: pd.DataFrame | None, seed: int,
               conditions: dict[str, Any] | None, max_tries: int, id_offset: int = 0) -> Sequences:
        """Persons (``n_subjects`` new ones, or the rows of ``subjects``) and their events."""
        rng = np.random.default_rng([seed, 1])
        persons = self._persons(n_subjects, subjects, seed, conditions, max_tries, rng, id_offset)
        events = self.events_of(persons, int(rng.integers(2**31)), rng)
        return Sequences(persons[self.person_columns], events, self.key, self.column.name)

    def _learned_columns(self) -> list[str]:
        """The person columns the models learned: the person table's, and the first sequence value
        when a DP fit learned it as a person column."""
        extra = [c for c in (self.column.start, self.count_column) if c is not None]
        return self.person_columns + extra

    def _persons(self, n: int | None, subjects: pd.DataFrame | None, seed: int, conditions: dict[str, Any] | None,
                 max_tries: int, rng: np.random.Generator, id_offset: int) -> pd.DataFrame:
        if subjects is not None:
            if conditions:
                raise InvalidConditionError("conditions apply to generated persons; with subjects=df the persons are "
                                            "given: filter df instead")
            return self._given(subjects, rng, id_offset)
        assert n is not None, "n_subjects is given when subjects is not"
        self._check_conditions(conditions)
        if self.persons is None:
            persons = pd.DataFrame(index=range(n))
        else:
            persons = self.persons.sample(n, seed=seed, conditions=conditions, max_tries=max_tries)
        persons.insert(0, self.key, self._fresh_ids(len(persons), rng, id_offset))
        return persons[self._learned_columns()]

    def _check_conditions(self, conditions: dict[str, Any] | None) -> None:
        """Conditions name columns of the person table (not what the models learn beside it)."""
        if not conditions:
            return
        columns = [c for c in self.person_columns if c != self.key]
        if not columns:
            raise InvalidConditionError("the person table has no column besides the key, so there is nothing to "
                                        "condition on")
        unknown = [c for c in conditions if c not in columns]
        if unknown:
            raise InvalidConditionError(f"cannot condition on {', '.join(map(repr, unknown))}: not a column of the "
                                        f"person table; its columns: {', '.join(columns)}")

    def _fresh_ids(self, n: int, rng: np.random.Generator, id_offset: int) -> np.ndarray:
        return self.ids.inverse_transform(np.zeros((n, 0)), rng, id_offset).to_numpy()

    def _given(self, subjects: pd.DataFrame, rng: np.random.Generator, id_offset: int) -> pd.DataFrame:
        if not isinstance(subjects, pd.DataFrame):
            raise ConfigError(f"subjects must be a pandas DataFrame of person rows, got {type(subjects).__name__}")
        missing = [c for c in self.person_columns if c != self.key and c not in subjects.columns]
        if missing:
            raise DataError(f"subjects lacks the person columns {missing}; give every column of the person table "
                            "the model was fitted on (the key may be left out: fresh ids are made)")
        persons = subjects.reset_index(drop=True).copy()
        if self.key not in persons.columns:
            persons.insert(0, self.key, self._fresh_ids(len(persons), rng, id_offset))
        elif persons[self.key].isna().any() or persons[self.key].duplicated().any():
            raise DataError(f"the key column {self.key!r} of subjects has missing or repeated values; give each person "
                            "one id, or drop the column to get fresh ids")
        missing = [c for c in self._learned_columns() if c not in persons.columns]
        if missing:  # what the person model learned beside the table (first value, number of events): drawn
            drawn = self.persons.sample(len(persons), seed=int(rng.integers(2**31)))
            for name in missing:
                persons[name] = drawn[name].to_numpy()
        return persons[self._learned_columns()]

    def events_of(self, persons: pd.DataFrame, seed: int, rng: np.random.Generator) -> pd.DataFrame:
        """Events of the person rows ``persons`` (their key and attributes), generated block by block."""
        gen = make_generator(seed, self.device)
        tokens = self.person_tokens(persons)
        given = self._counts(persons, rng)
        frames, lengths = [], []
        with torch.no_grad():
            for start in range(0, len(persons), PERSON_CHUNK):
                part = tokens[start:start + PERSON_CHUNK]
                u = torch.rand(len(part), self.cap + 1, self.tokens.n_tokens + 1, device=self.device, generator=gen)
                within = torch.rand(len(part), self.cap, len(self.tokens.cont_tokens), device=self.device,
                                    generator=gen)
                events, n = self.net.generate(part, u, None if given is None else given[start:start + PERSON_CHUNK])
                mask = torch.arange(self.cap, device=self.device)[None, :] < n[:, None]
                matrix = self.tokens.decode(events[mask], within[mask])
                frames.append(self.transformer.inverse_transform(matrix.cpu().numpy(), rng=rng, one_hot=True))
                lengths.append(n.cpu().numpy())
        decoded = pd.concat(frames, ignore_index=True) if frames else self.transformer.inverse_transform(
            np.zeros((0, self.transformer.output_dim_), dtype=np.float32), rng=rng, one_hot=True)
        counts = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        return assemble(decoded, counts, persons, self.key, self.column, self.event_columns, self.rising)

    def _counts(self, persons: pd.DataFrame, rng: np.random.Generator) -> torch.Tensor | None:
        """``[P]`` each person's number of events from the count column, at most the cap (-1 where
        it is missing: the end token decides), else drawn from :attr:`count_law`, or None."""
        if self.count_column is None or self.count_column not in persons.columns:
            if self.count_law is None:
                return None
            drawn = rng.choice(len(self.count_law), size=len(persons), p=np.asarray(self.count_law))
            return torch.as_tensor(drawn, dtype=torch.long, device=self.device)
        n = pd.to_numeric(persons[self.count_column], errors="coerce").to_numpy(dtype="float64")
        n = np.where(np.isnan(n), -1, np.clip(np.round(n), 0, self.cap))
        return torch.as_tensor(n, dtype=torch.long, device=self.device)

    # --- persistence -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "column": self.column.to_dict(), "person_columns": self.person_columns,
                "event_columns": self.event_columns, "ids": self.ids.to_dict(), "cap": self.cap,
                "cut_events": self.cut_events_, "cut_persons": self.cut_persons_, "rnn": self.net.rnn_kind,
                "cut_shares": list(self.cut_shares_) if self.cut_shares_ is not None else None,
                "count_column": self.count_column, "count_law": self.count_law, "rising": {c: list(b) if b is not None else None
                                                              for c, b in self.rising.items()},
                "embedding_dim": self.widths[0], "hidden": list(self.widths[1]),
                "transformer": self.transformer.to_dict(), "loss_history": self.loss_history.to_dict(orient="list")}

    @classmethod
    def from_dict(cls, owner: Any, persons: Any, d: dict[str, Any], state: dict[str, torch.Tensor]) -> TwoTables:
        out = cls(owner, persons, d["key"], SequenceColumn.from_dict(d["column"]), list(d["person_columns"]),
                  list(d["event_columns"]))
        out.ids = IdEncoder.from_dict(d["ids"])
        out.cap, out.cut_events_, out.cut_persons_ = int(d["cap"]), d["cut_events"], d["cut_persons"]
        out.cut_shares_ = tuple(d["cut_shares"]) if d.get("cut_shares") is not None else None
        out.count_column = d.get("count_column")
        out.count_law = d.get("count_law")
        out.rising = {c: tuple(b) if b is not None else None for c, b in (d.get("rising") or {}).items()}
        out.transformer = TableTransformer.from_dict(d["transformer"])
        out.tokens = Tokenizer(out.transformer.spans_, out.device, owner.bins)
        sizes = persons.tokens_.sizes.tolist() if persons is not None else []
        out.widths = (int(d.get("embedding_dim", owner._embedding_dim)), tuple(d.get("hidden", owner._hidden)))
        out.net = SequenceNet(sizes, out.tokens.sizes.tolist(), *out.widths, out.cap,
                              rnn=d.get("rnn", "gru"))
        out.net.load_state_dict(state)
        out.net.to(out.device)
        out.loss_history = pd.DataFrame(d.get("loss_history") or {})
        return out


#: Fewest held-out persons for early stopping (each brings all their events' tokens).
MIN_VALIDATION_PERSONS = 10


def _split_persons(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(train, validation)`` persons: 10% held out when that is at least :data:`MIN_VALIDATION_PERSONS`."""
    n_valid = int(len(index) * VALIDATION_SHARE)
    if n_valid < MIN_VALIDATION_PERSONS:
        return index, None
    perm = index[torch.randperm(len(index), device=index.device)]
    return perm[n_valid:], perm[:n_valid]


class _Trainer:
    """Adam over batches of whole persons through the shared :class:`~tabsynth.models.training.
    PlainTrainer`; early stopping on held-out persons as the flat model does."""

    def __init__(self, tables: TwoTables, owner: Any) -> None:
        self.net, self.owner, self.device = tables.net, owner, tables.device

    def _batch_size(self, n: int) -> int:
        if self.owner.batch_size is not None:
            return int(self.owner.batch_size)
        return int(min(512, max(32, 2 ** int(math.log2(max(n / 64, 1))))))

    def _loss(self, person: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = int(lengths.max()) + 1 if len(lengths) else 1
        return self.net(person, tokens[:, :steps], lengths)

    def run(self, person: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> pd.DataFrame:
        owner = self.owner
        index = torch.arange(len(lengths), device=self.device)
        train, valid = (index, None) if owner.early_stopping is False else _split_persons(index)
        bs = min(self._batch_size(len(index)), len(train))
        lr = owner.lr if owner.lr is not None else 1e-3 * math.sqrt(bs / 32)
        opt = torch.optim.Adam(self.net.parameters(), lr=lr, weight_decay=owner.l2scale)
        stopper = EarlyStopping(self.net, opt, owner._runtime) if valid is not None else None

        def step(pos: torch.Tensor) -> dict[str, torch.Tensor]:
            idx = train[pos]
            loss = self._loss(person[idx], tokens[idx], lengths[idx])
            opt.zero_grad(set_to_none=True)
            (loss.sum() / len(idx)).backward()
            opt.step()
            return {"loss": loss.detach().sum() / len(idx)}

        def validate() -> tuple[Any, int]:
            assert valid is not None, "only called with the stopper"
            return validation_loss(lambda i: self._loss(person[i], tokens[i], lengths[i]), valid, 4 * bs), len(valid)

        trainer = PlainTrainer(epochs=owner._epochs, desc="TabularAR events", verbose=owner.verbose,
                               runtime=owner._runtime, stopper=stopper, validate=validate)
        steps = math.ceil(len(train) / bs)
        return pd.DataFrame(trainer.run(step, shuffled(len(train), bs, steps, owner._runtime, self.device)))
