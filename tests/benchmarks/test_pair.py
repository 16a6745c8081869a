"""The ``pair`` kind's scores on tiny fake persons and events: each must move the way its definition says."""

import harness
import numpy as np
import pair
import pandas as pd
import pytest
import scoring
import worker


def persons_and_events(n: int, seed: int, start: int = 0) -> dict[str, pd.DataFrame]:
    """Persons with a group and an end day; 1-6 visits each, days rising, a value that tracks the group."""
    rng = np.random.default_rng(seed)
    ids = np.arange(start, start + n)
    group = rng.choice(["a", "b"], n)
    counts = rng.integers(1, 7, n) + (group == "b") * 3
    key = np.repeat(ids, counts)
    day = np.concatenate([np.cumsum(rng.integers(1, 30, c)) for c in counts])
    g = np.repeat(group, counts)
    value = np.where(g == "b", 5.0, 0.0) + rng.normal(size=len(key))
    kind = np.where(value + rng.normal(size=len(key)) > 2.5, "high", "low")
    subjects = pd.DataFrame({"id": ids, "group": group, "end": pd.Series(day).groupby(key).max().to_numpy() + 1})
    events = pd.DataFrame({"id": key, "day": day, "value": value, "kind": kind})
    return {"subjects": subjects, "events": events}


RULES = [("every visit before end", lambda df, key: df["day"].le(df["end"]))]


@pytest.fixture(scope="module")
def frames():
    return persons_and_events(200, 0), persons_and_events(100, 1, start=1000), persons_and_events(200, 2, start=5000)


def score(train, holdout, synth, target=("group", "kind")):
    return pair.score_pair(train, holdout, synth, "id", "day", target, RULES, qa=False)


@pytest.fixture(scope="module")
def good(frames):
    return score(*frames)


def test_fresh_draws_score_well_and_a_reversed_sequence_only_loses_order(frames, good):
    train, holdout, fresh = frames
    assert good["order_share"] == 1.0 and good["rules_share"] == 1.0 and good["rules_share_real"] == 1.0
    assert good["events_per_person"] > 0.85 and good["person_quality"] > 0.8 and good["orphan_events"] == 0
    assert good["person_tstr_auc"] > 0.9 and good["person_trtr_auc"] > 0.9
    assert good["persons_synthetic"] == 200 and good["events_synthetic"] == len(fresh["events"])
    backwards = {**fresh, "events": fresh["events"].iloc[::-1].reset_index(drop=True)}
    rev = score(train, holdout, backwards)
    several = fresh["events"].groupby("id").size().ge(2).mean()
    assert rev["order_share"] == 0.0 and several > 0.5
    # re-sorted before every other score: the same numbers as in order
    assert rev["person_quality"] == pytest.approx(good["person_quality"])
    assert rev["person_tstr_auc"] == pytest.approx(good["person_tstr_auc"])


def prepared(frames):
    train, holdout, fresh = frames
    return [pair.prepare(f, train, "id", "day") for f in (train, holdout, fresh)]


def people(p, target="group"):
    return pair._with_target(p["subjects"], p["events"], "id", target, person_level=target == "group")


def test_broken_tables_lose_on_the_score_that_measures_them(frames, good):
    tr, ho, sy = prepared(frames)
    p_tr, p_ho = people(tr), people(ho)
    one_each = pair.person_table(sy["subjects"], sy["events"].drop_duplicates("id"), "id")
    assert pair.events_per_person(p_tr, one_each) < good["events_per_person"] - 0.3
    late = sy["events"].copy()
    late.loc[late.index % 2 == 0, "day"] += 10_000  # past every person's end, and out of order
    assert pair.rules_share(sy["subjects"], late, "id", RULES) < 0.2
    assert pair.order_share(late, "id", "day") < 0.5
    shuffled = sy["subjects"].assign(group=np.random.default_rng(0).permutation(sy["subjects"]["group"].to_numpy()))
    unlinked = people({**sy, "subjects": shuffled})
    assert scoring.tstr_auc(unlinked, p_tr, p_ho, "group") < 0.7 < good["person_tstr_auc"]
    assert pair.person_quality(p_tr, unlinked)["person_pair_trends"] < good["person_pair_trends"] - 0.05


def test_orphan_events_are_counted(frames):
    train, holdout, fresh = frames
    orphans = {**fresh, "subjects": fresh["subjects"].iloc[10:]}
    out = pair.score_pair(train, holdout, orphans, "id", "day", ("group", "kind"), qa=False)
    assert out["orphan_events"] == int(fresh["events"]["id"].isin(range(5000, 5010)).sum()) > 0
    assert np.isnan(out["rules_share"])  # no rules given


def test_an_event_target_is_each_persons_most_frequent_value_and_leaves_the_features(frames):
    events = pd.DataFrame({"id": [1, 1, 1, 2, 2, 3], "kind": ["x", "y", "y", "y", "x", None]})
    assert pair.person_target(events, "id", "kind").to_dict() == {1: "y", 2: "x"}  # tie: the smallest
    tr, ho, sy = prepared(frames)
    table = people(sy, "kind")
    assert "kind" in table and not any(c.startswith("kind__") for c in table)
    assert scoring.tstr_auc(table, people(tr, "kind"), people(ho, "kind"), "kind") > 0.7


