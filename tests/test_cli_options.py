"""CLI options: public domains, threads, row counts, model files, warnings and what a fit prints."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

import tabsynth as ts
from tabsynth.cli import build_parser, main
from tabsynth.public_domains import public_metadata
from tabsynth.threads import auto_threads


@pytest.fixture(scope="module")
def credit_csv(tmp_path_factory):
    df = ts.datasets.load("german_credit").sample(200, random_state=0).reset_index(drop=True)
    df = df[["status", "duration", "credit_amount", "age", "credit"]]
    path = tmp_path_factory.mktemp("cli") / "credit.csv"
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model_file(credit_csv):
    out = credit_csv.parent / "model.tsyn"
    assert main(["fit", str(credit_csv), "-o", str(out), "--epochs", "1", "--batch-size", "100", "-q"]) == 0
    return out


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_fit_with_public_domains_and_dp_prints_privacy_once(credit_csv, tmp_path, capsys, keep_threads):
    out = tmp_path / "m.tsyn"
    rc = main(["fit", str(credit_csv), "-o", str(out), "--epochs", "1", "--batch-size", "100", "--epsilon", "1",
               "--public-domain", "credit=good,bad", "--public-bounds", "duration=1:80", "--threads", "1"])
    assert rc == 0 and capsys.readouterr().out.count("privacy: ") == 1
    assert torch.get_num_threads() == 1
    meta = ts.load(out).metadata_
    assert meta.columns["credit"].is_public and set(meta.columns["credit"].categories) == {"good", "bad"}
    assert meta.columns["duration"].is_public and meta.columns["duration"].bounds == (1.0, 80.0)
    assert not meta.columns["age"].is_public


def test_release_flags_build_public_metadata(credit_csv, tmp_path):
    args = build_parser().parse_args(
        ["release", str(credit_csv), "--epsilon", "1", "--ledger", "b.db", "--dataset-id", "c", "-o", "r",
         "--public-domain", "status=A11,A12,A13,A14", "--public-bounds", "age=18:100"])
    meta = public_metadata(pd.read_csv(credit_csv), args)
    assert meta.columns["status"].categories == ("A11", "A12", "A13", "A14")
    assert meta.columns["age"].bounds == (18.0, 100.0)


def test_datetime_bounds_may_hold_colons():
    df = pd.DataFrame({"t": pd.date_range("2021-01-01", periods=30, freq="h"), "n": np.arange(30)})
    args = build_parser().parse_args(["fit", "x.csv", "-o", "m", "--public-bounds",
                                      "t=2020-01-01 00:00:00:2022-12-31 23:59:59", "--public-domain", "n=0,1"])
    with pytest.raises(ts.errors.MetadataError, match="bounds, not categories"):
        public_metadata(df, args)
    args.public_domain = None
    assert public_metadata(df, args).columns["t"].bounds == ("2020-01-01 00:00:00", "2022-12-31 23:59:59")


@pytest.mark.parametrize("flag, fragment", [("--public-domain", "COLUMN=A,B"), ("--public-bounds", "LOW:HIGH")])
def test_malformed_public_flags_exit_2(credit_csv, tmp_path, capsys, flag, fragment):
    rc = main(["fit", str(credit_csv), "-o", str(tmp_path / "m.tsyn"), flag, "credit"])
    assert rc == 2 and fragment in capsys.readouterr().err


def test_zero_rows_say_so_and_negative_rows_are_refused(model_file, tmp_path, capsys):
    assert main(["sample", str(model_file), "-n", "0", "-o", str(tmp_path / "empty.csv")]) == 0
    assert "header only" in capsys.readouterr().err
    assert list(pd.read_csv(tmp_path / "empty.csv").columns) == ["status", "duration", "credit_amount", "age",
                                                                 "credit"]
    assert main(["sample", str(model_file), "-n", "-5", "-o", str(tmp_path / "neg.csv")]) == 2
    assert "must be 0 or more" in capsys.readouterr().err and not (tmp_path / "neg.csv").exists()


def test_truncated_model_file_says_so(model_file, tmp_path, capsys):
    data = model_file.read_bytes()
    cut = tmp_path / "cut.tsyn"
    cut.write_bytes(data[: len(data) // 2])
    assert main(["sample", str(cut), "-n", "5", "-o", str(tmp_path / "x.csv")]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err


def test_warnings_show_without_source_paths(tmp_path, capsys):
    path = tmp_path / "lab.csv"
    values = [f"{v:.2f}" for v in np.linspace(0.4, 10.8, 60)]
    values[7] = "unknown"
    pd.DataFrame({"lab": values}).to_csv(path, index=False)
    assert main(["metadata", str(path)]) == 0
    err = capsys.readouterr().err
    assert "tabsynth: warning: column 'lab' holds numbers" in err and ".py" not in err


def test_threads_follow_the_load(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert auto_threads() == cores
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 7.0, 0.0, 0.0))
    assert auto_threads() == 1


def test_demo_help_makes_no_time_promise():
    text = build_parser()._subparsers._group_actions[0].choices["demo"].format_help()
    assert "45 s" not in text and "--threads" in text
