"""Data inventory and threat model: what each column is, and what the attacker is assumed to know.

Roles are guessed from column names (and the id kind); the user overrides them with
``quasi_identifiers=`` and ``sensitive=``. A ``profile`` ("healthcare" or "finance") picks the
name lists and the regulatory wording.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from tabsynth.errors import ConfigError
from tabsynth.report._common import TEXT_KINDS, Prepared
from tabsynth.transform.pii import PROVIDERS

PROFILES = ("healthcare", "finance")

_DIRECT = {"name", "firstname", "lastname", "surname", "fullname", "email", "mail", "phone", "telephone", "mobile",
           "fax", "ssn", "nhs", "mrn", "passport", "license", "licence", "address", "street", "ip", "url",
           "iban", "pan", "card", "cardnumber", "accountnumber", "account", "patientid", "customerid", "vin",
           "plate", "biometric", "photo", "device"}
_QI_COMMON = {"age", "sex", "gender", "race", "ethnicity", "zip", "zipcode", "postcode", "postal", "postalcode",
              "dob", "birth", "birthdate", "birthday", "marital", "county", "city", "state", "region", "country",
              "nationality", "native", "occupation", "education", "job", "religion", "height", "weight"}
_QI = {
    None: _QI_COMMON,
    "healthcare": _QI_COMMON | {"admission", "admitted", "discharge", "visit", "date", "year", "yr"},
    "finance": _QI_COMMON | {"employment", "employer", "workclass", "dependents", "housing", "residence"},
}
_SENSITIVE = {
    None: {"income", "salary", "diagnosis", "disease", "hiv", "religion", "sexual", "health", "wage"},
    "healthcare": {"diagnosis", "diag", "icd", "icd9", "icd10", "condition", "disease", "procedure", "drug",
                   "medication", "lab", "chapter", "death", "outcome", "mortality", "hiv", "pregnancy", "cancer",
                   "creatinine", "kappa", "lambda", "mgus", "bmi", "glucose", "cholesterol", "treatment"},
    "finance": {"income", "salary", "wage", "balance", "credit", "score", "creditscore", "loan", "amount", "debt",
                "default", "status", "savings", "limit", "gain", "loss", "capital", "payment", "delinquency",
                "fraud", "rating"},
}
#: Attributes whose use is restricted in lending decisions (fair-lending review).
_PROTECTED = {"age", "sex", "gender", "race", "ethnicity", "marital", "religion", "nationality", "native",
              "disability", "pregnancy"}

WORDING = {
    None: {
        "audience": "data custodian and data-protection reviewer",
        "frame": ("The privacy section answers the three questions of the EU Article 29 Working Party's opinion "
                  "on anonymisation (WP216): can one person be singled out, can their records be linked, can "
                  "something about them be inferred?"),
    },
    "healthcare": {
        "audience": "HIPAA expert determination (45 CFR 164.514(b)(1)) and GDPR reviewers",
        "frame": ("Under HIPAA expert determination, a qualified expert must find the risk 'very small' that an "
                  "anticipated recipient could identify a patient, alone or with other reasonably available "
                  "data, and document the methods and results. This report documents the methods and numbers; "
                  "it does not replace the expert's signed determination. Under GDPR (Recital 26, WP216) data "
                  "are anonymous only if singling out, linkage and inference are not reasonably likely: see "
                  "the three attack results."),
    },
    "finance": {
        "audience": "model-risk (SR 11-7 style validation) and fair-lending reviewers",
        "frame": ("For model-risk review, the utility section shows whether a model trained on the synthetic "
                  "table performs like one trained on real data on the same real test rows, and which features "
                  "drive it. For fair-lending review, protected attributes (age, sex, race, marital status, ...) "
                  "are marked below: check their distributions in the fidelity section before using the data "
                  "to build or test credit models. Account or card numbers must never appear verbatim: see "
                  "exact copies and copied id values."),
    },
}


def check_profile(profile: str | None) -> str | None:
    if profile is None:
        return None
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)} or None")
    return profile


def _tokens(name: str) -> set[str]:
    s = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name)).lower()
    parts = [p for p in re.split(r"[^a-z0-9]+", s) if p]
    return set(parts) | {"".join(parts)}


def _matches(name: str, words: set[str]) -> bool:
    return bool(_tokens(name) & words)


def assign_roles(prep: Prepared, profile: str | None, target: str | None,
                 quasi_identifiers: list[str] | None, sensitive: list[str] | None) -> dict[str, str]:
    """Role of every column: direct identifier, key, quasi-identifier, sensitive or other."""
    names = prep.meta.column_names
    for arg, given in (("quasi_identifiers", quasi_identifiers), ("sensitive", sensitive)):
        bad = [c for c in (given or []) if c not in names]
        if bad:
            raise ConfigError(f"{arg} names unknown columns {bad}; known columns: {', '.join(map(str, names))}")
    roles: dict[str, str] = {}
    for c in names:
        if _matches(c, _DIRECT) or prep.kinds[c] == "pii":
            roles[c] = "direct identifier"
        elif prep.kinds[c] == "id":
            roles[c] = "key"
        elif prep.kinds[c] in TEXT_KINDS:
            roles[c] = "direct identifier" if prep.kinds[c] == "pii" else "free text"
        elif quasi_identifiers is not None:
            roles[c] = "quasi-identifier" if c in quasi_identifiers else "other"
        elif _matches(c, _QI[profile]) or prep.kinds[c] == "datetime":
            roles[c] = "quasi-identifier"
        else:
            roles[c] = "other"
    if sensitive is not None:
        for c in sensitive:
            roles[c] = "sensitive"
    else:
        for c in names:
            if roles[c] == "other" and (_matches(c, _SENSITIVE[profile]) or c == target):
                roles[c] = "sensitive"
    return roles


def build_inventory(prep: Prepared, real: pd.DataFrame, roles: dict[str, str], profile: str | None) -> dict[str, Any]:
    cols = []
    for c in prep.meta.column_names:
        s = real[c]
        cols.append({"column": c, "kind": prep.kinds[c], "role": roles[c],
                     "missing_share": float(s.isna().mean()), "distinct_values": int(s.nunique(dropna=True)),
                     "protected_attribute": _matches(c, _PROTECTED),
                     "in_analysis": c in prep.columns})
    return {"rows": int(len(real)), "columns": cols, "personal_identifiers": personal_identifiers(prep)}


def personal_identifiers(prep: Prepared) -> list[dict[str, Any]]:
    """The ``pii`` columns: never learned, each synthetic cell drawn from a Faker provider."""
    out = []
    for c in prep.meta.column_names:
        if prep.kinds[c] != "pii":
            continue
        spec = prep.meta.columns[c]
        pii_type = spec.pii_type or "text"
        out.append({"column": c, "pii_type": pii_type, "faker_provider": PROVIDERS.get(pii_type, pii_type),
                    "locale": spec.extra.get("locale", "en_US"), "learned_from_data": False})
    return out


def threat_model(roles: dict[str, str], profile: str | None, target: str | None) -> dict[str, Any]:
    qis = [c for c, r in roles.items() if r == "quasi-identifier"]
    sens = [c for c, r in roles.items() if r == "sensitive"]
    direct = [c for c, r in roles.items() if r == "direct identifier"]
    words = WORDING[profile]
    return {
        "profile": profile,
        "audience": words["audience"],
        "framing": words["frame"],
        "unit_of_privacy": "one row of the real table (if one person has several rows, risks per person are higher)",
        "attacker": ("receives the whole synthetic table and knows, from outside sources, the quasi-identifiers of "
                     "the people they target (" + (", ".join(map(str, qis)) if qis else "no quasi-identifier "
                     "declared: all columns are assumed known") + "); wants to single a person out, link their "
                     "records, or learn a sensitive value (" + (", ".join(map(str, sens)) or "none declared") + ")"),
        "quasi_identifiers": qis,
        "sensitive": sens,
        "direct_identifiers": direct,
        "direct_identifier_note": ("direct identifiers must not be released as they are: drop them or replace "
                                   "them with generated values" if direct else "no direct identifier found by name"),
        "control": "real holdout rows never shown to the generator: what an attacker learns about them is "
                   "population knowledge, not leakage",
    }