def test_the_person_table_has_counts_and_first_last_mean_and_keeps_persons_without_events():
    subjects = pd.DataFrame({"id": ["1", "2"], "group": ["a", "b"]})
    events = pd.DataFrame({"id": ["1", "1", "1"], "day": [1, 5, 9], "kind": ["x", "y", "z"]})
    t = pair.person_table(subjects, events, "id")
    assert t["n_events"].tolist() == [3, 0]
    assert t.loc[0, ["day__first", "day__last", "day__mean"]].tolist() == [1, 9, 5]
    assert t.loc[0, ["kind__first", "kind__last"]].tolist() == ["x", "z"] and "kind__mean" not in t
    assert np.isnan(t.loc[1, "day__mean"])


def test_resort_is_stable_and_groups_each_person(frames):
    ev = pd.DataFrame({"id": ["b", "a", "b", "a"], "day": [3, 2, 1, 2], "tag": [1, 2, 3, 4]})
    out = pair.resort(ev, "id", "day")
    assert out["tag"].tolist() == [3, 1, 2, 4]  # b first (first seen), equal days keep row order
    assert pair.resort(ev, "id", None)["tag"].tolist() == [1, 3, 2, 4]
    assert np.isnan(pair.order_share(ev, "id", None))


def test_the_split_is_by_person_seventy_thirty_and_the_config_runs_pair_methods():
    train, holdout = pair.Pair().load("pbcseq")
    n_tr, n_ho = len(train["subjects"]), len(holdout["subjects"])
    assert (n_tr, n_ho) == (218, 94) and not set(train["subjects"]["id"]) & set(holdout["subjects"]["id"])
    assert set(train["events"]["id"]) <= set(train["subjects"]["id"])
    assert len(train["events"]) + len(holdout["events"]) == 1945
    assert pair.Pair().task_options("pbcseq") == {"key": "id", "order_by": "day"}
    cfg = harness.load_config("sequences")
    assert cfg.kind == "pair" and len(cfg.tables) == 5 and scoring.KINDS["pair"]
    assert all(worker.METHODS[m].kind == "pair" for m in cfg.methods)
    assert {"ts-ar-seq", "engine-seq"} <= set(cfg.methods)


def test_the_real_rules_hold_on_the_real_data():
    for name in ("pbcseq", "nlswork", "rwm5yr"):
        train, _ = pair.Pair().load(name)
        key = train["subjects"].columns[0]
        assert pair.rules_share(train["subjects"], train["events"], key, pair.RULES[name]) == 1.0


@pytest.mark.skipif(not pair.QA_PYTHON.exists(), reason="needs MOSTLY AI's QA in .venv-qa (make .venv-qa/.installed)")
@pytest.mark.slow
def test_qa_scores_fresh_draws_above_a_broken_copy(frames):
    train, holdout, fresh = frames
    prep = {tag: pair.prepare(f, train, "id", "day") for tag, f in (("tr", train), ("ho", holdout), ("sy", fresh))}
    good = pair.run_qa(prep["tr"], prep["ho"], prep["sy"], "id")
    assert "qa_error" not in good, good.get("qa_error")
    assert 0.7 < good["qa_accuracy_overall"] <= 1.0 and 0 <= good["qa_accuracy_coherence"] <= 1
    flat = prep["sy"]["events"].assign(value=0.0, kind="low")
    bad = pair.run_qa(prep["tr"], prep["ho"], {**prep["sy"], "events": flat}, "id")
    assert bad["qa_accuracy_overall"] < good["qa_accuracy_overall"] - 0.1


def test_a_pair_task_keeps_its_synthetic_tables_and_rescore_scores_them_again(tmp_path, monkeypatch):
    fake = tmp_path / "fake_worker.py"  # obeys the worker's command line: copies the training pair
    fake.write_text("import argparse, json, shutil\nfrom pathlib import Path\np = argparse.ArgumentParser()\n"
                    "for f in ('--method', '--seed', '--data', '--out', '--stats', '--options'):\n"
                    "    p.add_argument(f)\na = p.parse_args()\nshutil.copytree(a.data, a.out)\n"
                    "Path(a.stats).write_text(json.dumps({'fit_cpu_s': 1.0, 'got': json.loads(a.options)}))\n")
    monkeypatch.setitem(scoring.KINDS, "pair", pair.Pair(qa=False))
    cfg = harness.replace(harness.load_config("sequences"), tables=["headache"], methods=["ts-ar-seq"])
    store = harness.Store(cfg, tmp_path / "results")
    assert harness.run(cfg, harness.tasks(cfg), store, worker=fake) == 1
    (rec,) = store.records().values()
    assert rec["status"] == "ok" and rec["got"] == {"min_subjects": 100, "key": "id", "order_by": "time"}
    train, _ = pair.Pair().load("headache")
    assert rec["order_share"] == pair.order_share(train["events"], "id", "time") > 0.9
    assert rec["events_per_person"] == 1.0 and rec["person_tstr_auc"] == rec["person_trtr_auc"]
    kept = store.parts / "headache__ts-ar-seq__default__s0"
    assert sorted(p.name for p in kept.iterdir()) == ["events.parquet", "subjects.parquet"]
    store.write_part({**rec, "person_quality": None})
    assert harness.rescore(cfg, store, harness.tasks(cfg)) == 1
    (again,) = store.records().values()
    assert again["person_quality"] == pytest.approx(rec["person_quality"]) and again["fit_cpu_s"] == 1.0
    page = store.merge(harness.load_config("sequences"))
    assert "## Not run yet" in page and "| pbcseq | engine-seq | default | 0 |" in page
    assert "| headache | ts-ar-seq | default | 0 |" not in page
