"""The fit / sample life cycle shared by CTGAN and TVAE.

Subclasses build their networks in ``_build``, train on the encoded tensor in ``_train`` and turn
noise into activated rows in ``_generate``. Everything else (validation, encoding, seeding,
conditions, chunked and streamed sampling, save/load) lives here once.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from tabsynth.distributed.runtime import Runtime, rank_device
from tabsynth.errors import ConfigError, InvalidConditionError, NotFittedError, SamplingWarning
from tabsynth.io import read_table
from tabsynth.metadata import Metadata, check_frame
from tabsynth.models.device import make_generator, resolve_device, seeded
from tabsynth.models.layout import SpanLayout
from tabsynth.privacy import PrivacySpent
from tabsynth.transform import TableTransformer

#: Rows whose random numbers are drawn together when sampling: this alone fixes the random stream,
#: so a seed gives the same rows whatever ``BLOCK_ROWS`` is.
GENERATE_CHUNK = 50_000
#: Rows pushed through the network at once when sampling on CPU. Blocks this size keep each layer's
#: buffers in cache (whole 50,000-row chunks spent their time on memory: 100,000 rows TVAE 0.30 ->
#: 0.21 s, CTGAN 0.59 -> 0.46 s); much smaller ones pay for thread wake-ups on every op, which on a
#: loaded machine made 2048-row passes several times slower. A GPU takes whole chunks.
BLOCK_ROWS = 4_096


def _rows_of(draws: dict[str, Any], rows: slice) -> dict[str, Any]:
    """Rows ``rows`` of every draw: tensors sliced, lists of tensors sliced one by one, None kept."""
    def cut(v: Any) -> Any:
        if v is None:
            return None
        return [t[rows] for t in v] if isinstance(v, list) else v[rows]

    return {k: cut(v) for k, v in draws.items()}


class BaseSynthesizer:
    """Shared life cycle: ``fit(df)``, ``sample(n)``, ``sample_to_file``, ``save``/``tabsynth.load``."""

    #: Whether the model can be steered by a conditional vector (else conditions use rejection).
    _conditional_vector = False
    #: The process group of the current fit (one process unless run under torchrun).
    _runtime = Runtime()

    # --- hyperparameters (sklearn style) ---------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, as given."""
        return {name: getattr(self, name) for name in self._param_names()}

    def resolved_params(self) -> dict[str, Any]:
        """Constructor arguments with every ``None`` left to a default replaced by the value used
        (e.g. ``batch_size`` and ``pac``, which differ with and without DP)."""
        out = self.get_params()
        for name, value in out.items():
            if value is not None:
                continue
            if name in self._DEFAULTS:
                out[name] = self._resolved(name)
            elif isinstance(getattr(type(self), f"_{name}", None), property):
                out[name] = getattr(self, f"_{name}")
        return out

    def set_params(self, **params: Any) -> "BaseSynthesizer":
        for key, value in params.items():
            if key not in self._param_names():
                raise ConfigError(f"{type(self).__name__} has no parameter {key!r}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    #: Defaults when ``epochs`` / ``batch_size`` are left as None: the paper's without DP; under DP,
    #: few large Poisson batches (chosen on bundled Adult, public data: docs/privacy.md rule 14).
    _DEFAULTS = {"epochs": (300, 10), "batch_size": (500, 2000)}

    def _resolved(self, name: str) -> Any:
        value = getattr(self, name)
        if value is not None:
            return value
        plain, private = self._DEFAULTS[name]
        return private if getattr(self, "epsilon", None) is not None else plain

    @property
    def _epochs(self) -> int:
        return self._resolved("epochs")

    @property
    def _batch_size(self) -> int:
        return self._resolved("batch_size")

    def _validate_params(self) -> None:
        problems = []
        for name in ("epochs", "batch_size"):
            v = self._resolved(name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                problems.append(f"{name} must be a positive integer, got {v!r}")
        if self.seed is not None and (not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool)):
            problems.append(f"seed must be an integer or None, got {self.seed!r}")
        if self.epsilon is not None:
            from tabsynth.privacy.engine import check_private_params

            problems += check_private_params(self)
        problems += self._check_params()
        if problems:
            raise ConfigError(f"{type(self).__name__}: " + "; ".join(problems))

    def _check_params(self) -> list[str]:
        return []

    #: Mixed-precision choices: autocast dtype (None: full fp32).
    _PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

    def _check_precision(self, device: torch.device) -> None:
        if self.precision not in self._PRECISIONS:
            raise ConfigError(f"precision={self.precision!r}: use one of {', '.join(self._PRECISIONS)}")
        if self.precision != "fp32" and self.epsilon is not None:
            raise ConfigError(f"precision={self.precision!r} is for training without DP; DP-SGD clips and "
                              "noises in fp32: leave precision='fp32' when epsilon is set")
        if self.precision == "fp16" and device.type != "cuda":
            raise ConfigError("precision='fp16' needs a CUDA device (gradient scaling); use 'bf16' on CPU")

    def _autocast(self) -> Any:
        """Autocast for the forward passes of the non-DP loop (a no-op in fp32)."""
        dtype = self._PRECISIONS.get(getattr(self, "precision", "fp32"))
        if dtype is None or self.epsilon is not None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_.type, dtype=dtype)

    def _grad_scaler(self) -> Any:
        return torch.amp.GradScaler("cuda") if getattr(self, "precision", "fp32") == "fp16" else None

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

    # --- fit ----------------------------------------------------------------------------------
    def fit(self, data: pd.DataFrame | str | os.PathLike, metadata: Metadata | None = None) -> "BaseSynthesizer":
        """Learn the table ``data`` (a DataFrame or a .csv/.parquet path); returns ``self``.

        Under ``torchrun`` each process trains on its share of the rows: a Parquet file or directory
        is split by rows and each rank reads only its part; a DataFrame is taken as this rank's part.
        Statistics are combined over ranks, gradients averaged (DP: noised once), so every rank ends
        with the same model.
        """
        from tabsynth.distributed import current

        self._validate_params()
        runtime = current()
        self._runtime = runtime
        # under torchrun a user error on any rank is raised on every rank (none waits forever)
        df = runtime.agree(lambda: self._checked_input(data, metadata, runtime))
        private = self.epsilon is not None
        self._dp_assumptions = None
        if private:  # nothing is read off the values (rule 4): declared metadata, else dtypes alone
            from tabsynth.metadata.public import public_schema

            metadata, self._dp_assumptions = public_schema(df, metadata)
        elif metadata is None:  # one detection, on rank 0's rows, shared by all
            detected = runtime.agree(lambda: Metadata.detect(df).to_dict() if runtime.is_main else None)
            metadata = Metadata.from_dict(runtime.broadcast_object(detected))
        self._n_global = int(runtime.all_reduce_sum(len(df)))
        device = runtime.agree(lambda: self._checked_setup(df, metadata, runtime))
        if self.verbose and runtime.is_main:
            where = f" in {runtime.world_size} processes ({runtime.backend})" if runtime.distributed else ""
            rows = "a table of" if private else f"{self._n_global} rows x"  # under DP the row count is private
            print(f"tabsynth {type(self).__name__}: fitting {rows} {df.shape[1]} columns on {device}{where}")
        self.privacy_ = None
        # each rank draws its own noise and batches; rank 0's initial weights are broadcast
        seed = None if self.seed is None else self.seed + 104_729 * runtime.rank
        if self.epsilon is not None:
            with seeded(seed, device):
                history = self._fit_private(df, metadata, device)
            self.loss_history_ = pd.DataFrame(history)
            self.n_rows_ = self._n_global
            self._sample_calls = 0
            if self.verbose and runtime.is_main:
                print(f"privacy: {self.privacy_}")
            return self
        with seeded(seed, device):
            params = dict(numerical=self.numerical, max_categories=self.max_categories)
            if runtime.distributed:
                from tabsynth.distributed.preprocess import fit_transformer

                transformer = fit_transformer(df, metadata, runtime, seed=self.seed or 0, **params)
            else:
                transformer = TableTransformer(**params, seed=self.seed if self.seed is not None else 0).fit(
                    df, metadata)
            data_t = torch.from_numpy(transformer.transform(df)).to(device)
            self._init_fitted(transformer, device)
            history = self._train(data_t) if transformer.output_dim_ else []
        self.loss_history_ = pd.DataFrame(history)
        self.n_rows_ = self._n_global
        self._sample_calls = 0
        return self

    def _checked_input(self, data: Any, metadata: Metadata | None, runtime: Any) -> pd.DataFrame:
        df = self._read_input(data, runtime)
        check_frame(df)
        if metadata is not None and not isinstance(metadata, Metadata):
            raise ConfigError(f"metadata must be a tabsynth.Metadata, got {type(metadata).__name__}")
        return df

    def _checked_setup(self, df: pd.DataFrame, metadata: Metadata, runtime: Any) -> torch.device:
        metadata.check_frame(df)
        self._check_distributed(runtime)
        device = rank_device(resolve_device(self.device), runtime)
        self._check_precision(device)
        return device

    @staticmethod
    def _read_input(data: Any, runtime: Any) -> pd.DataFrame:
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
        return read_table(data)

    def _check_distributed(self, runtime: Any) -> None:
        if not runtime.distributed:
            return
        if self._n_global < runtime.world_size:
            raise ConfigError(f"{self._n_global} rows cannot be shared by {runtime.world_size} processes")

    @property
    def _local_batch(self) -> int:
        """Rows per step on this process: the batch is global and split over the ranks."""
        return max(1, math.ceil(min(self._batch_size, self._n_global) / self._runtime.world_size))

    def _fit_private(self, df: pd.DataFrame, metadata: Metadata, device: torch.device) -> list[dict[str, float]]:
        """DP mode: plan the budget, preprocess privately, train with DP-SGD (docs/privacy.md).

        Every noise draw and Poisson batch comes from a :class:`Randomness` that ``seed`` does not
        touch (rule 15). The exact row count is read only inside the preprocessing release: its noisy
        value sets the default delta, the sample rate, the step count and ``n_rows_`` (rule 3).
        """
        from tabsynth.privacy.accountant import Accountant
        from tabsynth.privacy.config import resolve_delta
        from tabsynth.privacy.engine import sample_rate
        from tabsynth.privacy.marginals import measure_marginals, plan_marginals
        from tabsynth.privacy.preprocessing import condition_counts, noisy_row_count, plan, private_transformer
        from tabsynth.privacy.randomness import Randomness

        runtime = self._runtime
        randomness = Randomness.for_fit(self.secure_mode, rank=runtime.rank)
        cap = getattr(self, "max_delta_", None)  # set by a release that reserved the delta for us
        accountant = Accountant(self.epsilon, resolve_delta(self.delta, None, cap))
        release = plan(metadata, accountant, self.preprocessing_epsilon_share)
        marginal_release = plan_marginals(accountant, self.marginal_epsilon_share)
        n_hat = noisy_row_count(df, release, randomness, runtime)
        accountant.set_delta(resolve_delta(self.delta, n_hat, cap))
        self._n_global = n_hat  # from here on only the noisy count is used
        batch_size = min(self._batch_size, n_hat)
        q, steps_per_epoch = sample_rate(n_hat, batch_size)
        steps = self._epochs * steps_per_epoch
        sigma = accountant.training_noise(q, steps)
        stats = private_transformer(df, metadata, accountant, release, n_hat=n_hat, max_modes=10,
                                    max_categories=self.max_categories, rng=np.random.default_rng(self.seed),
                                    noise_rng=randomness, runtime=runtime)
        transformer, counts = stats.transformer, condition_counts(stats.transformer)
        if runtime.distributed:  # rank 0's encoders for everyone (their mixture fits draw from its RNG)
            state, counts = runtime.broadcast_object((transformer.to_dict(), counts))
            transformer = TableTransformer.from_dict(state)
        self._init_fitted(transformer, device)
        data = torch.from_numpy(transformer.transform(df)).to(device)
        self._dp_marginals = (measure_marginals(data, self.layout_, marginal_release, randomness, runtime=runtime)
                              if marginal_release is not None else None)
        history = self._train_private(data, accountant, counts, sigma=sigma, q=q, steps=steps, batch_size=batch_size,
                                      randomness=randomness) if transformer.output_dim_ else []
        self.privacy_ = accountant.statement(randomness=randomness.mode, assumptions=self._dp_assumptions)
        self._warn_dp_changes()
        return history

    def _warn_dp_changes(self) -> None:
        """One warning naming every column the DP preprocessing changed materially, with its fix."""
        from tabsynth.errors import PrivacyWarning
        from tabsynth.privacy.changes import material, warning_text

        part = self.privacy_.parts.get("preprocessing")
        changes = part.details.get("changes", []) if part is not None else []
        if material(changes) and self._runtime.is_main:
            warnings.warn(warning_text(changes), PrivacyWarning, stacklevel=4)

    def _train_private(self, data: torch.Tensor, accountant: Any, cond_counts: list[list[float]], *, sigma: float,
                       q: float, steps: int, batch_size: int, randomness: Any) -> list[dict[str, float]]:
        raise NotImplementedError

    def _run_private(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer, data: torch.Tensor, *,
                     step: Any, accountant: Any, sigma: float, q: float, steps: int, batch_size: int,
                     randomness: Any, desc: str, mechanism: str) -> list[dict[str, float]]:
        """The DP-SGD run both models share: Opacus wrapping, the exact step budget, epsilon per epoch in
        the history and progress bar, and the training part of the statement.

        ``step(dp, batch)`` does one update on one physical batch through ``dp`` (the Opacus module,
        optimizer and ``dp.loss`` of :class:`~tabsynth.privacy.engine.PrivateTraining`) and returns
        only post-processing of DP outputs (never a loss on real rows: rule 17), once per logical
        batch; when a logical Poisson batch is split into physical ones
        (``max_physical_batch_size``), Opacus' optimizer only accumulates until the last of them.
        """
        from tabsynth.privacy.accountant import Release
        from tabsynth.privacy.engine import make_private, quiet_opacus

        runtime = self._runtime
        steps_per_epoch = math.ceil(steps / self._epochs)
        dp = make_private(module, optimizer, data, sample_rate=q, steps_per_epoch=steps_per_epoch,
                          expected_batch_size=q * self._n_global, noise_multiplier=sigma,
                          max_grad_norm=self.max_grad_norm, randomness=randomness,
                          max_physical_batch_size=self.max_physical_batch_size, runtime=runtime,
                          clipping="ghost" if self.grad_sample_mode == "ghost" else "per_sample")
        history, done = [], 0
        with quiet_opacus():
            bar = tqdm(range(self._epochs), desc=desc, disable=not self.verbose or not runtime.is_main, unit="epoch")
            for epoch in bar:
                sums: dict[str, torch.Tensor] = {}
                calls: dict[str, int] = {}
                for (batch,) in dp.loader:
                    if done >= steps:
                        break
                    for key, value in step(dp, batch).items():
                        sums[key] = sums.get(key, 0.0) + value
                        calls[key] = calls.get(key, 0) + 1
                    if not dp.optimizer._is_last_step_skipped:
                        done += 1
                record = {"epoch": epoch, **{k: float(v) / calls[k] for k, v in sums.items()}}
                record["epsilon"] = accountant.spent_epsilon([Release("training", sigma, q, done)])
                history.append(record)
                bar.set_postfix({k.split("_")[0]: f"{v:.3f}" for k, v in record.items() if k != "epoch"})
        dp.optimizer.zero_grad(set_to_none=True)
        dp.module._close()
        opacus_eps = float(dp.opacus_accountant.get_epsilon(delta=accountant.delta_rdp)) if done else 0.0
        accountant.add(Release("training", sigma, q, done, mechanism=mechanism, details={
            "max_grad_norm": self.max_grad_norm, "expected_batch_size": batch_size, "epochs": self._epochs,
            "poisson_sampling": True, "opacus_rdp_epsilon": opacus_eps, "secure_mode": self.secure_mode,
            "max_physical_batch_size": self.max_physical_batch_size, "grad_sample_mode": self.grad_sample_mode,
            "processes": runtime.world_size}))
        return history

    def _init_fitted(self, transformer: TableTransformer, device: torch.device) -> None:
        self.transformer_ = transformer
        self.metadata_ = transformer.metadata_
        self.device_ = device
        self.layout_ = SpanLayout(transformer.spans_, device)
        self._build(transformer.output_dim_)
        for module in self._modules().values():
            self._runtime.broadcast_module(module)

    def _sync_gradients(self, module: torch.nn.Module) -> None:
        """Average ``module``'s gradients over the ranks (a no-op in one process)."""
        self._runtime.average_gradients(list(module.parameters()))

    # --- hooks ----------------------------------------------------------------------------------
    def _build(self, data_dim: int) -> None:
        raise NotImplementedError

    def _train(self, data: torch.Tensor) -> list[dict[str, float]]:
        raise NotImplementedError

    def _draws(self, n: int, condition: tuple[int, int] | None, generator: torch.Generator) -> dict[str, Any]:
        """Every random number ``n`` generated rows need, drawn in a fixed order: tensors (or lists of
        tensors, or None) with one row per generated row, which sampling cuts into blocks."""
        raise NotImplementedError

    def _generate_block(self, draws: dict[str, Any]) -> torch.Tensor:
        """Activated rows (one-hot groups, scalars in [-1, 1]) on the device, one per row of ``draws``
        (a block of :meth:`_draws`'s output); no randomness of its own."""
        raise NotImplementedError

    def _modules(self) -> dict[str, torch.nn.Module]:
        raise NotImplementedError

    def _extra_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def _load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass

    # --- sampling -----------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "transformer_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(df) first")

    def _seeds(self, seed: int | None) -> tuple[torch.Generator, np.random.Generator]:
        if seed is None:
            base = self.seed if self.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
            seed = int(np.random.default_rng([base, self._sample_calls]).integers(2**31))
            self._sample_calls += 1
        return make_generator(seed, self.device_), np.random.default_rng(seed)

    def _parse_conditions(self, conditions: dict[str, Any] | None) -> list[tuple[str, Any, int, int]]:
        if conditions is None:
            return []
        if not isinstance(conditions, dict):
            raise InvalidConditionError(
                f"conditions must be a dict of column -> value, got {type(conditions).__name__}")
        out = []
        for column, value in conditions.items():
            if column not in self.metadata_.columns:
                raise InvalidConditionError(
                    f"cannot condition on unknown column {column!r}; columns: {', '.join(self.metadata_.column_names)}")
            group, slot = self.transformer_.condition_slot(column, value)
            out.append((column, value, group, slot))
        return out

    def _rows_matching(self, matrix: torch.Tensor, conds: list[tuple[str, Any, int, int]]) -> torch.Tensor:
        keep = torch.ones(len(matrix), dtype=torch.bool, device=matrix.device)
        spans = self.transformer_.conditional_spans_
        for _, _, group, slot in conds:
            sp = spans[group]
            keep &= matrix[:, sp.start:sp.end].argmax(1) == slot
        return keep

    def _force(self, matrix: torch.Tensor, group: int, slot: int) -> torch.Tensor:
        sp = self.transformer_.conditional_spans_[group]
        matrix[:, sp.start:sp.end] = 0.0
        matrix[:, sp.start + slot] = 1.0
        return matrix

    def _generate_chunked(self, n: int, condition: tuple[int, int] | None, gen: torch.Generator) -> torch.Tensor:
        out = torch.empty(n, self.transformer_.output_dim_, device=self.device_)
        with torch.no_grad():
            for start in range(0, n, GENERATE_CHUNK):
                size = min(GENERATE_CHUNK, n - start)
                draws = self._draws(size, condition, gen)
                block = BLOCK_ROWS if self.device_.type == "cpu" else size
                for first in range(0, size, max(block, 1)):
                    rows = slice(first, min(first + block, size))
                    m = self._generate_block(_rows_of(draws, rows))
                    if condition is not None:
                        m = self._force(m, *condition)
                    out[start + rows.start:start + rows.stop] = m
        return out

    def _sample_matrix(self, n: int, conds: list, gen: torch.Generator, max_tries: int) -> torch.Tensor:
        if not conds:
            return self._generate_chunked(n, None, gen)
        primary = None
        rest = conds
        if self._conditional_vector:
            probs = self.cond_sampler_.raw_probs
            # steer by the rarest condition; the generator honours it without rejection
            primary = min(conds, key=lambda c: float(probs[c[2], c[3]]))
            rest = [c for c in conds if c is not primary]
        condition = (primary[2], primary[3]) if primary is not None else None
        if not rest:
            return self._generate_chunked(n, condition, gen)
        found, total, generated, tries = [], 0, 0, 0
        while total < n and tries < max_tries:
            rate = total / generated if generated else 0.5
            batch = int(min(max((n - total) / max(rate, 1e-4) * 1.2, 1000), 2_000_000))
            m = self._generate_chunked(batch, condition, gen)
            keep = self._rows_matching(m, rest)
            found.append(m[keep])
            total += int(keep.sum())
            generated += batch
            tries += 1
        if total < n:
            asked = ", ".join(f"{c}={v!r}" for c, v, _, _ in conds)
            warnings.warn(
                f"only {total} of {n} rows honour {asked} after {tries} tries ({generated} rows generated); "
                "the combination is rare for this model: relax the conditions or raise max_tries",
                SamplingWarning, stacklevel=3)
        return torch.cat(found)[:n]

    def sample(self, n: int, seed: int | None = None, conditions: dict[str, Any] | None = None,
               *, max_tries: int = 20) -> pd.DataFrame:
        """``n`` synthetic rows with the training table's columns, dtypes and null pattern.

        ``conditions`` fixes categorical/boolean columns (``{"sex": "Female"}``); every returned
        row honours them. A value the model cannot produce raises :class:`InvalidConditionError`;
        a merely rare combination returns the rows found after ``max_tries`` batches, with a
        :class:`SamplingWarning`.
        """
        self._check_fitted()
        n = self._check_n(n, in_memory=True)
        conds = self._parse_conditions(conditions)
        gen, rng = self._seeds(seed)
        return self._decode(self._sample_matrix(n, conds, gen, max_tries), rng, 0)

    def _check_n(self, n: Any, in_memory: bool = False) -> int:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ConfigError(f"the number of rows must be a non-negative integer, got {n!r}")
        if in_memory:
            # the encoded float32 matrix plus a generous 64 bytes per decoded cell
            need = int(n) * (4 * self.transformer_.output_dim_ + 64 * len(self.metadata_.column_names))
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else None
            if free and need > free // 2:
                raise ConfigError(
                    f"sample({int(n)}) needs about {need / 2**30:.3g} GiB in memory, more than half of the "
                    f"{free / 2**30:.3g} GiB free; stream the rows to a file with "
                    f"sample_to_file({int(n)}, 'out.parquet'), or ask for fewer rows")
        return int(n)

    def _decode(self, matrix: torch.Tensor, rng: np.random.Generator, id_offset: int) -> pd.DataFrame:
        return self.transformer_.inverse_transform(matrix.cpu().numpy(), rng=rng, id_offset=id_offset, one_hot=True)

    def sample_to_file(self, n: int, path: str | os.PathLike, batch_rows: int = 100_000, *,
                       seed: int | None = None, conditions: dict[str, Any] | None = None,
                       max_tries: int = 20) -> Path:
        """Stream ``n`` rows to a .csv, .csv.gz or .parquet file, ``batch_rows`` at a time.

        Parquet is written one row group per batch, so memory stays bounded whatever ``n``. Under
        ``torchrun``, ``path`` is a Parquet dataset directory and each rank writes its own share of
        the ``n`` rows to ``part-<rank>.parquet`` in it (ids stay unique across parts).
        """
        from tabsynth.distributed import current, shard_range
        from tabsynth.sampling.writer import TableWriter

        self._check_fitted()
        n = self._check_n(n)
        if not isinstance(batch_rows, (int, np.integer)) or batch_rows < 1:
            raise ConfigError(f"batch_rows must be a positive integer, got {batch_rows!r}")
        conds = self._parse_conditions(conditions)
        runtime = current()
        first, stop, target = 0, n, Path(path)
        if runtime.distributed:
            first, stop = shard_range(n, runtime.rank, runtime.world_size)
            target = Path(path) / f"part-{runtime.rank:05d}.parquet"
            if seed is None and self.seed is not None:
                seed = self.seed
            if seed is not None:
                seed = int(np.random.default_rng([seed, runtime.rank]).integers(2**31))
        gen, rng = self._seeds(seed)
        with TableWriter(target, columns=self.metadata_.column_names) as writer:
            for start in range(first, stop, batch_rows):
                size = min(batch_rows, stop - start)
                writer.write(self._decode(self._sample_matrix(size, conds, gen, max_tries), rng, start))
            if first == stop:
                writer.write(self._decode(self._sample_matrix(0, [], gen, max_tries), rng, 0))
        runtime.barrier()
        return Path(path)

    # --- privacy ------------------------------------------------------------------------------
    def privacy_spent(self) -> PrivacySpent:
        """The DP statement of this fit; ``epsilon=inf`` when trained without DP."""
        self._check_fitted()
        return getattr(self, "privacy_", None) or PrivacySpent.none()

    # --- persistence --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the model as one file: JSON config and torch tensors, never a pickle."""
        from tabsynth.models.persistence import save_model

        self._check_fitted()
        return save_model(self, path)
