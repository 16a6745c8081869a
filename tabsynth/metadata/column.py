"""One column's description: kind, dtype, nullability and its (observed or public) domain."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

KINDS = ("numerical", "integer", "categorical", "boolean", "datetime", "id", "pii")
#: What a ``pii`` column holds; its values are drawn from a public generator (Faker), never from the data.
#: Any other Faker provider name (``"ssn"``, ``"iban"``, ``"url"``...) is accepted too.
PII_TYPES = ("name", "first_name", "last_name", "email", "phone", "address", "city", "company", "job", "text",
             "empty")
DOMAIN_SOURCES = ("observed", "public")
RESOLUTIONS = ("ns", "us", "ms", "s", "min", "h", "D")


@dataclass(frozen=True)
class ColumnSpec:
    """Immutable description of one column.

    ``bounds`` (numerical, integer, datetime as ISO strings) and ``categories`` (categorical,
    boolean) form the column's *domain*. ``domain_source`` says where it came from:
    ``"observed"`` when :meth:`Metadata.detect` read it off the data (private: the DP mode ignores
    it), ``"public"`` only when the user declared it (free to use under DP).
    """

    name: str
    kind: str
    dtype: str | None = None
    nullable: bool = False
    bounds: tuple[Any, Any] | None = None
    categories: tuple[Any, ...] | None = None
    domain_source: str | None = None
    datetime_format: str | None = None
    timezone: str | None = None
    resolution: str | None = None
    pii_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def problems(self) -> list[str]:
        """All the reasons this spec is invalid (empty when valid)."""
        out: list[str] = []
        where = f"column {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            out.append(f"column name {self.name!r} must be a non-empty string")
        if self.kind not in KINDS:
            out.append(f"{where}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.domain_source is not None and self.domain_source not in DOMAIN_SOURCES:
            out.append(f"{where}: domain_source must be 'observed' or 'public', not {self.domain_source!r}")
        if self.bounds is not None:
            if self.kind not in ("numerical", "integer", "datetime"):
                out.append(f"{where}: bounds only apply to numerical, integer or datetime columns")
            elif len(self.bounds) != 2:
                out.append(f"{where}: bounds must be a pair (low, high)")
            elif self.kind != "datetime":
                lo, hi = self.bounds
                if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (lo, hi)):
                    out.append(f"{where}: bounds must be finite numbers, got {self.bounds!r}")
                elif lo > hi:
                    out.append(f"{where}: lower bound {lo} is above upper bound {hi}")
        if self.categories is not None:
            if self.kind not in ("categorical", "boolean"):
                out.append(f"{where}: categories only apply to categorical or boolean columns")
            elif len(set(map(repr, self.categories))) != len(self.categories):
                out.append(f"{where}: categories contain duplicates")
            elif len(self.categories) == 0:
                out.append(f"{where}: categories must not be empty")
        if self.resolution is not None and self.resolution not in RESOLUTIONS:
            out.append(f"{where}: resolution {self.resolution!r} is not one of {', '.join(RESOLUTIONS)}")
        if self.kind != "datetime" and (self.datetime_format or self.timezone or self.resolution):
            out.append(f"{where}: datetime_format, timezone and resolution only apply to datetime columns")
        if self.pii_type is not None and self.kind != "pii":
            out.append(f"{where}: pii_type only applies to kind 'pii' (declare kind='pii' or drop pii_type)")
        elif self.pii_type is not None and not (isinstance(self.pii_type, str) and self.pii_type.isidentifier()):
            out.append(f"{where}: pii_type {self.pii_type!r} must be one of {', '.join(PII_TYPES)} or a Faker "
                       "provider name")
        if (self.bounds is not None or self.categories is not None) and self.domain_source is None:
            out.append(f"{where}: a domain needs domain_source 'observed' or 'public'")
        return out

    @property
    def is_public(self) -> bool:
        """True when the user declared this column's domain public."""
        return self.domain_source == "public"

    def with_changes(self, **changes: Any) -> ColumnSpec:
        """A copy with some fields replaced."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; fields at their default are left out."""
        d: dict[str, Any] = {"kind": self.kind}
        if self.dtype is not None:
            d["dtype"] = self.dtype
        d["nullable"] = bool(self.nullable)
        if self.bounds is not None or self.categories is not None:
            domain: dict[str, Any] = {"source": self.domain_source}
            if self.bounds is not None:
                domain["bounds"] = [_jsonable(v) for v in self.bounds]
            if self.categories is not None:
                domain["categories"] = [_jsonable(v) for v in self.categories]
            d["domain"] = domain
        for key in ("datetime_format", "timezone", "resolution", "pii_type"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if self.extra:
            d["extra"] = dict(self.extra)
        return d

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> ColumnSpec:
        """Inverse of :meth:`to_dict`; unknown keys are kept in ``extra``."""
        d = dict(d)
        domain = d.pop("domain", None) or {}
        bounds = domain.get("bounds")
        cats = domain.get("categories")
        known = {"kind", "dtype", "nullable", "datetime_format", "timezone", "resolution", "pii_type", "extra"}
        extra = dict(d.get("extra") or {})
        extra.update({k: v for k, v in d.items() if k not in known})
        return cls(
            name=name,
            kind=d.get("kind"),  # type: ignore[arg-type]
            dtype=d.get("dtype"),
            nullable=bool(d.get("nullable", False)),
            bounds=tuple(bounds) if bounds is not None else None,
            categories=tuple(cats) if cats is not None else None,
            domain_source=domain.get("source") if domain else None,
            datetime_format=d.get("datetime_format"),
            timezone=d.get("timezone"),
            resolution=d.get("resolution"),
            pii_type=d.get("pii_type"),
            extra=extra,
        )


def _jsonable(v: Any) -> Any:
    """Turn numpy scalars into plain Python values for JSON."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            return v.item()
        except (ValueError, AttributeError):
            pass
    return v
