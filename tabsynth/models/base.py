"""The fit life cycle every model family shares, and the hooks a family implements.

``fit`` validates, reads the schema (declared, detected, or under DP the dtypes alone), encodes and
hands the tensor to the family's ``_train``; under DP it goes through
:class:`~tabsynth.privacy.fit.PrivateFit` and the family's ``_train_private`` instead. Sampling
lives in :mod:`tabsynth.models.generation`, hyperparameters in :mod:`tabsynth.models.params`.
"""

from __future__ import annotations

import abc
import math
import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from tabsynth.distributed.runtime import Runtime, rank_device
from tabsynth.errors import ConfigError, PrivacyWarning
from tabsynth.io import read_table
from tabsynth.metadata import Metadata, check_frame
from tabsynth.models.device import resolve_device, seeded
from tabsynth.models.generation import Condition, Generation
from tabsynth.models.params import Hyperparameters
from tabsynth.privacy import PrivacySpent
from tabsynth.privacy.config import DPConfig
from tabsynth.privacy.marginals import NoisyMarginals
from tabsynth.privacy.trainer import DPTrainer, StepRule
from tabsynth.transform import TableTransformer
from tabsynth.transform.layout import SpanLayout


class BaseSynthesizer(Hyperparameters, Generation, abc.ABC):
    """Shared life cycle: ``fit(df)``, ``sample(n)``, ``sample_to_file``, ``save``/``tabsynth.load``.

    A family implements the abstract hooks below; ``docs/architecture.md`` lists them in order.
    """

    #: The process group of the current fit (one process unless run under torchrun).
    _runtime = Runtime()
    #: How DP-SGD is sized when ``epochs`` / ``batch_size`` are left unset under DP.
    _DP_STEPS = StepRule(batch=2000)

    # set by fit
    privacy_: PrivacySpent | None
    n_rows_: int
    layout_: SpanLayout
    _n_global: int
    _fit_batch: int | None
    _fit_epochs: int | None

    # --- hooks a family implements ----------------------------------------------------------------
    @abc.abstractmethod
    def _build(self, data_dim: int) -> None:
        """Create the networks for encoded rows of width ``data_dim`` (``self.layout_`` is set)."""

    @abc.abstractmethod
    def _train(self, data: torch.Tensor) -> list[dict[str, float]]:
        """Train without DP on the encoded table; return one record (losses) per epoch."""

    @abc.abstractmethod
    def _train_private(self, data: torch.Tensor, trainer: DPTrainer, cond_counts: list[list[float]],
                       marginals: NoisyMarginals | None) -> list[dict[str, float]]:
        """Train under DP: every step that reads real rows goes through ``trainer.run``'s step
        function and :meth:`DPTrainer.update`. ``cond_counts`` are the noisy counts of the
        conditional groups' slots, ``marginals`` the noisy marginals (or None). Return one record
        per epoch holding only post-processing of DP outputs (docs/privacy.md rule 17)."""

    @abc.abstractmethod
    def _modules(self) -> dict[str, torch.nn.Module]:
        """The networks whose ``state_dict`` a model file stores, by name."""

    @abc.abstractmethod
    def _draws(self, n: int, condition: Condition | None, generator: torch.Generator) -> dict[str, Any]:
        """Every random number ``n`` generated rows need, drawn in a fixed order: tensors (or lists of
        tensors, or None) with one row per generated row, which sampling cuts into blocks.
        ``condition`` holds the conditions chosen by :meth:`_direct_conditions`, or None."""

    @abc.abstractmethod
    def _generate_block(self, draws: dict[str, Any]) -> torch.Tensor:
        """Activated rows (one-hot groups, scalars in [-1, 1]) on the device, one per row of ``draws``
        (a block of :meth:`_draws`'s output); no randomness of its own."""

    def _extra_tensors(self) -> dict[str, torch.Tensor]:
        """Fitted tensors outside the networks that a model file must keep (none by default)."""
        return {}

    def _load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`_extra_tensors` saved."""

    # --- fit ----------------------------------------------------------------------------------
    def fit(self, data: pd.DataFrame | str | os.PathLike, metadata: Metadata | None = None) -> BaseSynthesizer:
        """Learn the table ``data`` (a DataFrame or a .csv/.parquet path); returns ``self``.

        Under ``torchrun`` each process trains on its share of the rows: a Parquet file or directory
        is split by rows and each rank reads only its part; a DataFrame is taken as this rank's part.
        Statistics are combined over ranks, gradients averaged (DP: noised once), so every rank ends
        with the same model.
        """
        from tabsynth.distributed import current

        self._validate_params()
        dp = self.dp_config()
        runtime = current()
        self._runtime = runtime
        # under torchrun a user error on any rank is raised on every rank (none waits forever)
        df = runtime.agree(lambda: self._checked_input(data, metadata, runtime, private=dp is not None))
        metadata = self._schema(df, metadata, private=dp is not None)
        if dp is not None:  # a bad cell is missing, never an error that names it (docs/privacy.md rule 4b)
            from tabsynth.metadata.public import declared_values

            df = declared_values(df, metadata)
        self._n_global = int(runtime.all_reduce_sum(len(df)))
        device = runtime.agree(lambda: self._checked_setup(df, metadata, runtime, private=dp is not None))
        if self.verbose and runtime.is_main:
            where = f" in {runtime.world_size} processes ({runtime.backend})" if runtime.distributed else ""
            rows = "a table of" if dp is not None else f"{self._n_global} rows x"  # under DP the count is private
            print(f"tabsynth {type(self).__name__}: fitting {rows} {df.shape[1]} columns on {device}{where}")
        self.privacy_ = None
        self._fit_batch = self._fit_epochs = None
        # each rank draws its own noise and batches; rank 0's initial weights are broadcast
        seed = None if self.seed is None else self.seed + 104_729 * runtime.rank
        with seeded(seed, device):
            history = self._fit_private(df, metadata, device, dp) if dp is not None else self._fit_plain(
                df, metadata, device)
        self.loss_history_ = pd.DataFrame(history)
        self.n_rows_ = self._n_global
        self._sample_calls = 0
        if dp is not None and self.verbose and runtime.is_main:
            print(f"privacy: {self.privacy_}")
        return self

    def _schema(self, df: pd.DataFrame, metadata: Metadata | None, private: bool) -> Metadata:
        """Declared metadata; else, without DP, one detection on rank 0's rows shared by all; under DP
        nothing is read off the values, the dtypes alone give the kinds (docs/privacy.md rule 4)."""
        runtime = self._runtime
        self._dp_assumptions = None
        if private:
            from tabsynth.metadata.public import public_schema

            metadata, self._dp_assumptions = public_schema(df, metadata)
            return metadata
        if metadata is None:
            detected = runtime.agree(lambda: Metadata.detect(df).to_dict() if runtime.is_main else None)
            metadata = Metadata.from_dict(runtime.broadcast_object(detected))
        return metadata

    def _fit_plain(self, df: pd.DataFrame, metadata: Metadata, device: torch.device) -> list[dict[str, float]]:
        """Without DP: fit the encoders (combined over ranks under torchrun), encode, train."""
        runtime = self._runtime
        params: dict[str, Any] = dict(numerical=self.numerical, max_categories=self.max_categories)
        if runtime.distributed:
            from tabsynth.distributed.preprocess import fit_transformer

            transformer = fit_transformer(df, metadata, runtime, seed=self.seed or 0, **params)
        else:
            transformer = TableTransformer(**params, seed=self.seed if self.seed is not None else 0).fit(df, metadata)
        data_t = torch.from_numpy(transformer.transform(df)).to(device)
        self._init_fitted(transformer, device)
        return self._train(data_t) if transformer.output_dim_ else []

    def _fit_private(self, df: pd.DataFrame, metadata: Metadata, device: torch.device,
                     dp: DPConfig) -> list[dict[str, float]]:
        """DP mode: plan the budget, preprocess privately, train with DP-SGD (docs/privacy.md).

        Every noise draw and Poisson batch comes from the fit's private randomness, which ``seed``
        does not touch (rule 15). The exact row count is read only inside the preprocessing
        release: its noisy value sets the default delta, the sample rate, the steps and ``n_rows_``
        (rule 3).
        """
        from tabsynth.privacy.fit import PrivateFit

        fit = PrivateFit.begin(dp, df, metadata, self._runtime)
        self._n_global = fit.counted_rows()  # from here on only the noisy count is used
        trainer = fit.trainer(epochs=self._epochs, batch_size=self._batch_size, rule=self._DP_STEPS, device=device)
        self._fit_batch, self._fit_epochs = trainer.batch_size, trainer.epochs
        transformer, counts = fit.transformer(df, max_categories=self.max_categories, seed=self.seed)
        self._init_fitted(transformer, device)
        data = torch.from_numpy(transformer.transform(df)).to(device)
        marginals = self._dp_marginals = fit.marginals(data, self.layout_)
        history = self._train_private(data, trainer, counts, marginals) if transformer.output_dim_ else []
        self.privacy_ = fit.statement(self._dp_assumptions)
        self._warn_dp_changes()
        return history

    def _warn_dp_changes(self) -> None:
        """One warning naming every column the DP preprocessing changed materially, with its fix."""
        from tabsynth.privacy.changes import material, warning_text

        assert self.privacy_ is not None, "called after a DP fit"
        part = self.privacy_.parts.get("preprocessing")
        changes = part.details.get("changes", []) if part is not None else []
        if material(changes) and self._runtime.is_main:
            warnings.warn(warning_text(changes), PrivacyWarning, stacklevel=4)

    def _checked_input(self, data: Any, metadata: Metadata | None, runtime: Any, private: bool) -> pd.DataFrame:
        df = self._read_input(data, runtime, private)
        check_frame(df, values=not private)
        if metadata is not None and not isinstance(metadata, Metadata):
            raise ConfigError(f"metadata must be a tabsynth.Metadata, got {type(metadata).__name__}")
        return df

    def _checked_setup(self, df: pd.DataFrame, metadata: Metadata, runtime: Any, private: bool) -> torch.device:
        metadata.check_frame(df, values=not private)
        self._check_distributed(runtime)
        device = rank_device(resolve_device(self.device), runtime)
        self._check_precision(device)
        return device

    @staticmethod
    def _read_input(data: Any, runtime: Any, private: bool = False) -> pd.DataFrame:
        if not isinstance(data, (str, os.PathLike)):
            return data
        if runtime.distributed:
            from tabsynth.distributed import read_shard
            from tabsynth.io import table_format

            if not Path(data).is_dir() and table_format(data) != "parquet":
                raise ConfigError(f"{data}: under torchrun, fit reads a Parquet file or directory, one share of "
                                  "the rows per process; convert the table to Parquet (tabsynth reads CSV in "
                                  "one process only)")
            return read_shard(data, runtime.rank, runtime.world_size)
        return read_table(data, text=private)  # under DP a CSV's kinds are declared, not read off its cells

    def _check_distributed(self, runtime: Any) -> None:
        if not runtime.distributed:
            return
        if self._n_global < runtime.world_size:
            raise ConfigError(f"{self._n_global} rows cannot be shared by {runtime.world_size} processes")

    @property
    def _local_batch(self) -> int:
        """Rows per step on this process: the batch is global and split over the ranks; at least two,
        since the generator's BatchNorm needs two rows (a tiny noisy row count can ask for one)."""
        batch = getattr(self, "_fit_batch", None) or self._batch_size
        return max(2, math.ceil(min(batch, self._n_global) / self._runtime.world_size))

    def _init_fitted(self, transformer: TableTransformer, device: torch.device) -> None:
        self.transformer_ = transformer
        self.metadata_ = transformer.metadata_
        self.device_ = device
        self.layout_ = SpanLayout(transformer.spans_, device)
        self._build(transformer.output_dim_)
        for module in self._modules().values():
            self._runtime.broadcast_module(module)

    # --- shared training steps ----------------------------------------------------------------
    def _sync_gradients(self, module: torch.nn.Module) -> None:
        """Average ``module``'s gradients over the ranks (a no-op in one process)."""
        self._runtime.average_gradients(list(module.parameters()))

    def _backward_step(self, loss: torch.Tensor | None, optimizer: torch.optim.Optimizer, module: torch.nn.Module,
                       scaler: Any) -> None:
        """Backward (none when ``loss`` is None: the gradients are already set), average gradients over
        ranks, step (through the fp16 gradient scaler if any)."""
        if scaler is None:
            if loss is not None:
                loss.backward()
            self._sync_gradients(module)
            optimizer.step()
            return
        scaler.scale(loss).backward()
        self._sync_gradients(module)
        scaler.step(optimizer)
        scaler.update()

    # --- privacy and persistence --------------------------------------------------------------
    def privacy_spent(self) -> PrivacySpent:
        """The DP statement of this fit; ``epsilon=inf`` when trained without DP."""
        self._check_fitted()
        return getattr(self, "privacy_", None) or PrivacySpent.none()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model as one file: JSON config and torch tensors, never a pickle."""
        from tabsynth.models.persistence import save_model

        self._check_fitted()
        return save_model(self, path)
