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


def test_german_credit_keeps_both_values_of_its_target_and_reports_what_it_folds():
    model, changed = _fit_and_warnings(ts.TVAE, ts.datasets.load("german_credit"))
    assert sorted(model.transformer_.encoder_of("credit").categories) == ["bad", "good"]
    assert not any(c["material"] for c in _change(model, "credit"))
    [purpose] = _change(model, "purpose")  # ten values, most of them rare: folded, and said so
    assert purpose["material"] and "partition-selection threshold" in purpose["what"]
    assert "--public-domain purpose=" in purpose["fix"] and len(changed) == 1 and "  purpose: " in changed[0]
    # declaring the categories public keeps them all and removes the column from the list
    df = ts.datasets.load("german_credit")
    cats = sorted(df["purpose"].unique())
    meta = ts.Metadata.from_dtypes(df).with_public_domain("purpose", categories=cats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        fixed = ts.TVAE(epsilon=1.0, **TINY).fit(df, metadata=meta)
    assert _change(fixed, "purpose") == [] and sorted(fixed.transformer_.encoder_of("purpose").categories) == cats


@pytest.mark.slow
def test_a_year_column_far_from_zero_keeps_its_range():
    df = ts.datasets.load("flchain")[["sample.yr", "age", "sex"]]
    model, _ = _fit_and_warnings(ts.CTGAN, df)
    [year] = _change(model, "sample.yr")
    enc = model.transformer_.encoder_of("sample.yr")
    # years 1995-2003, one numeric kind under DP (not rounded out to whole years)
    assert 1992 <= enc.lower <= 1995 and 2002.5 <= enc.upper <= 2006, (enc.lower, enc.upper)
    assert not year["material"] and "zoom" in year["what"] and "--public-bounds sample.yr=" in year["fix"]


def _num(lower, upper, zooms=1, **kw):
    return {"kind": "numerical", "public": False, "degenerate": False, "lower": lower, "upper": upper, "missing": 0.0,
            "zooms": zooms, "rounds": 3, "bin_width": (upper - lower) / 32, "noise_std": 10.0, "floor": 30.0, **kw}


def test_describe_changes_from_noisy_facts():
    cat = {"kind": "categorical", "public": False, "missing": 0.0, "tau": 200.0, "noise_std": 10.0, "floor": 30.0}
    facts = {
        "grade": {**cat, "kept": 3, "folded": 120.0, "other_kept": True},
        "rare": {**cat, "kept": 0, "folded": 900.0, "other_kept": True},
        "few": {**cat, "kept": 4, "folded": 3.0, "other_kept": False, "missing": 40.0, "floor": 45.0},
        "flat": _num(0.0, 0.0, degenerate=True, missing=-5.0),
        "wide": _num(-3.0, 250.0),
        "year": _num(1995.0, 2003.0, zooms=2),
        "blurred": _num(1778.0, 3162.0, zooms=0),
        "when": {**_num(18_262.0, 18_320.0), "kind": "datetime"},
        "declared": _num(1.0, 1.1, public=True),
        "guessed": _num(10.0, 316.0, zooms=0, coarse=True),
    }
    changes = describe_changes(facts, n_hat=1000)
    by = {(c["column"], c["material"]) for c in changes}
    assert by == {("grade", True), ("rare", True), ("few", False), ("few", True), ("flat", True), ("wide", False),
                  ("year", False), ("blurred", True), ("when", True), ("guessed", True)}
    [guessed] = [c for c in changes if c["column"] == "guessed"]
    assert "coarse guess" in guessed["what"] and "[10, 316]" in guessed["what"]
    folded_away = {**facts["grade"], "other_kept": False}
    [gone] = describe_changes({"g": folded_away}, n_hat=1000)
    assert gone["material"] and "not generated at all" in gone["what"]
    single = {**facts["grade"], "kept": 1, "other_kept": False, "folded": 10.0}
    [constant] = describe_changes({"g": single}, n_hat=1000)
    assert constant["material"] and "constant" in constant["what"]
    noise_only = {**facts["grade"], "kept": 4, "folded": 30.0}  # within 1.5 of its standard deviations
    [quiet] = describe_changes({"g": noise_only}, n_hat=1000)
    assert not quiet["material"]
    what = {c["column"]: c["what"] for c in changes if c["material"] or c["column"] in ("wide", "year")}
    assert "12% (+/- 2%) of rows" in what["grade"] and "2020-01-01" in what["when"]
    assert "2 zoom(s) of 32 bins; bins about 0.25 wide" in what["year"] and "whole log-scale bins" in what["blurred"]
    text = warning_text(changes)
    assert "rare:" in text and "wide:" not in text and "for missing values" in text
    assert {c["column"] for c in material(changes)} == {"grade", "rare", "few", "flat", "blurred", "when", "guessed"}


def test_model_card_lists_the_material_changes():
    change = {"column": "credit", "material": True, "what": "1 category kept", "fix": "declare it"}
    lines = _changes_section({"preprocessing": {"details": {"changes": [change]}}})
    assert "### What differential privacy changed" in lines and "| credit | 1 category kept | declare it |" in lines
    assert _changes_section({"preprocessing": {"details": {}}}) == []


def test_fold_bucket_never_merges_with_a_real_other_category():
    from tabsynth.privacy.preprocessing import _other_label

    assert _other_label(["a", "b"]) == "other"
    assert _other_label(["owner", "other", "(other)"]) == "((other))"
