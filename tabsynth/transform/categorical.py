"""Categorical and boolean columns: one-hot, bounded width, nulls as their own slot.

Columns with more than ``max_categories`` distinct values keep the most frequent ones and fold the
rest into one ``other`` slot; decoding ``other`` draws from the folded values by their frequency.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from tabsynth.errors import DataWarning
from tabsynth.transform.base import DISCRETE, Slots, Span, one_hot, restore_dtype


class CategoricalEncoder:
    """One-hot over ``categories`` (+ ``other`` slot when values were folded) (+ null slot)."""

    def __init__(
        self,
        column: str,
        categories: list[Any],
        *,
        has_missing: bool = False,
        other_values: list[Any] | None = None,
        other_weights: list[float] | None = None,
        dtype: str | None = None,
        dtype_categories: list[Any] | None = None,
        role: str = "category",
        force_other: bool = False,
        other_label: Any = None,
        warn_unknown: bool = True,
    ) -> None:
        self.column = column
        self.categories = list(categories)
        self.has_missing = has_missing
        self.other_values = list(other_values) if other_values else []
        w = np.asarray(other_weights if other_weights else [], dtype=np.float64)
        self.other_weights = (w / w.sum()).tolist() if len(w) else []
        self.dtype = dtype
        self.dtype_categories = dtype_categories
        self.role = role
        self.force_other = force_other
        self.other_label = other_label
        self.warn_unknown = warn_unknown
        self._index = pd.Index(self.categories)

    @classmethod
    def fit(
        cls,
        column: str,
        s: pd.Series,
        *,
        max_categories: int = 500,
        categories: list[Any] | None = None,
    ) -> CategoricalEncoder:
        """Fit on observed values, most frequent first; ``categories`` fixes the list instead."""
        dtype_cats = list(s.dtype.categories) if isinstance(s.dtype, pd.CategoricalDtype) else None
        return cls.from_counts(column, s.value_counts(dropna=True, sort=True), has_missing=bool(s.isna().any()),
                               dtype=str(s.dtype), dtype_categories=dtype_cats, max_categories=max_categories,
                               categories=categories)

    @classmethod
    def from_counts(
        cls,
        column: str,
        counts: pd.Series,
        *,
        has_missing: bool,
        dtype: str | None,
        dtype_categories: list[Any] | None = None,
        max_categories: int = 500,
        categories: list[Any] | None = None,
    ) -> CategoricalEncoder:
        """Fit on value counts (value -> count), e.g. summed over the shards of a distributed fit."""
        counts = counts.sort_values(ascending=False, kind="stable")
        if categories is None:
            keep = counts.index[: max_categories - 1] if len(counts) > max_categories else counts.index
            cats = list(keep)
            rest = counts.iloc[len(cats):]
        else:
            cats = list(categories)
            rest = counts[~counts.index.isin(cats)]
        return cls(
            column,
            [plain_value(c) for c in cats],
            has_missing=has_missing,
            other_values=[plain_value(v) for v in rest.index],
            other_weights=rest.to_numpy(dtype=np.float64).tolist(),
            dtype=dtype,
            dtype_categories=[plain_value(c) for c in dtype_categories] if dtype_categories is not None else None,
        )

    @property
    def has_other(self) -> bool:
        return bool(self.other_values) or self.force_other

    @property
    def width(self) -> int:
        return len(self.categories) + int(self.has_other) + int(self.has_missing)

    @property
    def other_slot(self) -> int | None:
        return len(self.categories) if self.has_other else None

    @property
    def missing_slot(self) -> int | None:
        return self.width - 1 if self.has_missing else None

    @property
    def spans(self) -> list[Span]:
        return [Span(0, self.width, DISCRETE, self.column, self.role)] if self.width else []

    def slot_of(self, value: Any) -> int | None:
        """Slot index of a value (None when the encoder cannot produce it)."""
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return self.missing_slot
        pos = self._index.get_indexer([value])[0]
        if pos >= 0:
            return int(pos)
        if value in set(self.other_values):
            return self.other_slot
        if isinstance(value, str):  # from a command line: "True", "3"
            text = [str(c) for c in self.categories]
            if value in text:
                return text.index(value)
        return None

    def transform(self, s: pd.Series) -> np.ndarray:
        if self.width == 0:
            return np.zeros((len(s), 0), dtype=np.float32)
        codes = self._index.get_indexer(s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s)
        missing = s.isna().to_numpy()
        unknown = (codes < 0) & ~missing
        if self.has_other:
            codes = np.where(unknown, self.other_slot, codes)
        elif unknown.any():
            if self.warn_unknown:
                warnings.warn(
                    f"column {self.column!r}: {int(unknown.sum())} value(s) unseen at fit time were "
                    "encoded as the most frequent category",
                    DataWarning,
                    stacklevel=3,
                )
            codes = np.where(unknown, 0, codes)
        if self.has_missing:
            codes = np.where(missing, self.missing_slot, codes)
        else:
            codes = np.where(missing, 0, codes)
        return one_hot(codes.astype(np.int64), self.width)

    def inverse_transform(self, block: np.ndarray, rng: np.random.Generator, offset: int = 0,
                          slots: Slots | None = None) -> pd.Series:
        n = len(block)
        if self.width == 0:
            return restore_dtype(pd.Series([None] * n, dtype=object, name=self.column), self.dtype)
        codes = slots[self.role] if slots else np.argmax(block, axis=1)
        table = np.empty(self.width, dtype=object)
        table[: len(self.categories)] = self.categories
        if self.has_missing:
            table[self.missing_slot] = None
        values = table[codes]
        if self.has_other:
            is_other = codes == self.other_slot
            k = int(is_other.sum())
            if k and not self.other_values:  # DP mode: the folded values are unknown
                values[is_other] = self.other_label
            elif k:
                draws = rng.choice(len(self.other_values), size=k, p=self.other_weights)
                others = np.empty(len(self.other_values), dtype=object)
                others[:] = self.other_values
                values[is_other] = others[draws]
        s = pd.Series(values, name=self.column, dtype=object)
        if self.dtype == "category":
            return pd.Series(pd.Categorical(values, categories=self.dtype_categories), name=self.column)
        return restore_dtype(s, self.dtype)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "categorical", "column": self.column, "categories": self.categories,
            "has_missing": self.has_missing, "other_values": self.other_values,
            "other_weights": self.other_weights, "dtype": self.dtype,
            "dtype_categories": self.dtype_categories, "role": self.role,
            "force_other": self.force_other, "other_label": self.other_label, "warn_unknown": self.warn_unknown,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoricalEncoder:
        d = {k: v for k, v in d.items() if k != "type"}
        return cls(d.pop("column"), d.pop("categories"), **d)


def plain_value(v: Any) -> Any:
    """numpy scalars to Python scalars so JSON round trips keep the type."""
    return v.item() if isinstance(v, np.generic) else v
