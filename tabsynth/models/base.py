"""The fit / sample life cycle shared by CTGAN and TVAE.

Subclasses build their networks in ``_build``, train on the encoded tensor in ``_train`` and turn
noise into activated rows in ``_generate``. Everything else (validation, encoding, seeding,
conditions, chunked and streamed sampling, save/load) lives here once.
"""

from __future__ import annotations

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

from tabsynth.errors import ConfigError, InvalidConditionError, NotFittedError, SamplingWarning
from tabsynth.io import read_table
from tabsynth.metadata import Metadata, check_frame
from tabsynth.models.device import make_generator, resolve_device, seeded
from tabsynth.models.layout import SpanLayout
from tabsynth.privacy import PrivacySpent
from tabsynth.transform import TableTransformer

#: Rows generated per forward pass when sampling.
GENERATE_CHUNK = 50_000


class BaseSynthesizer:
    """Shared life cycle: ``fit(df)``, ``sample(n)``, ``sample_to_file``, ``save``/``tabsynth.load``."""

    #: Whether the model can be steered by a conditional vector (else conditions use rejection).
    _conditional_vector = False

    # --- hyperparameters (sklearn style) ---------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, as given."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "BaseSynthesizer":
        for key, value in params.items():
            if key not in self._param_names():
                raise ConfigError(f"{type(self).__name__} has no parameter {key!r}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    #: Defaults when ``epochs`` / ``batch_size`` are left as None: the paper's without DP; under DP,
    #: few large Poisson batches (chosen on bundled Adult, public data: privacy.md rule 14).
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

    # --- fit ----------------------------------------------------------------------------------
    def fit(self, data: pd.DataFrame | str | os.PathLike, metadata: Metadata | None = None) -> "BaseSynthesizer":
        """Learn the table ``data`` (a DataFrame or a .csv/.parquet path); returns ``self``."""
        self._validate_params()
        df = read_table(data) if isinstance(data, (str, os.PathLike)) else data
        check_frame(df)
        if metadata is not None and not isinstance(metadata, Metadata):
            raise ConfigError(f"metadata must be a tabsynth.Metadata, got {type(metadata).__name__}")
        metadata = Metadata.detect(df) if metadata is None else metadata
        metadata.check_frame(df)
        device = resolve_device(self.device)
        if self.verbose:
            print(f"tabsynth {type(self).__name__}: fitting {len(df)} rows x {df.shape[1]} columns on {device}")
        self.privacy_ = None
        if self.epsilon is not None:
            with seeded(self.seed, device):
                history = self._fit_private(df, metadata, device)
            self.loss_history_ = pd.DataFrame(history)
            self.n_rows_ = len(df)
            self._sample_calls = 0
            if self.verbose:
                print(f"privacy: {self.privacy_}")
            return self
        with seeded(self.seed, device):
            transformer = TableTransformer(numerical=self.numerical, max_categories=self.max_categories,
                                           seed=self.seed if self.seed is not None else 0).fit(df, metadata)
            data_t = torch.from_numpy(transformer.transform(df)).to(device)
            self._init_fitted(transformer, device)
            history = self._train(data_t) if transformer.output_dim_ else []
        self.loss_history_ = pd.DataFrame(history)
        self.n_rows_ = len(df)
        self._sample_calls = 0
        return self

    def _fit_private(self, df: pd.DataFrame, metadata: Metadata, device: torch.device) -> list[dict[str, float]]:
        """DP mode: plan the budget, preprocess privately, train with DP-SGD (privacy.md)."""
        from tabsynth.privacy.accountant import Accountant
        from tabsynth.privacy.engine import GaussianNoise, resolve_delta, sample_rate
        from tabsynth.privacy.marginals import measure_marginals, plan_marginals
        from tabsynth.privacy.preprocessing import condition_counts, plan, private_transformer

        n = len(df)
        accountant = Accountant(self.epsilon, resolve_delta(self.delta, n))
        release = plan(metadata, accountant, self.preprocessing_epsilon_share)
        marginal_release = plan_marginals(accountant, self.marginal_epsilon_share)
        batch_size = min(self._batch_size, n)
        q, steps_per_epoch = sample_rate(n, batch_size)
        steps = self._epochs * steps_per_epoch
        sigma = accountant.training_noise(q, steps)  # a budget too small fails here, before reading rows
        noise = GaussianNoise(None if self.seed is None else self.seed + 1, self.secure_mode)
        stats = private_transformer(df, metadata, accountant, release, max_modes=10,
                                    max_categories=self.max_categories, rng=np.random.default_rng(self.seed),
                                    noise_rng=noise)
        self._init_fitted(stats.transformer, device)
        data = torch.from_numpy(stats.transformer.transform(df)).to(device)
        # DP marginals of the encoded rows (issue 7 item 4); the models match them on generated rows only
        self._dp_marginals = (measure_marginals(data, self.layout_, marginal_release, noise)
                              if marginal_release is not None else None)
        history = self._train_private(data, accountant, condition_counts(stats.transformer), sigma=sigma, q=q,
                                      steps=steps, batch_size=batch_size) if stats.transformer.output_dim_ else []
        self.privacy_ = accountant.statement()
        return history

    def _train_private(self, data: torch.Tensor, accountant: Any, cond_counts: list[list[float]], *, sigma: float,
                       q: float, steps: int, batch_size: int) -> list[dict[str, float]]:
        raise NotImplementedError

    def _run_private(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer, data: torch.Tensor, *,
                     step: Any, accountant: Any, sigma: float, q: float, steps: int, batch_size: int,
                     desc: str, mechanism: str) -> list[dict[str, float]]:
        """The DP-SGD run both models share: Opacus wrapping, the exact step budget, epsilon per epoch in
        the history and progress bar, and the training part of the statement.

        ``step(private_module, private_optimizer, batch)`` does one update and returns its detached losses.
        """
        from tabsynth.privacy.accountant import Release
        from tabsynth.privacy.engine import make_private, quiet_opacus

        engine, private, optimizer, loader = make_private(
            module, optimizer, data, batch_size, sigma, self.max_grad_norm, secure_mode=self.secure_mode,
            seed=None if self.seed is None else self.seed + 2)
        history, done = [], 0
        with quiet_opacus():
            bar = tqdm(range(self._epochs), desc=desc, disable=not self.verbose, unit="epoch")
            for epoch in bar:
                sums: dict[str, torch.Tensor] = {}
                n_steps = 0
                for (batch,) in loader:
                    if done >= steps:
                        break
                    for key, value in step(private, optimizer, batch).items():
                        sums[key] = sums.get(key, 0.0) + value
                    done += 1
                    n_steps += 1
                record = {"epoch": epoch, **{k: float(v) / max(n_steps, 1) for k, v in sums.items()}}
                record["epsilon"] = accountant.spent_epsilon([Release("training", sigma, q, done)])
                history.append(record)
                bar.set_postfix({k.split("_")[0]: f"{v:.3f}" for k, v in record.items() if k != "epoch"})
        optimizer.zero_grad(set_to_none=True)
        private._close()
        opacus_eps = float(engine.accountant.get_epsilon(delta=accountant.delta_rdp)) if done else 0.0
        accountant.add(Release("training", sigma, q, done, mechanism=mechanism, details={
            "max_grad_norm": self.max_grad_norm, "expected_batch_size": batch_size, "epochs": self._epochs,
            "poisson_sampling": True, "opacus_rdp_epsilon": opacus_eps, "secure_mode": self.secure_mode,
            "seeded": self.seed is not None and not self.secure_mode}))
        return history

    def _init_fitted(self, transformer: TableTransformer, device: torch.device) -> None:
        self.transformer_ = transformer
        self.metadata_ = transformer.metadata_
        self.device_ = device
        self.layout_ = SpanLayout(transformer.spans_, device)
        self._build(transformer.output_dim_)

    # --- hooks ----------------------------------------------------------------------------------
    def _build(self, data_dim: int) -> None:
        raise NotImplementedError

    def _train(self, data: torch.Tensor) -> list[dict[str, float]]:
        raise NotImplementedError

    def _generate(self, n: int, condition: tuple[int, int] | None, generator: torch.Generator) -> torch.Tensor:
        """``n`` activated rows (one-hot groups, scalars in [-1, 1]) on the device."""
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
        parts = []
        with torch.no_grad():
            for start in range(0, n, GENERATE_CHUNK):
                m = self._generate(min(GENERATE_CHUNK, n - start), condition, gen)
                parts.append(self._force(m, *condition) if condition is not None else m)
        return torch.cat(parts) if parts else torch.zeros(0, self.transformer_.output_dim_, device=self.device_)

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
        n = self._check_n(n)
        conds = self._parse_conditions(conditions)
        gen, rng = self._seeds(seed)
        return self._decode(self._sample_matrix(n, conds, gen, max_tries), rng, 0)

    def _check_n(self, n: Any) -> int:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ConfigError(f"the number of rows must be a non-negative integer, got {n!r}")
        return int(n)

    def _decode(self, matrix: torch.Tensor, rng: np.random.Generator, id_offset: int) -> pd.DataFrame:
        return self.transformer_.inverse_transform(matrix.cpu().numpy(), rng=rng, id_offset=id_offset)

    def sample_to_file(self, n: int, path: str | os.PathLike, batch_rows: int = 100_000, *,
                       seed: int | None = None, conditions: dict[str, Any] | None = None,
                       max_tries: int = 20) -> Path:
        """Stream ``n`` rows to a .csv, .csv.gz or .parquet file, ``batch_rows`` at a time."""
        from tabsynth.sampling.writer import TableWriter

        self._check_fitted()
        n = self._check_n(n)
        if not isinstance(batch_rows, (int, np.integer)) or batch_rows < 1:
            raise ConfigError(f"batch_rows must be a positive integer, got {batch_rows!r}")
        conds = self._parse_conditions(conditions)
        gen, rng = self._seeds(seed)
        with TableWriter(path, columns=self.metadata_.column_names) as writer:
            for start in range(0, n, batch_rows):
                size = min(batch_rows, n - start)
                writer.write(self._decode(self._sample_matrix(size, conds, gen, max_tries), rng, start))
            if n == 0:
                writer.write(self._decode(self._sample_matrix(0, [], gen, max_tries), rng, 0))
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

    @staticmethod
    def _nan_to_none(x: float) -> float | None:
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else x
