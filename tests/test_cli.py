import json
import subprocess
import sys

import pytest

from tabsynth.cli import main


def test_metadata_command_writes_right_kinds(tmp_path, capsys):
    out = tmp_path / "meta.json"
    assert main(["metadata", "datasets/adult_train.csv.gz", "-o", str(out)]) == 0
    cols = json.loads(out.read_text())["columns"]
    assert len(cols) == 15 and cols["age"]["kind"] == "integer" and cols["income"]["kind"] == "categorical"


@pytest.mark.parametrize("argv, fragment", [
    (["metadata", "missing.csv"], "missing.csv: file not found"),
    (["metadata", "LICENSE"], "unknown table format"),
    (["metadata"], "the following arguments are required: data"),
    (["frobnicate"], "invalid choice"),
])
def test_user_errors_exit_2_with_one_line(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and err.startswith("tabsynth: error:")


def test_not_a_table_file(tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet")
    assert main(["metadata", str(bad)]) == 2
    assert "could not be read as a parquet table" in capsys.readouterr().err


def test_help_everywhere():
    for argv in (["--help"], ["metadata", "--help"], ["demo", "--help"]):
        res = subprocess.run([sys.executable, "-m", "tabsynth", *argv], capture_output=True, text=True)
        assert res.returncode == 0 and "usage: tabsynth" in res.stdout


def test_fit_then_sample_with_conditions(tmp_path, capsys):
    model = tmp_path / "m.tsyn"
    assert main(["fit", "datasets/german_credit.csv.gz", "-o", str(model), "--model", "tvae",
                 "--epochs", "1", "--seed", "0", "-q"]) == 0
    assert "no formal privacy guarantee" in capsys.readouterr().out
    out = tmp_path / "s.parquet"
    assert main(["sample", str(model), "-n", "300", "-o", str(out), "--condition", "telephone=True",
                 "--condition", "credit=bad", "--seed", "1", "--batch-rows", "128"]) == 0
    import pandas as pd
    df = pd.read_parquet(out)
    assert len(df) == 300 and (df["telephone"] == True).all() and (df["credit"] == "bad").all()  # noqa: E712
    assert main(["sample", str(model), "-n", "5", "-o", str(out), "--condition", "credit"]) == 2
    assert "write COLUMN=VALUE" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "none.tsyn"), "-n", "5", "-o", str(out)]) == 2
    assert "model file not found" in capsys.readouterr().err


def test_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--epochs", "1", "--rows", "2000", "-q"]) == 0
    assert (tmp_path / "synthetic.csv").exists() and (tmp_path / "model.tsyn").exists()
    assert (tmp_path / "metadata.json").exists() and (tmp_path / "report.html").exists()
    assert "no formal" in (tmp_path / "report.html").read_text().lower()


def test_fit_and_sample_a_person_table_with_its_events(tmp_path, capsys):
    import pandas as pd

    import tabsynth as ts

    persons, events = ts.datasets.load("pbcseq")
    persons.head(40).to_csv(tmp_path / "persons.csv", index=False)
    events[events["id"].isin(persons["id"].head(40))].to_csv(tmp_path / "events.csv", index=False)
    model = tmp_path / "m.tsyn"
    assert main(["fit", str(tmp_path / "events.csv"), "--subjects", str(tmp_path / "persons.csv"), "--key", "id",
                 "--order-by", "day", "-o", str(model), "--epochs", "1", "--seed", "0", "-q"]) == 0
    assert "40 persons" in capsys.readouterr().out
    assert main(["sample", str(model), "-n", "30", "-o", str(tmp_path / "out.csv"), "--seed", "1"]) == 0
    subjects, ev = pd.read_csv(tmp_path / "out_subjects.csv"), pd.read_csv(tmp_path / "out_events.csv")
    assert len(subjects) == 30 and list(subjects.columns) == list(persons.columns)
    assert set(ev["id"]) <= set(subjects["id"]) and list(ev.columns) == list(events.columns)
    assert ev.groupby("id")["day"].apply(lambda s: s.is_monotonic_increasing).all()
    assert main(["fit", str(tmp_path / "events.csv"), "--order-by", "day", "-o", str(model)]) == 2
    assert "--key" in capsys.readouterr().err
