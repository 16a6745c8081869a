"""The report for a person table and its event table: each test breaks if the part it names breaks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tabsynth.datasets import Sequences
from tabsynth.errors import ConfigError, DataError
from tabsynth.report import Report, evaluate_sequences
from tabsynth.report.sequences import aggregates, events_per_person, ks_complement, tv_complement

FAST = dict(n_attacks=200, max_plots=0)


def make_pair(n: int, seed: int, offset: int = 0, max_events: int = 6) -> Sequences:
    """``n`` persons with 1 to ``max_events`` events each; the status follows the last bilirubin."""
    rng = np.random.default_rng(seed)
    ids = np.arange(offset, offset + n)
    k = rng.integers(1, max_events + 1, n)
    pid = np.repeat(ids, k)
    pos = np.concatenate([np.arange(x) for x in k])
    day = pos * 30 + rng.integers(0, 20, len(pid))
    bili = rng.gamma(2.0, 1.0, len(pid)) + 0.5 * pos
    events = pd.DataFrame({"id": pid, "day": day, "bili": bili,
                           "stage": np.minimum(4, 1 + pos // 2).astype(str),
                           "drug": rng.choice(["a", "b"], len(pid))})
    last = events.groupby("id")["bili"].last().reindex(ids).to_numpy()
    persons = pd.DataFrame({"id": ids, "age": rng.integers(20, 80, n), "sex": rng.choice(["f", "m"], n),
                            "futime": (k * 30 + 40).astype(int),
                            "status": np.where(last + rng.normal(0, 0.3, n) > np.median(last), "dead", "alive")})
    return Sequences(persons, events, "id", "day")


@pytest.fixture(scope="module")
def real() -> Sequences:
    return make_pair(60, 0)


@pytest.fixture(scope="module")
def self_report(real) -> Report:
    return evaluate_sequences(real, real, order_bounds=(None, "futime"), **FAST)


def test_real_against_itself_scores_one(self_report):
    seq = self_report.to_dict()["sequences"]
    assert seq["event_fidelity"]["sdmetrics"]["synthetic"]["column_shapes"] == pytest.approx(1.0)
    assert seq["events_per_person"]["score"] == pytest.approx(1.0)
    assert seq["aggregates"]["score"] == pytest.approx(1.0)
    assert seq["transitions"]["score"] == pytest.approx(1.0)
    assert seq["order"]["score"] == 1.0
    assert seq["order"]["synthetic"]["rules"]["upper_bound:futime"]["share"] == 1.0
    # the sequence column is scored as values and as gaps between consecutive events
    assert {r["column"] for r in seq["event_fidelity"]["per_column"]} == {"day", "day_gap", "bili", "stage", "drug"}
    assert {"bili_first", "bili_last", "bili_mean", "stage_first", "stage_last", "stage_distinct"} <= {
        r["aggregate"] for r in seq["aggregates"]["per_aggregate"]}


def test_json_has_no_nan_and_html_is_written(self_report, tmp_path):
    text = self_report.to_json(tmp_path / "r.json")
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data["summary"]["verdicts"]) >= {"fidelity", "event_fidelity", "events_per_person", "aggregates",
                                                "transitions", "order", "utility", "privacy"}
    html = self_report.to_html(tmp_path / "r.html")
    assert (tmp_path / "r.html").exists()
    for heading in ("Events per person", "Per-person aggregates", "Transitions between consecutive events",
                    "Order and declared rules", "Fidelity: how closely"):
        assert heading in html


def test_shuffled_order_within_person_is_caught(real):
    events = real.events.sample(frac=1.0, random_state=3).sort_values("id", kind="stable")
    shuffled = Sequences(real.subjects, events, "id", "day")
    seq = evaluate_sequences(real, shuffled, **FAST).to_dict()["sequences"]
    assert seq["order"]["real"]["all"]["share"] == 1.0
    assert seq["order"]["score"] < 0.9
    # re-sorted by the sequence column, the aggregates are those of the real persons
    assert seq["aggregates"]["score"] == pytest.approx(1.0)


def test_shifted_events_per_person_scores_lower(real):
    fair = make_pair(60, 7, offset=1000)
    short = Sequences(fair.subjects, fair.events.groupby("id").head(1), "id", "day")
    fair_score = evaluate_sequences(real, fair, **FAST).scores["events_per_person"]
    short_report = evaluate_sequences(real, short, **FAST)
    assert short_report.scores["events_per_person"] < fair_score - 0.3
    assert short_report.verdicts["events_per_person"] == "red"
    assert short_report.to_dict()["sequences"]["events_per_person"]["synthetic"]["max"] == 1


def test_declared_bound_broken_is_caught(real):
    events = real.events.copy()
    events.loc[events.index[::5], "day"] += 10_000
    events = events.sort_values(["id", "day"], kind="stable")
    late = Sequences(real.subjects, events, "id", "day")
    order = evaluate_sequences(real, late, order_bounds=(None, "futime"), **FAST).to_dict()["sequences"]["order"]
    assert order["synthetic"]["rules"]["non_decreasing"]["share"] == 1.0
    assert order["synthetic"]["rules"]["upper_bound:futime"]["share"] < 0.9
    assert order["score"] == order["synthetic"]["rules"]["upper_bound:futime"]["share"]


def test_utility_and_privacy_are_per_person(real):
    holdout, syn = make_pair(60, 1, offset=500), make_pair(60, 2, offset=1000)
    report = evaluate_sequences(real, syn, holdout=holdout, target="status", **FAST)
    d = report.to_dict()
    assert d["utility"]["target"] == "status" and d["utility"]["train_rows"] == 60
    assert d["utility"]["score"] is not None
    assert "bili_last" in d["utility"]["feature_importance"]["real"]
    assert d["privacy"]["status"] == "complete"
    assert d["privacy"]["attack_rows"] == {"training": 60, "holdout": 60, "synthetic": 60}
    assert d["threat_model"]["unit_of_privacy"].startswith("one person")
    assert "n_events" in {c["column"] for c in d["inventory"]["columns"]}


def test_aggregates_follow_the_sequence_column():
    events = pd.DataFrame({"id": [1, 1, 1, 2], "day": [20, 0, 10, 5], "x": [3.0, 1.0, 2.0, 7.0],
                           "c": ["z", "x", "y", "x"]})
    persons = pd.DataFrame({"id": [1, 2, 3], "age": [30, 40, 50]})
    pair = Sequences(persons, events, "id", "day")
    counts = events_per_person(pair)
    assert counts.tolist() == [3.0, 1.0, 0.0]
    from tabsynth.metadata import Metadata
    from tabsynth.report._common import convert, prepare
    from tabsynth.report.sequences import ordered

    prep = prepare(Metadata.detect(events.drop(columns="id")), {})
    agg = aggregates(prep, ordered(pair, convert(events, prep)), "id")
    assert agg.loc[1, ["x_first", "x_last", "x_mean"]].tolist() == [1.0, 3.0, 2.0]
    assert agg.loc[1, ["c_first", "c_last", "c_distinct"]].tolist() == ["x", "z", 3.0]
    assert agg.loc[1, "day_last"] == 20.0


def test_similarities():
    assert ks_complement(np.arange(10.0), np.arange(10.0)) == 1.0
    assert ks_complement(np.zeros(5), np.ones(5)) == 0.0
    assert tv_complement(pd.Series(["a", "b"]), pd.Series(["a", "a"])) == pytest.approx(0.5)


def test_person_table_with_only_the_key_and_no_sequence_column(real, tmp_path):
    bare = Sequences(real.subjects[["id"]], real.events.drop(columns="day"), "id", None)
    report = evaluate_sequences(bare, bare, **FAST)
    assert report.verdicts["fidelity"] == "grey" and report.verdicts["order"] == "grey"
    assert report.scores["aggregates"] == pytest.approx(1.0)
    assert "Not measured" in report.to_html(tmp_path / "bare.html")


def test_bad_input_says_what_to_fix(real):
    with pytest.raises(DataError, match="Sequences"):
        evaluate_sequences(real.events, real)
    other_key = Sequences(real.subjects.rename(columns={"id": "pid"}), real.events.rename(columns={"id": "pid"}),
                          "pid", "day")
    with pytest.raises(DataError, match="same names"):
        evaluate_sequences(real, other_key)
    with pytest.raises(DataError, match="key 'id' is not a column"):
        evaluate_sequences(Sequences(real.subjects, real.events.drop(columns="id"), "id", "day"), real)
    orphans = Sequences(real.subjects.iloc[1:], real.events, "id", "day")
    with pytest.raises(DataError, match="missing from real.subjects"):
        evaluate_sequences(orphans, real)
    with pytest.raises(DataError, match="at least two"):
        evaluate_sequences(real.head(1), real)
    with pytest.raises(ConfigError, match="order_bounds column 'death'"):
        evaluate_sequences(real, real, order_bounds=(None, "death"))
    with pytest.raises(ConfigError, match="per-person aggregate"):
        evaluate_sequences(real, real, holdout=real, target="nope")


def test_cli_report_of_two_tables(tmp_path, capsys):
    import argparse

    from tabsynth.report import command

    real, syn = make_pair(30, 0), make_pair(30, 2, offset=1000)
    for name, pair in (("real", real), ("syn", syn)):
        pair.subjects.to_csv(tmp_path / f"{name}_subjects.csv", index=False)
        pair.events.to_csv(tmp_path / f"{name}_events.csv", index=False)
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "rep.html"
    base = ["report", "--real", str(tmp_path / "real_events.csv"), "--synthetic", str(tmp_path / "syn_events.csv"),
            "--n-attacks", "100", "--max-plots", "0", "-o", str(out)]
    command.run(parser.parse_args([*base, "--subjects", str(tmp_path / "real_subjects.csv"), "--synthetic-subjects",
                                   str(tmp_path / "syn_subjects.csv"), "--key", "id", "--order-by", "day",
                                   "--order-bounds", ":futime"]))
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["sequences"]["order"]["order_bounds"] == [None, "futime"]
    assert data["data"]["rows"]["real"] == 30 and "events_per_person" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="--synthetic-subjects"):
        command.run(parser.parse_args([*base, "--subjects", str(tmp_path / "real_subjects.csv"), "--key", "id"]))
    with pytest.raises(ConfigError, match="with --key"):
        command.run(parser.parse_args([*base, "--order-by", "day"]))


def test_report_on_a_fitted_two_table_model(real):
    import tabsynth as ts

    model = ts.TabularAR(seed=0, epochs=2, verbose=False).fit(real.events, subjects=real.subjects, key="id",
                                                             order_by="day", order_bounds=(None, "futime"))
    synthetic = model.sample(n_subjects=60, seed=1)
    report = evaluate_sequences(real, synthetic, order_bounds=(None, "futime"), **FAST)
    assert report.scores["order"] == 1.0
    for name in ("fidelity", "event_fidelity", "events_per_person", "aggregates", "transitions"):
        assert 0.0 < report.scores[name] <= 1.0
    assert report.to_dict()["sequences"]["sizes"]["events"]["synthetic"] == len(synthetic.events)


def test_dates_as_the_sequence_column_and_bound(real):
    start = pd.Timestamp("2020-01-01")
    events = real.events.assign(day=(start + pd.to_timedelta(real.events["day"], unit="D")).dt.strftime("%Y-%m-%d"))
    persons = real.subjects.assign(end=(start + pd.to_timedelta(real.subjects["futime"], unit="D")).dt.strftime(
        "%Y-%m-%d"))
    dated = Sequences(persons, events, "id", "day")
    late = events.copy()
    late.loc[late.index[::4], "day"] = "2031-01-01"
    seq = evaluate_sequences(dated, Sequences(persons, late, "id", "day"), order_bounds=(None, "end"),
                             **FAST).to_dict()["sequences"]
    assert seq["order"]["real"]["all"]["share"] == 1.0
    assert seq["order"]["synthetic"]["rules"]["upper_bound:end"]["share"] < 0.8
    gaps = next(r for r in seq["event_fidelity"]["per_column"] if r["column"] == "day_gap")
    assert gaps["kind"] == "numerical" and gaps["synthetic"] < 1.0


def test_a_declared_non_decreasing_column_that_falls_is_caught(real):
    events = real.events.assign(level=real.events.groupby("id").cumcount())
    rising = Sequences(real.subjects, events, "id", "day")
    fallen = events.copy()
    fallen.loc[fallen.groupby("id").cumcount() == 1, "level"] = -1
    report = evaluate_sequences(rising, Sequences(real.subjects, fallen, "id", "day"), non_decreasing=["level"],
                                **FAST).to_dict()
    order = report["sequences"]["order"]
    assert order["real"]["rules"]["non_decreasing:level"]["share"] == 1.0
    with_two = int((events.groupby("id").size() > 1).sum())
    assert order["synthetic"]["rules"]["non_decreasing:level"]["met"] == len(real.subjects) - with_two
    assert report["settings"]["non_decreasing"] == ["level"]
    with pytest.raises(ConfigError, match="non_decreasing column 'sex' is not an event column"):
        evaluate_sequences(rising, rising, non_decreasing=["sex"], **FAST)
