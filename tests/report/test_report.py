"""The report must be able to fail: each test breaks if the feature it names breaks."""

from __future__ import annotations

import argparse
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

import tabsynth as ts
from tabsynth.errors import ConfigError, DataError, MetadataError
from tabsynth.privacy import PrivacyPart, PrivacySpent
from tabsynth.report import Report, evaluate
from tabsynth.report import command

FAST = dict(n_attacks=500, max_plots=4)


def shuffle_columns(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: rng.permutation(df[c].to_numpy()) for c in df.columns})


@pytest.fixture(scope="module")
def split():
    df = ts.datasets.load("adult").sample(4500, random_state=1).reset_index(drop=True)
    return (df.iloc[:1500].reset_index(drop=True), df.iloc[1500:3000].reset_index(drop=True),
            df.iloc[3000:].reset_index(drop=True))


@pytest.fixture(scope="module")
def fresh_report(split):
    train, holdout, fresh = split
    return evaluate(train, fresh, holdout=holdout, target="income", **FAST)


@pytest.fixture(scope="module")
def shuffled_report(split):
    train, holdout, _ = split
    return evaluate(train, shuffle_columns(train), holdout=holdout, target="income", **FAST)


@pytest.fixture(scope="module")
def copy_report(split):
    train, holdout, _ = split
    return evaluate(train, train.copy(), holdout=holdout, target="income", **FAST)


def strict_json(text: str) -> dict:
    def bad(name):
        raise AssertionError(f"JSON holds {name}")
    return json.loads(text, parse_constant=bad)


# ------------------------------------------------------------------ honest by construction
def test_fresh_real_sample_scores_high_with_low_risk(fresh_report):
    d = fresh_report.to_dict()
    assert fresh_report.scores["fidelity"] >= 0.85
    assert fresh_report.scores["utility"] >= 0.85
    assert fresh_report.scores["privacy"] >= 0.8
    assert d["fidelity"]["discriminator"]["synthetic"]["value"] < 0.6
    share = d["privacy"]["distances"]["share_closer_to_training"]
    assert share["low"] <= 0.5 + 0.05 and share["value"] < 0.56
    assert d["privacy"]["distances"]["membership_inference"]["value"] < 0.56
    assert d["privacy"]["flags"] == []
    assert fresh_report.verdicts["fidelity"] == "green"
    assert 0.9 <= d["utility"]["ratio"] <= 1.1


def test_shuffled_columns_lose_pair_trends_and_utility(fresh_report, shuffled_report):
    f, s = fresh_report.to_dict()["fidelity"], shuffled_report.to_dict()["fidelity"]
    # column shapes survive a shuffle, relationships do not
    assert s["sdmetrics"]["synthetic"]["column_shapes"] > 0.95
    assert s["sdmetrics"]["synthetic"]["column_pair_trends_all_pairs"] < f["sdmetrics"]["synthetic"]["column_pair_trends_all_pairs"] - 0.1
    assert s["association"]["synthetic_similarity"] < f["association"]["synthetic_similarity"] - 0.05
    assert s["discriminator"]["synthetic"]["value"] > 0.8
    assert shuffled_report.scores["fidelity"] < fresh_report.scores["fidelity"] - 0.2
    assert shuffled_report.scores["fidelity"] < s["reference_score"]
    assert shuffled_report.scores["utility"] < 0.5
    assert shuffled_report.verdicts["fidelity"] == "red"
    assert shuffled_report.verdicts["utility"] == "red"


def test_copied_training_rows_are_flagged_high_risk(copy_report):
    d = copy_report.to_dict()
    p = d["privacy"]
    assert p["exact_copies"]["share_of_synthetic_in_training"]["value"] == 1.0
    assert {f["flag"] for f in p["flags"]} >= {"synthetic_copies_training"}
    assert p["distances"]["share_closer_to_training"]["value"] > 0.95
    assert p["distances"]["membership_inference"]["value"] > 0.9
    assert p["singling_out"]["multivariate"]["value"] > 0.5
    assert copy_report.scores["privacy"] == 0.0
    assert copy_report.verdicts["privacy"] == "red"
    assert "exact copies" in " ".join(d["summary"]["caveats"])


