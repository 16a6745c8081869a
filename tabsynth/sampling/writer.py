"""Streaming writer for ``sample_to_file``: batches go to disk as they are made (bounded memory)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tabsynth.io import table_format


class TableWriter:
    """Append DataFrames with fixed columns to a CSV (gzip by suffix) or one Parquet file."""

    def __init__(self, path: str | os.PathLike, columns: list[str]) -> None:
        self.path = Path(path)
        self.format = table_format(self.path)
        self.columns = columns
        self._parquet: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._csv = None
        self.rows = 0

    def __enter__(self) -> "TableWriter":
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
