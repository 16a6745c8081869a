"""The benchmark harness: configs, child processes with a time limit, resumable parts, one page per benchmark."""

import json
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import harness
import pandas as pd
import peers
import pytest
import report
import worker

# Stands in for worker.py where a real method cannot run (the engine's venv, a hung fit): it obeys the
# worker's command line and, by seed, copies the training rows (0), fails (1) or hangs with a child (2).
FAKE_WORKER = """
import argparse, json, os, shutil, subprocess, sys, time
from pathlib import Path
p = argparse.ArgumentParser()
for flag in ("--method", "--seed", "--data", "--out", "--stats", "--options"):
    p.add_argument(flag)
a = p.parse_args()
if a.seed == "1":
    sys.exit("the fit broke")
if a.seed == "2":
    Path(os.environ["FAKE_PIDFILE"]).write_text(str(subprocess.Popen(["sleep", "60"]).pid))
    time.sleep(60)
shutil.copytree(a.data, a.out)
Path(a.stats).write_text(json.dumps({"fit_cpu_s": 1.0, "epsilon": None, "options": json.loads(a.options)}))
"""


def config(**kw) -> harness.Config:
    cfg = harness.Config(name="tiny", title="Tiny", about="A test.", tables=["flchain@200"],
                         methods=["ts-tvae"], time_limit_s=60.0)
    return replace(cfg, **kw)