def test_random_values_score_low_fidelity(split):
    train, holdout, _ = split
    rng = np.random.default_rng(3)
    rand = pd.DataFrame({c: (rng.uniform(train[c].min(), train[c].max(), len(train)).round()
                             if train[c].dtype.kind in "if" else rng.choice(train[c].unique(), len(train)))
                         for c in train.columns})
    rep = evaluate(train, rand, holdout=None, **FAST)
    d = rep.to_dict()
    assert d["fidelity"]["sdmetrics"]["synthetic"]["column_shapes"] < 0.7
    assert rep.scores["fidelity"] < 0.6
    assert rep.verdicts["fidelity"] == "red"


# ------------------------------------------------------------------ outputs
def test_json_is_strict_and_has_documented_keys(copy_report, tmp_path):
    path = tmp_path / "r.json"
    copy_report.to_json(path)
    d = strict_json(path.read_text())
    for key in ("schema_version", "scores", "summary", "formal_guarantee", "inventory", "threat_model",
                "fidelity", "utility", "privacy", "data", "settings"):
        assert key in d, key
    assert set(d["scores"]) == {"fidelity", "utility", "privacy"}
    assert all(v is None or 0.0 <= v <= 1.0 for v in d["scores"].values())
    assert set(d["summary"]["verdicts"]) == {"fidelity", "utility", "privacy", "formal_privacy"}
    for risk in ("exact_copies", "closer_to_training", "membership_inference", "singling_out_univariate",
                 "singling_out_multivariate", "linkability", "inference:income"):
        assert risk in d["privacy"]["risks"]
    so = d["privacy"]["singling_out"]["multivariate"]
    assert {"attack", "control", "baseline", "low", "high", "verdict"} <= set(so)
    assert d == copy_report.to_dict()


def test_summary_card_is_read_from_the_sections(shuffled_report):
    d = shuffled_report.to_dict()
    sections = shuffled_report.sections
    assert [s.name for s in sections] == list(d["summary"]["verdicts"])
    assert d["scores"] == {s.name: s.score for s in sections if s.scored}
    html = shuffled_report.to_html()
    for s in sections:
        assert d["summary"]["verdicts"][s.name] == json.loads(json.dumps(s.card()))
        assert s.verdict == d["summary"]["verdicts"][s.name]["light"] and s.explanation
        assert f"<strong>{s.title}</strong>" in html
    assert [s.next_step for s in sections if s.next_step][:4] == d["summary"]["next_steps"]


def test_summary_knows_no_section_by_name():
    from tabsynth.report.section import Section
    from tabsynth.report.summary import build_summary, section_scores

    made_up = [Section(name="speed", title="Speed", score=0.4, verdict="red", explanation="Slow.",
                       next_step="Speed: use fewer epochs.", caveats=("first", "second")),
               Section(name="cost", title="Cost", score=None, verdict="grey", explanation="Not measured.",
                       scored=False)]
    summary = build_summary(made_up, ["own caveat"])
    assert list(summary["verdicts"]) == ["speed", "cost"]
    assert summary["verdicts"]["speed"]["word"] == "poor" and summary["verdicts"]["speed"]["text"] == "Slow."
    assert summary["caveats"] == ["second", "first", "own caveat"]
    assert summary["next_steps"] == ["Speed: use fewer epochs."]
    assert section_scores(made_up) == {"speed": 0.4}


def test_html_has_every_section_and_is_self_contained(shuffled_report, tmp_path):
    path = tmp_path / "r.html"
    html = shuffled_report.to_html(path)
    assert path.read_text(encoding="utf-8") == html
    for sid in ("summary", "formal", "inventory", "fidelity", "utility", "privacy", "glossary"):
        assert f'<section id="{sid}">' in html
    assert html.count("data:image/png;base64,") >= 4          # column plots, heatmap, distances
    assert not re.search(r'(src|href)="(https?:)?//', html)    # no network requests
    assert "No formal privacy guarantee" in html
    assert "Singling out" in html and "Linkability" in html and "Inference of income" in html
    assert "TSTR" in html and "Augmentation" in html


