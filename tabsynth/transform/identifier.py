"""Id columns: never modelled; decoding makes fresh unique values in the column's format."""

from __future__ import annotations

import string
from typing import Any

import numpy as np
import pandas as pd

from tabsynth.transform.base import Slots, Span, restore_dtype

_ALPHABETS = [
    string.digits,
    "0123456789abcdef",
    "0123456789ABCDEF",
    string.ascii_lowercase,
    string.ascii_uppercase,
    string.digits + string.ascii_lowercase,
    string.digits + string.ascii_uppercase,
    string.ascii_letters,
    string.digits + string.ascii_letters,
]
_MAX_LEN = 64


class IdEncoder:
    """Regenerates ids: integers count up, ``PREFIX000123`` keeps prefix and width, fixed-length
    codes (UUIDs, account numbers) keep each position's alphabet and constant characters."""

    spans: list[Span] = []
    width = 0

    def __init__(self, column: str, style: str, *, start: int = 0, prefix: str = "", digits: int = 0,
                 alphabets: list[str] | None = None, dtype: str | None = None, has_missing: bool = False) -> None:
        self.column = column
        self.style = style
        self.start = int(start)
        self.prefix = prefix
        self.digits = int(digits)
        self.alphabets = alphabets or []
        self.dtype = dtype
        self.has_missing = has_missing

    @classmethod
    def fit(cls, column: str, s: pd.Series) -> IdEncoder:
        v = s.dropna()
        common: dict[str, Any] = dict(dtype=str(s.dtype), has_missing=bool(s.isna().any()))
        if pd.api.types.is_numeric_dtype(s.dtype):
            return cls(column, "integer", start=int(v.min()) if len(v) else 0, **common)
        text = v.astype(str)
        parts = text.str.extract(r"^(\D*?)(\d+)$")
        if len(text) and parts[0].notna().all() and parts[0].nunique() == 1:
            widths = parts[1].str.len()
            return cls(column, "prefixed", prefix=str(parts[0].iloc[0]), digits=int(widths.max()),
                       start=0, **common)
        lengths = text.str.len()
        if len(text) and lengths.nunique() == 1 and 0 < lengths.iloc[0] <= _MAX_LEN:
            n_chars = int(lengths.iloc[0])
            chars = np.array(text.to_numpy(dtype=f"<U{n_chars}")).view("<U1").reshape(len(text), n_chars)
            alphabets = []
            for j in range(n_chars):
                seen = set(np.unique(chars[:, j]).tolist())
                fits = [a for a in _ALPHABETS if seen <= set(a)]
                alphabets.append(fits[0] if fits and len(seen) > 1 else "".join(sorted(seen)))
            return cls(column, "pattern", alphabets=alphabets, **common)
        return cls(column, "prefixed", prefix=f"{column}-", digits=len(str(len(text))), **common)

    def transform(self, s: pd.Series) -> np.ndarray:
        return np.zeros((len(s), 0), dtype=np.float32)

    def inverse_transform(self, block: np.ndarray, rng: np.random.Generator, offset: int = 0,
                          slots: Slots | None = None) -> pd.Series:
        n = len(block)
        counter = np.arange(offset, offset + n, dtype=np.int64)
        if self.style == "integer":
            values = pd.Series(self.start + counter, name=self.column)
            return restore_dtype(values, self.dtype)
        if self.style == "prefixed":
            nums = pd.Series(counter).astype(str).str.zfill(self.digits)
            return restore_dtype((self.prefix + nums).rename(self.column), self.dtype)
        return restore_dtype(pd.Series(self._patterned(counter, rng), name=self.column), self.dtype)

    def _patterned(self, counter: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Unique codes: a mixed-radix counter (from a random start) over the variable positions."""
        n_pos = len(self.alphabets)
        bases = np.array([len(a) for a in self.alphabets], dtype=np.int64)
        chars = np.empty((len(counter), n_pos), dtype="<U1")
        capacity = 1
        k = counter.copy()
        k += int(rng.integers(0, 2**31))
        for j in range(n_pos - 1, -1, -1):
            alphabet = np.array(list(self.alphabets[j]))
            if bases[j] == 1:
                chars[:, j] = alphabet[0]
            elif capacity < 2**40:
                chars[:, j] = alphabet[k % bases[j]]
                k //= bases[j]
                capacity *= int(bases[j])
            else:
                chars[:, j] = alphabet[rng.integers(0, bases[j], size=len(counter))]
        return chars.view(f"<U{n_pos}").reshape(-1) if n_pos else np.array([""] * len(counter))

    def to_dict(self) -> dict[str, Any]:
        return {"type": "id", "column": self.column, "style": self.style, "start": self.start,
                "prefix": self.prefix, "digits": self.digits, "alphabets": self.alphabets,
                "dtype": self.dtype, "has_missing": self.has_missing}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IdEncoder:
        d = {k: v for k, v in d.items() if k != "type"}
        return cls(d.pop("column"), d.pop("style"), **d)
