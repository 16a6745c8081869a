"""The span layout shared by encoders and models, and the column-encoder interface."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

CONTINUOUS = "continuous"
DISCRETE = "discrete"

#: The active slot of each of an encoder's discrete spans, by the span's role.
Slots = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Span:
    """A slice ``[start, end)`` of the encoded matrix.

    ``kind`` is ``"continuous"`` (one scalar in [-1, 1], a tanh head) or ``"discrete"`` (a one-hot
    group, a softmax head). ``role`` says what it encodes: ``value``, ``mode`` (the mixture
    component of a numeric value), ``category`` or ``missing`` (the null indicator).
    """

    start: int
    end: int
    kind: str
    column: str
    role: str

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def conditional(self) -> bool:
        """True for the discrete spans the GAN's conditional vector ranges over."""
        return self.kind == DISCRETE and self.role in ("category", "missing")

    def shifted(self, offset: int) -> Span:
        return replace(self, start=self.start + offset, end=self.end + offset)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "kind": self.kind, "column": self.column, "role": self.role}


@runtime_checkable
class ColumnEncoder(Protocol):
    """What every column encoder provides (``TableTransformer`` relies on nothing else): one column
    to a float32 block and back, with parameters that serialise to JSON. A new kind of column needs
    one class with these members and an entry in ``TableTransformer``'s encoder table."""

    column: str

    @property
    def width(self) -> int:
        """Columns of this encoder's block."""

    @property
    def spans(self) -> list[Span]:
        """Spans local to this encoder's block (starting at 0)."""

    def transform(self, s: pd.Series) -> np.ndarray: ...

    def inverse_transform(self, block: np.ndarray, rng: np.random.Generator, offset: int = 0,
                          slots: Slots | None = None) -> pd.Series:
        """The column back from its block. ``slots`` holds the active slot of each discrete span by role,
        for blocks whose groups are exactly one-hot (then no argmax is needed)."""

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnEncoder: ...


def one_hot(codes: np.ndarray, width: int) -> np.ndarray:
    """Float32 one-hot rows for integer codes in [0, width)."""
    out = np.zeros((len(codes), width), dtype=np.float32)
    out[np.arange(len(codes)), codes] = 1.0
    return out


def restore_dtype(values: pd.Series, dtype: str | None) -> pd.Series:
    """Cast decoded values back to the column's original pandas dtype where possible."""
    if dtype is None or dtype == "object":
        return values.astype(object).where(values.notna(), None) if values.dtype != object else values
    if dtype in ("int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64") and values.isna().any():
        return values.astype("float64")
    if dtype == "bool" and values.isna().any():
        return values.astype(object)
    try:
        return values.astype(dtype)
    except (TypeError, ValueError):
        return values