def test_formal_guarantee_shows_every_part_of_a_dp_statement(split):
    train, _, fresh = split
    spent = PrivacySpent(
        epsilon=2.0, delta=1e-6, accountant="rdp", composition="sequential",
        parts={"preprocessing": PrivacyPart("bounds", 0.2, 0.0, "Laplace", {"columns": 3}),
               "training": PrivacyPart("DP-SGD", 1.8, 1e-6, "subsampled Gaussian",
                                       {"noise_multiplier": 1.1, "sample_rate": 0.01, "steps": 3000,
                                        "max_grad_norm": 1.0})})
    meta = ts.Metadata.detect(train).with_public_domain("age", bounds=(0, 120))
    rep = evaluate(train.iloc[:300], fresh.iloc[:300], metadata=meta, model=spent, **FAST)
    f = rep.to_dict()["formal_guarantee"]
    assert f["is_dp"] and f["epsilon"] == 2.0 and f["delta"] == 1e-6 and f["verdict"] == "amber"
    assert [p["name"] for p in f["parts"]] == ["bounds", "DP-SGD"]
    assert f["public_domains"][0]["column"] == "age"
    html = rep.to_html()
    for text in ("epsilon = 2", "noise multiplier: <strong>1.1</strong>", "sample rate: <strong>0.01</strong>",
                 "steps: <strong>3,000</strong>", "max grad norm: <strong>1</strong>", "rdp", "subsampled Gaussian",
                 "age: bounds 0 to 120"):
        assert text in html, text
    assert "No formal privacy guarantee" not in html
    none = evaluate(train.iloc[:300], fresh.iloc[:300], model=PrivacySpent.none(), **FAST)
    assert none.to_dict()["formal_guarantee"]["verdict"] == "red"
    assert "No formal privacy guarantee: the model was trained without differential privacy" in none.to_html()


def test_without_holdout_utility_and_attacks_are_skipped_not_faked(split):
    train, _, fresh = split
    rep = evaluate(train.iloc[:500], fresh.iloc[:500], target="income", **FAST)
    d = strict_json(rep.to_json())
    assert d["scores"]["utility"] is None and d["scores"]["privacy"] is None
    assert "skipped" in d["utility"] and d["privacy"]["status"] == "incomplete"
    assert rep.verdicts["privacy"] == "grey"
    assert "half of the real table" in d["fidelity"]["reference"]


# ------------------------------------------------------------------ mixed types, roles, profiles
def test_mixed_types_ids_datetimes_and_nulls(mixed_df):
    rng = np.random.default_rng(5)
    real = mixed_df.iloc[:200].reset_index(drop=True)
    holdout = mixed_df.iloc[200:].reset_index(drop=True)
    syn = shuffle_columns(real, seed=1)
    syn["weight"] = syn["weight"] + rng.normal(0, 1, len(syn))
    rep = evaluate(real, syn, holdout=holdout, target="smoker", profile="healthcare", **FAST)
    d = strict_json(rep.to_json())
    assert d["data"]["excluded_id_columns"] == ["id"]
    assert "id" not in d["data"]["analysed_columns"]
    roles = {c["column"]: c["role"] for c in d["inventory"]["columns"]}
    assert roles["id"] == "key" and roles["age"] == "quasi-identifier" and roles["visit"] == "quasi-identifier"
    miss = {m["column"]: m for m in d["fidelity"]["missing_rates"]}
    assert miss["weight"]["real"] == pytest.approx(real["weight"].isna().mean())
    assert d["utility"]["task"] == "classification"
    # the shuffled table reuses the real ids: that must be flagged
    assert d["privacy"]["exact_copies"]["id_values_copied"]["id"] == 1.0
    assert "id_values_copied" in {f["flag"] for f in d["privacy"]["flags"]}
    assert "HIPAA" in rep.to_html()


def test_profiles_pick_roles_and_wording():
    fl = ts.datasets.load("flchain").sample(900, random_state=0).reset_index(drop=True)
    rep = evaluate(fl.iloc[:450], fl.iloc[450:].reset_index(drop=True), profile="healthcare", **FAST)
    roles = {c["column"]: c["role"] for c in rep.to_dict()["inventory"]["columns"]}
    assert roles["age"] == roles["sex"] == "quasi-identifier"
    assert roles["chapter"] == roles["death"] == "sensitive"
    assert "expert determination" in rep.to_dict()["threat_model"]["audience"].lower()
    ad = ts.datasets.load("adult").iloc[:400]
    fin = evaluate(ad, shuffle_columns(ad), profile="finance", **FAST).to_dict()
    roles = {c["column"]: c["role"] for c in fin["inventory"]["columns"]}
    assert roles["income"] == roles["capital-gain"] == "sensitive"
    assert "fair-lending" in fin["threat_model"]["audience"]
    assert {c["column"] for c in fin["inventory"]["columns"] if c["protected_attribute"]} >= {"age", "sex", "race"}


