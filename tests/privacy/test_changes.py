"""DP preprocessing says what it changed, from its noisy statistics alone, with the fix."""

import warnings

import pandas as pd
import pytest

import tabsynth as ts
from tabsynth.errors import PrivacyWarning
from tabsynth.privacy.changes import describe_changes, material, warning_text
from tabsynth.privacy.randomness import reproducible_noise
from tabsynth.release.bundle import _changes_section

TINY = dict(epochs=1, seed=0, verbose=False, device="cpu")


def _fit_and_warnings(cls, df, **kw):
    with warnings.catch_warnings(record=True) as caught, reproducible_noise(0):
        warnings.simplefilter("always")
        model = cls(epsilon=1.0, **{**TINY, **kw}).fit(df)
    changed = [str(w.message) for w in caught if issubclass(w.category, PrivacyWarning) and "changed" in str(w.message)]
    return model, changed


def _change(model, column):
    changes = model.privacy_spent().parts["preprocessing"].details["changes"]
    return [c for c in changes if c["column"] == column]


def test_german_credit_target_minority_is_reported_folded():
    model, changed = _fit_and_warnings(ts.TVAE, ts.datasets.load("german_credit"))
    [credit] = _change(model, "credit")
    assert credit["material"] and "partition-selection threshold" in credit["what"] and "--public-domain credit=" in credit["fix"]
    assert len(changed) == 1 and "  credit: " in changed[0] and "with_public_domain" in changed[0]
    # declaring the target's categories public keeps both and removes it from the list
    df = ts.datasets.load("german_credit")
    meta = ts.Metadata.from_dtypes(df).with_public_domain("credit", categories=["good", "bad"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        fixed = ts.TVAE(epsilon=1.0, **TINY).fit(df, metadata=meta)
    assert _change(fixed, "credit") == [] and fixed.transformer_.encoder_of("credit").categories == ["good", "bad"]


def test_a_year_column_far_from_zero_is_reported():
    df = ts.datasets.load("flchain")[["sample.yr", "age", "sex"]]
    model, changed = _fit_and_warnings(ts.CTGAN, df)
    [year] = _change(model, "sample.yr")
    assert year["material"] and "far from zero" in year["what"] and "--public-bounds sample.yr=" in year["fix"]
    assert "  sample.yr: " in changed[0]


def test_describe_changes_from_noisy_facts():
    facts = {
        "grade": {"kind": "categorical", "public": False, "kept": 3, "folded": 120.0, "other_kept": True,
                  "missing": 0.0},
        "rare": {"kind": "categorical", "public": False, "kept": 0, "folded": 900.0, "other_kept": True,
                 "missing": 0.0},
        "few": {"kind": "categorical", "public": False, "kept": 4, "folded": 3.0, "other_kept": False,
                "missing": 40.0},
        "flat": {"kind": "numerical", "public": False, "degenerate": True, "lower": 0.0, "upper": 0.0,
                 "missing": -5.0},
        "wide": {"kind": "numerical", "public": False, "degenerate": False, "lower": -3.0, "upper": 250.0,
                 "missing": 0.0},
        "when": {"kind": "datetime", "public": False, "degenerate": False, "lower": 18_262.0, "upper": 18_320.0,
                 "missing": 0.0},
        "declared": {"kind": "numerical", "public": True, "degenerate": False, "lower": 1.0, "upper": 1.1,
                     "missing": 0.0},
    }
    changes = describe_changes(facts, tau_sel=200.0, noise_std=10.0, noise_floor=45.0, n_hat=1000)
    by = {(c["column"], c["material"]) for c in changes}
    assert by == {("grade", True), ("rare", True), ("few", False), ("few", True), ("flat", True), ("wide", False),
                  ("when", True)}
    folded_away = {**facts["grade"], "other_kept": False}
    [gone] = describe_changes({"g": folded_away}, tau_sel=200.0, noise_std=10.0, noise_floor=45.0, n_hat=1000)
    assert gone["material"] and "not generated at all" in gone["what"]
    single = {**facts["grade"], "kept": 1, "other_kept": False, "folded": 10.0}
    [constant] = describe_changes({"g": single}, tau_sel=200.0, noise_std=10.0, noise_floor=45.0, n_hat=1000)
    assert constant["material"] and "constant" in constant["what"]
    noise_only = {**facts["grade"], "kept": 4, "folded": 30.0}  # within 1.5 of its standard deviations
    [quiet] = describe_changes({"g": noise_only}, tau_sel=200.0, noise_std=10.0, noise_floor=45.0, n_hat=1000)
    assert not quiet["material"]
    assert "12% (+/- 2%) of rows" in next(c["what"] for c in changes if c["column"] == "grade")
    assert "2020-01-01" in next(c["what"] for c in changes if c["column"] == "when")
    text = warning_text(changes)
    assert "rare:" in text and "wide:" not in text and "for missing values" in text
    assert {c["column"] for c in material(changes)} == {"grade", "rare", "few", "flat", "when"}


def test_model_card_lists_the_material_changes():
    change = {"column": "credit", "material": True, "what": "1 category kept", "fix": "declare it"}
    lines = _changes_section({"preprocessing": {"details": {"changes": [change]}}})
    assert "### What differential privacy changed" in lines and "| credit | 1 category kept | declare it |" in lines
    assert _changes_section({"preprocessing": {"details": {}}}) == []


def test_fold_bucket_never_merges_with_a_real_other_category():
    from tabsynth.privacy.preprocessing import _other_label

    assert _other_label(["a", "b"]) == "other"
    assert _other_label(["owner", "other", "(other)"]) == "((other))"
