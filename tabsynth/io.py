"""Reading and writing tables (.csv, .csv.gz, .parquet) with clear errors; writing streams batches
to disk as they are made (``sample_to_file``), so memory stays bounded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tabsynth.errors import InputFileError

TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def table_format(path: str | os.PathLike) -> str:
    """Return ``"csv"`` or ``"parquet"`` from a file name, or raise :class:`InputFileError`."""
    name = str(path).lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    raise InputFileError(
        f"{path}: unknown table format; use a file ending in .csv, .csv.gz or .parquet"
    )


def read_table(path: str | os.PathLike, text: bool = False) -> pd.DataFrame:
    """Read a CSV (optionally gzip) or Parquet file, or a directory of Parquet files, into a DataFrame.

    ``text=True`` reads a CSV's cells as text (empty and NA-like cells missing): pandas would infer
    each column's dtype from every cell, so one cell (a gap in an integer column, ``12a`` among
    numbers) would change it. DP fits read CSVs so and take kinds from declared metadata. A Parquet
    file keeps the types stored in it."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{path}: file not found; check the path")
    # a directory is read as a Parquet dataset (all its .parquet files)
    fmt = "parquet" if p.is_dir() else table_format(p)
    try:
        if fmt == "parquet":
            df = pd.read_parquet(p)
        else:
            df = pd.read_csv(p, low_memory=False, dtype=str if text else None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(f"{path}: could not be read as a {fmt} table ({first})") from exc
    except Exception as exc:  # pyarrow raises its own types for non-parquet bytes
        if type(exc).__module__.startswith("pyarrow"):
            raise InputFileError(f"{path}: could not be read as a {fmt} table ({exc})") from exc
        raise
    if df.shape[1] == 0:
        raise InputFileError(f"{path}: holds no columns; is it a table with a header row?")
    return df


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a DataFrame as CSV (gzip if the name ends in .gz) or Parquet, chosen by suffix."""
    p = Path(path)
    fmt = table_format(p)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        df.to_parquet(p, index=False)
    else:
        df.to_csv(p, index=False)
    return p

class TableWriter:
    """Append DataFrames with fixed columns to a CSV (gzip by suffix) or one Parquet file."""

    def __init__(self, path: str | os.PathLike, columns: list[str]) -> None:
        self.path = Path(path)
        self.format = table_format(self.path)
        self.columns = columns
        self._parquet: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._csv: IO[str] | None = None
        self.rows = 0

    def __enter__(self) -> TableWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, df: pd.DataFrame) -> None:
        if self.format == "parquet":
            table = pa.Table.from_pandas(df, preserve_index=False)
            if self._parquet is None:
                self._schema = _concrete(table.schema)
                self._parquet = pq.ParquetWriter(self.path, self._schema)
            self._parquet.write_table(table.cast(self._schema))
        else:
            if self._csv is None:
                compression = "gzip" if self.path.name.lower().endswith(".gz") else None
                import gzip
                self._csv = gzip.open(self.path, "wt", newline="") if compression else open(self.path, "w", newline="")
                df.iloc[:0].to_csv(self._csv, index=False)
            df.to_csv(self._csv, index=False, header=False)
        self.rows += len(df)

    def __exit__(self, *exc: object) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()


def _concrete(schema: pa.Schema) -> pa.Schema:
    """Columns that came out all-null in the first batch are typed as strings, not ``null``."""
    fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in schema]
    return pa.schema(fields, metadata=schema.metadata)
