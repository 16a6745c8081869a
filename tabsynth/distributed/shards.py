"""Reading one rank's share of a Parquet file or directory without loading the rest.

Rows are split into ``world_size`` contiguous, balanced ranges by the Parquet footers alone (row
counts per row group); a rank reads only the row groups that overlap its range and slices them.
Every row lands on exactly one rank, whatever the number of files or row groups.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq

from tabsynth.errors import InputFileError


@dataclass(frozen=True)
class _Piece:
    path: str
    row_group: int
    start: int  # global row offset of the row group's first row
    rows: int


def _pieces(path: Path) -> list[_Piece]:
    try:
        files = sorted(pds.dataset(str(path), format="parquet").files)
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        raise InputFileError(f"{path}: could not be opened as a Parquet dataset ({exc})") from exc
    if not files:
        raise InputFileError(f"{path}: holds no Parquet files")
    out, pos = [], 0
    for f in files:
        meta = pq.ParquetFile(f).metadata
        for g in range(meta.num_row_groups):
            rows = meta.row_group(g).num_rows
            out.append(_Piece(f, g, pos, rows))
            pos += rows
    return out


def count_rows(path: str | os.PathLike) -> int:
    """Rows in a Parquet file or directory, from the footers."""
    return sum(p.rows for p in _pieces(Path(path)))


def shard_range(total: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of rank ``rank``: balanced, contiguous, covering every row once."""
    return total * rank // world_size, total * (rank + 1) // world_size


def read_shard(path: str | os.PathLike, rank: int, world_size: int) -> pd.DataFrame:
    """This rank's rows of a Parquet file or directory (a pyarrow dataset), reading only their row groups."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{path}: file not found; check the path")
    pieces = _pieces(p)
    total = sum(x.rows for x in pieces)
    start, stop = shard_range(total, rank, world_size)
    tables = []
    for piece in pieces:
        lo, hi = max(start, piece.start), min(stop, piece.start + piece.rows)
        if lo >= hi:
            continue
        table = pq.ParquetFile(piece.path).read_row_group(piece.row_group)
        tables.append(table.slice(lo - piece.start, hi - lo))
    if not tables:  # more ranks than rows: an empty frame with the schema
        schema = pq.ParquetFile(pieces[0].path).schema_arrow
        return schema.empty_table().to_pandas()
    return pa.concat_tables(tables, promote_options="default").to_pandas()
