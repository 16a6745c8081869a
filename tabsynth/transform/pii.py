"""Personal identifiers and free text: never modelled; decoding draws fresh values from Faker."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from tabsynth.errors import ConfigError
from tabsynth.transform.base import Slots, Span, restore_dtype

#: Our short names for Faker providers.
PROVIDERS = {"name": "name", "first_name": "first_name", "last_name": "last_name", "email": "email",
             "phone": "phone_number", "address": "address", "city": "city", "company": "company",
             "job": "job", "text": "sentence"}
#: Distinct values Faker makes per decode; rows draw from them (Faker costs ~20-50 us per value).
POOL = 10_000


@lru_cache(maxsize=8)
def _faker(locale: str) -> Any:
    """One Faker per locale (building one takes about a second); every decode reseeds it."""
    from faker import Faker

    try:
        return Faker(locale)
    except AttributeError as exc:
        raise ConfigError(f"Faker has no locale {locale!r}; use e.g. 'en_US', 'de_DE', 'fr_FR'") from exc


class PiiEncoder:
    """Regenerates a ``pii`` column from Faker's ``pii_type`` provider; only the missing share is
    learned from the data (none under DP), so no real value can reach the output."""

    spans: list[Span] = []
    width = 0

    def __init__(self, column: str, pii_type: str = "text", *, locale: str = "en_US", missing_share: float = 0.0,
                 dtype: str | None = None) -> None:
        self.column = column
        self.pii_type = pii_type
        self.locale = locale
        self.missing_share = float(missing_share)
        self.dtype = dtype
        self.provider = PROVIDERS.get(pii_type, pii_type)
        if pii_type != "empty" and not callable(getattr(_faker(locale), self.provider, None)):
            raise ConfigError(f"column {column!r}: pii_type {pii_type!r} is neither one of "
                              f"{', '.join(PROVIDERS)}, 'empty' nor a Faker provider")

    @classmethod
    def fit(cls, column: str, s: pd.Series | None, pii_type: str | None = None,
            locale: str = "en_US") -> PiiEncoder:
        """``s`` gives the missing share; pass None to read nothing (the DP mode)."""
        missing = float(s.isna().mean()) if s is not None and len(s) else 0.0
        dtype = str(s.dtype) if s is not None else "object"
        return cls(column, pii_type or "text", locale=locale, missing_share=missing, dtype=dtype)

    def transform(self, s: pd.Series) -> np.ndarray:
        return np.zeros((len(s), 0), dtype=np.float32)

    def inverse_transform(self, block: np.ndarray, rng: np.random.Generator, offset: int = 0,
                          slots: Slots | None = None) -> pd.Series:
        n = len(block)
        if self.pii_type == "empty" or n == 0:
            return pd.Series([None] * n, name=self.column, dtype=object)
        fake = _faker(self.locale)
        fake.seed_instance(int(rng.integers(0, 2**31)))
        make = getattr(fake, self.provider)
        pool = np.array([str(make()).replace("\n", ", ") for _ in range(min(n, POOL))], dtype=object)
        values = pool[rng.integers(0, len(pool), n)] if n > len(pool) else pool
        values = np.where(rng.random(n) < self.missing_share, np.array(None, dtype=object), values)
        return restore_dtype(pd.Series(values, name=self.column, dtype=object), self.dtype)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "pii", "column": self.column, "pii_type": self.pii_type, "locale": self.locale,
                "missing_share": self.missing_share, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PiiEncoder:
        d = {k: v for k, v in d.items() if k != "type"}
        return cls(d.pop("column"), **d)