def _dead(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def test_every_config_names_known_methods_and_has_tasks():
    names = sorted(p.stem for p in harness.CONFIGS.glob("*.toml"))
    assert "suite" in names
    for name in names:
        cfg = harness.load_config(name)
        assert harness.tasks(cfg) and cfg.title and cfg.about
    suite = harness.load_config("suite")
    assert len(suite.tables) == 10 and {"engine", "engine-dp", "sdv-gc", "ts-ar-fixed-dp"} <= set(suite.methods)
    assert worker.METHODS["engine-dp"].venv == ".venv-engine" and worker.METHODS["engine-dp"].dp


def test_a_config_with_an_unknown_method_is_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('title = "x"\nabout = "x"\ntables = ["adult"]\nmethods = ["ts-nope"]\n')
    with pytest.raises(SystemExit, match="unknown methods"):
        harness.load_config(str(bad))


@pytest.fixture
def fake(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "fake_worker.py"
    path.write_text(textwrap.dedent(FAKE_WORKER))
    monkeypatch.setenv("FAKE_PIDFILE", str(tmp_path / "pid"))
    return path


def test_a_task_runs_in_a_child_is_scored_and_resumes_from_its_part_or_the_merged_json(tmp_path, fake):
    cfg = config(seeds=[0], modes={"default": {"epochs": 1}})
    store = harness.Store(cfg, tmp_path / "results")
    assert harness.run(cfg, harness.tasks(cfg), store, worker=fake) == 1
    (rec,) = store.records().values()
    assert rec["status"] == "ok" and rec["rows_synthetic"] == 200 and rec["options"] == {"epochs": 1}
    assert rec["validity"] == 1.0 and rec["dcr_share"] > 0.9  # copies of training rows
    assert harness.run(cfg, harness.tasks(cfg), store, worker=fake) == 0  # the task has its part
    page = store.merge(cfg)
    assert "1 of 1 runs finished" in page and page == store.md.read_text()
    for part in store.parts.glob("*.json"):
        part.unlink()
    saved = json.loads(store.json.read_text())
    assert saved["benchmark"] == "tiny" and [r["seed"] for r in saved["records"]] == [0]
    assert harness.run(cfg, harness.tasks(cfg), store, worker=fake) == 0  # NAME.json alone resumes too


def test_a_failed_fit_and_a_hung_one_are_recorded_and_the_hung_one_killed(tmp_path, fake):
    cfg = config(seeds=[1, 2], time_limit_s=2.0)
    store = harness.Store(cfg, tmp_path / "results")
    assert harness.run(cfg, harness.tasks(cfg), store, worker=fake) == 2
    failed, hung = (store.records()[f"flchain@200__ts-tvae__default__s{s}"] for s in (1, 2))
    assert failed["status"] == "failed" and "the fit broke" in failed["error"]
    assert hung["status"] == "timeout" and _dead(int((tmp_path / "pid").read_text()))
    assert "| flchain@200 | ts-tvae | 2 | timeout |" in store.merge(cfg)
    assert harness.run(cfg, harness.tasks(cfg)[:1], store, worker=fake) == 0
    assert harness.run(cfg, harness.tasks(cfg)[:1], store, force=True, worker=fake) == 1


def test_the_report_compares_each_of_our_methods_with_its_baseline_in_the_same_mode():
    cfg = harness.Config(name="t", title="T", about="", tables=["t1", "t2"], methods=["ts-ctgan", "engine"],
                         against={"plain": "engine"}, against_label="the engine")
    recs = [{"table": t, "method": m, "seed": s, "status": "ok", "quality": q, "trtr_auc": 0.9,
             "tstr_auc": q - 0.1, "fit_cpu_s": 10.0 if m == "engine" else 5.0}
            for t, m, s, q in [("t1", "ts-ctgan", 0, 0.8), ("t1", "ts-ctgan", 1, 0.9), ("t2", "ts-ctgan", 0, 0.6),
                               ("t1", "engine", 0, 0.7)]]
    recs.append({"table": "t2", "method": "engine", "seed": 0, "status": "timeout"})
    text = report.render(cfg, recs)
    assert "| t1 | 0.850 [0.800, 0.900] | 0.700 |" in text
    assert "| **mean (tables)** | 0.725 (2) | 0.700 (1) |" in text
    assert "| t2 | engine | 0 | timeout |" in text
    assert "| ts-ctgan | engine | 1 | 1 | 1 | +0.150 | +0.150 | 0.50 |" in text  # t1 only: both finished it
    moded = [{**r, "mode": mode, "quality": r.get("quality", 0) + (0.1 if mode == "b" else 0)}
             for r in recs for mode in ("a", "b")]
    text = report.render(cfg, moded)
    assert "| table | ts-ctgan a | ts-ctgan b | engine a | engine b |" in text
    assert "| ts-ctgan b | engine b | 1 |" in text and "| ts-ctgan a | engine b |" not in text


def test_engine_epsilon_is_its_last_checkpoints(tmp_path):
    log = pd.DataFrame({"is_checkpoint": [1, 0, 1, 0], "dp_eps": [0.3, 0.5, 0.7, 0.9]})
    (tmp_path / "ModelStore").mkdir()
    log.to_csv(tmp_path / "ModelStore" / "progress-messages.csv", index=False)
    assert peers.engine_epsilon(tmp_path) == 0.7


def test_the_side_by_side_table_puts_our_dp_method_beside_the_engines_with_its_two_models_epsilons_and_notes_close():
    cfg = harness.Config(name="t", title="T", about="", tables=["t1", "t2"], kind="pair",
                         methods=["ts-ar-seq-dp", "engine-seq-dp"], against={"dp": "engine-seq-dp"},
                         against_scores=["qa_accuracy_overall", "person_tstr_auc"],
                         side_by_side=["qa_accuracy_overall", "epsilon"], notes="Ours is ahead on t1.")
    recs = [{"table": "t1", "method": "ts-ar-seq-dp", "seed": 0, "status": "ok", "qa_accuracy_overall": 0.8,
             "person_tstr_auc": 0.7, "epsilon": 0.99, "fit_cpu_s": 5.0},
            {"table": "t1", "method": "engine-seq-dp", "seed": 0, "status": "ok", "qa_accuracy_overall": 0.75,
             "person_tstr_auc": 0.6, "epsilon": 0.9, "epsilon_persons": 0.25, "epsilon_events": 0.65,
             "fit_cpu_s": 10.0},
            {"table": "t2", "method": "ts-ar-seq-dp", "seed": 0, "status": "timeout"}]
    text = report.render(cfg, recs)
    assert "## ts-ar-seq-dp beside engine-seq-dp" in text
    assert "| t1 | 0.800 | 0.750 | 0.990 | 0.900 (0.250 + 0.650) |" in text
    assert "| t2 | - | - | - | - |" in text
    assert "## What the numbers show\n\nOurs is ahead on t1.\n" in text
    assert "| ts-ar-seq-dp | engine-seq-dp | 1 | 1 | 1 | +0.050 | +0.100 | 0.50 |" in text


@pytest.mark.slow
def test_a_tiny_config_end_to_end_with_a_real_fit(tmp_path):
    path = tmp_path / "smoke.toml"
    path.write_text('title = "Smoke"\nabout = "x"\ntables = ["flchain@200"]\nmethods = ["ts-tvae"]\n'
                    '[modes.default]\nepochs = 1\n')
    assert harness.main([str(path), "--results", str(tmp_path)]) == 0
    rec = json.loads((tmp_path / "smoke.json").read_text())["records"][0]
    assert rec["status"] == "ok" and 0 < rec["quality"] <= 1 and rec["rows_synthetic"] == 200
    assert "# Smoke (`benchmarks/configs/smoke.toml`)" in (tmp_path / "smoke.md").read_text()
    assert (tmp_path / "smoke_parts").is_dir()


def test_a_peer_runs_under_its_own_venv_or_is_refused_with_how_to_make_it():
    exe = harness.ROOT / ".venv-engine" / "bin" / "python"
    if exe.exists():
        assert harness.python_for("engine") == str(exe)
    else:
        with pytest.raises(SystemExit, match="make bench-setup"):
            harness.python_for("engine")
    assert harness.python_for("ts-ar-dp") == sys.executable


def test_a_merge_without_records_keeps_the_page_a_script_wrote_before_the_harness(tmp_path):
    cfg = config()
    store = harness.Store(cfg, tmp_path)
    store.md.write_text("# the old script's page\n")
    assert "No runs yet." in store.merge(cfg)
    assert store.md.read_text() == "# the old script's page\n" and not store.json.exists()
