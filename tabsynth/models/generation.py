"""Generating rows from a fitted model: chunked draws, conditions, and streaming to a file.

Every random number a chunk of rows needs is drawn up front, in a fixed order (the family's
``_draws``), then pushed through the network in cache-sized blocks (``_generate_block``); so a
seed gives the same rows whatever the block size or device batch.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np
import pandas as pd
import torch

from tabsynth.errors import ConfigError, InvalidConditionError, NotFittedError, SamplingWarning
from tabsynth.models.device import make_generator

if TYPE_CHECKING:
    from tabsynth.metadata import Metadata
    from tabsynth.transform import TableTransformer

#: Rows whose random numbers are drawn together when sampling: this alone fixes the random stream,
#: so a seed gives the same rows whatever ``BLOCK_ROWS`` is.
GENERATE_CHUNK = 50_000
#: Rows pushed through the network at once when sampling on CPU. Blocks this size keep each layer's
#: buffers in cache (whole chunks spend their time on memory); much smaller ones pay for thread
#: wake-ups on every op, which hurts most on a loaded machine. A GPU takes whole chunks.
BLOCK_ROWS = 4_096


class Requested(NamedTuple):
    """One condition a user asked for: ``column == value``, which is slot ``slot`` of the conditional
    group ``group`` of the encoded row."""

    column: str
    value: Any
    group: int
    slot: int


@dataclass(frozen=True)
class Condition:
    """The conditions a family's generator is asked to meet directly (the others are met by
    rejection): ``(group, slot)`` pairs of the encoded row's conditional groups."""

    pairs: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, requested: list[Requested]) -> Condition:
        return cls(tuple((r.group, r.slot) for r in requested))


def _rows_of(draws: dict[str, Any], rows: slice) -> dict[str, Any]:
    """Rows ``rows`` of every draw: tensors sliced, lists of tensors sliced one by one, None kept."""
    def cut(v: Any) -> Any:
        if v is None:
            return None
        return [t[rows] for t in v] if isinstance(v, list) else v[rows]

    return {k: cut(v) for k, v in draws.items()}


class Generation:
    """``sample`` and ``sample_to_file`` over the hooks ``_draws`` and ``_generate_block``."""

    # set by the model: its seed and, once fitted, what sampling reads
    seed: int | None
    transformer_: TableTransformer
    metadata_: Metadata
    device_: torch.device
    _sample_calls: int

    def _draws(self, n: int, condition: Condition | None, generator: torch.Generator) -> dict[str, Any]:
        raise NotImplementedError

    def _generate_block(self, draws: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "transformer_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(df) first")

    def _seeds(self, seed: int | None) -> tuple[torch.Generator, np.random.Generator]:
        if seed is None:
            base = self.seed if self.seed is not None else int(cast(int, np.random.SeedSequence().entropy) % 2**31)
            seed = int(np.random.default_rng([base, self._sample_calls]).integers(2**31))
            self._sample_calls += 1
        return make_generator(seed, self.device_), np.random.default_rng(seed)

    def _parse_conditions(self, conditions: dict[str, Any] | None) -> list[Requested]:
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
            out.append(Requested(column, value, group, slot))
        return out

    def _rows_matching(self, matrix: torch.Tensor, conds: list[Requested]) -> torch.Tensor:
        keep = torch.ones(len(matrix), dtype=torch.bool, device=matrix.device)
        spans = self.transformer_.conditional_spans_
        for c in conds:
            sp = spans[c.group]
            keep &= matrix[:, sp.start:sp.end].argmax(1) == c.slot
        return keep

    def _force(self, matrix: torch.Tensor, condition: Condition) -> torch.Tensor:
        """Set every condition of ``condition`` in the generated ``matrix`` (one-hot slots)."""
        spans = self.transformer_.conditional_spans_
        for group, slot in condition.pairs:
            sp = spans[group]
            matrix[:, sp.start:sp.end] = 0.0
            matrix[:, sp.start + slot] = 1.0
        return matrix

    def _direct_conditions(self, conds: list[Requested]) -> list[Requested]:
        """Which of the requested conditions the family's generator meets directly (the others are met
        by rejection); families override it. By default none: every condition by rejection."""
        return []

    def _generate_chunked(self, n: int, condition: Condition | None, gen: torch.Generator) -> torch.Tensor:
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
                        m = self._force(m, condition)
                    out[start + rows.start:start + rows.stop] = m
        return out

    def _sample_matrix(self, n: int, conds: list[Requested], gen: torch.Generator, max_tries: int) -> torch.Tensor:
        if not conds:
            return self._generate_chunked(n, None, gen)
        direct = self._direct_conditions(conds)
        condition = Condition.of(direct) if direct else None
        rest = [c for c in conds if c not in direct]
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
            asked = ", ".join(f"{c.column}={c.value!r}" for c in conds)
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
        from tabsynth.io import TableWriter

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