def test_user_roles_override_guesses(split):
    train, holdout, fresh = split
    rep = evaluate(train.iloc[:300], fresh.iloc[:300], holdout=holdout.iloc[:300],
                   quasi_identifiers=["age", "sex"], sensitive=["occupation"], **FAST)
    d = rep.to_dict()
    assert d["threat_model"]["quasi_identifiers"] == ["age", "sex"]
    # the sensitive column first, then each quasi-identifier from the others
    assert [i["secret"] for i in d["privacy"]["inference"]] == ["occupation", "age", "sex"]
    assert d["privacy"]["inference"][1]["aux_columns"] == ["sex"]
    assert d["privacy"]["linkability"]["aux_columns"] == [["age"], ["sex"]]


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("call, error, words", [
    (lambda r: evaluate(r, r.drop(columns=["age"])), DataError, "missing ['age']"),
    (lambda r: evaluate(r, r.assign(extra=1)), DataError, "extra ['extra']"),
    (lambda r: evaluate(r, r, holdout=r.drop(columns=["sex"])), DataError, "holdout"),
    (lambda r: evaluate(r, r, target="salary"), ConfigError, "target 'salary' is not a column"),
    (lambda r: evaluate(r, r, profile="retail"), ConfigError, "unknown profile 'retail'"),
    (lambda r: evaluate(r, r, model=object()), ConfigError, "privacy_spent"),
    (lambda r: evaluate(r, r.iloc[:0]), DataError, "no rows"),
    (lambda r: evaluate(r, r.to_numpy()), DataError, "DataFrame"),
    (lambda r: evaluate(r, r, quasi_identifiers=["zipcode"]), ConfigError, "zipcode"),
    (lambda r: evaluate(r, r, max_rows=0), ConfigError, "max_rows"),
    (lambda r: evaluate(r, r, metadata=ts.Metadata.detect(r.drop(columns=["age"]))), MetadataError, "age"),
])
def test_bad_input_raises_the_right_error(call, error, words):
    real = ts.datasets.load("adult").iloc[:50]
    with pytest.raises(error) as info:
        call(real)
    assert words in str(info.value)


def test_degenerate_tiny_and_constant_tables_do_not_crash():
    real = pd.DataFrame({"a": [1.0] * 8, "b": list("xxxxxxxy"), "c": [None] * 8})
    rep = evaluate(real, real.copy(), holdout=real.copy(), target="b", **FAST)
    d = strict_json(rep.to_json())
    assert "holdout_overlaps_training" in {f["flag"] for f in d["privacy"]["flags"]}
    assert rep.scores["privacy"] == 0.0
    assert "<section id=\"summary\">" in rep.to_html()


# ------------------------------------------------------------------ CLI
def test_cli_report_writes_html_and_json(split, tmp_path, capsys):
    train, holdout, fresh = (d.iloc[:400] for d in split)
    for name, df in (("real", train), ("syn", fresh), ("hold", holdout)):
        df.to_csv(tmp_path / f"{name}.csv", index=False)
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "out" / "rep.html"
    args = parser.parse_args(["report", "--real", str(tmp_path / "real.csv"), "--synthetic", str(tmp_path / "syn.csv"),
                              "--holdout", str(tmp_path / "hold.csv"), "--target", "income", "--profile", "finance",
                              "-o", str(out)])
    command.run(args)
    assert out.exists() and out.with_suffix(".json").exists()
    assert strict_json(out.with_suffix(".json").read_text())["settings"]["profile"] == "finance"
    assert "scores:" in capsys.readouterr().out
    bad = parser.parse_args(["report", "--real", str(tmp_path / "real.csv"), "--synthetic",
                             str(tmp_path / "syn.csv"), "-o", str(tmp_path / "rep.pdf")])
    with pytest.raises(ConfigError, match=r"\.html"):
        command.run(bad)


# ------------------------------------------------------------------ speed
@pytest.mark.slow
def test_full_adult_report_subsamples_its_expensive_parts():
    real, holdout = ts.datasets.load("adult"), ts.datasets.load("adult_test")
    rep = evaluate(real, shuffle_columns(real), holdout=holdout, target="income")
    assert rep.to_dict()["privacy"]["rows_used"]["training"] == 10_000
    assert rep.to_dict()["privacy"]["attack_rows"]["training"] == len(real)
    assert isinstance(rep, Report) and not math.isnan(rep.scores["fidelity"])


def test_risk_names_are_plain_language():
    from tabsynth.report.privacy_risk import risk_label

    assert risk_label("singling_out_univariate") == "singling out by one column"
    assert risk_label("inference:income") == "inference of income"
    assert risk_label(None) == "n/a"
