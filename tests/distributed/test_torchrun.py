"""Training in several processes under torchrun (CPU, gloo): same model on every rank, same DP accounting
as one process for the same global sample rate, steps and noise."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import tabsynth as ts
from tabsynth.privacy.randomness import reproducible_noise
from tabsynth.distributed import read_shard, shard_range

WORLD = 2
ROWS = 601


@pytest.fixture(scope="module")
def torchrun_run(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("torchrun")
    data = tmp / "adult"
    data.mkdir()
    df = ts.datasets.load("adult").head(ROWS)
    # three files with uneven row groups: shards do not follow file boundaries
    df.iloc[:250].to_parquet(data / "a.parquet", row_group_size=100)
    df.iloc[250:270].to_parquet(data / "b.parquet")
    df.iloc[270:].to_parquet(data / "c.parquet", row_group_size=64)
    out = tmp / "out"
    out.mkdir()
    worker = Path(__file__).with_name("_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}",
           str(worker), str(data), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return data, out


@pytest.mark.parametrize("name", ["dp_tvae", "dp_ctgan", "dp_ar", "ctgan", "tvae", "ar"])
def test_every_rank_ends_with_the_same_weights(torchrun_run, name):
    _, out = torchrun_run
    states = [torch.load(out / f"{name}.rank{r}.pt", weights_only=True) for r in range(WORLD)]
    assert states[0].keys() == states[1].keys() and states[0]
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


@pytest.mark.parametrize("name", ["dp_tvae", "dp_ctgan"])
def test_distributed_epsilon_is_the_single_process_value(torchrun_run, name):
    from opacus.accountants import RDPAccountant

    data, out = torchrun_run
    report = json.loads((out / f"{name}.json").read_text())
    # the same fit in one process on all the rows, with the same (test-only) reproducible noise:
    # the same noisy row count, so the same sigma, rate, steps and total epsilon
    cls = ts.TVAE if name == "dp_tvae" else ts.CTGAN
    with reproducible_noise(0):
        single = cls(epsilon=2.0, epochs=2, batch_size=100, seed=0, verbose=False, device="cpu").fit(
            pd.read_parquet(data))
    assert report["n_rows"] == single.n_rows_ == report["parts"]["preprocessing"]["details"]["noisy_row_count"]
    train = report["parts"]["training"]["details"]
    steps_per_epoch = math.ceil(single.n_rows_ / 100)
    assert train["sample_rate"] == pytest.approx(1 / steps_per_epoch)  # global rate, not per shard
    assert train["steps"] == 2 * steps_per_epoch
    assert train["processes"] == WORLD
    one = single.privacy_spent()
    one_train = one.parts["training"].details
    for key in ("noise_multiplier", "sample_rate", "steps"):
        assert train[key] == pytest.approx(one_train[key], rel=1e-12)
    assert report["epsilon"] == pytest.approx(one.epsilon, abs=1e-9)
    assert report["epsilon"] <= 2.0 + 1e-9
    acc = RDPAccountant()
    acc.history = [(train["noise_multiplier"], train["sample_rate"], train["steps"])]
    assert train["opacus_rdp_epsilon"] == pytest.approx(acc.get_epsilon(delta=one.parts["training"].delta),
                                                        abs=1e-6)


def test_each_rank_writes_its_part_of_the_sample(torchrun_run):
    _, out = torchrun_run
    parts = sorted((out / "synthetic").glob("part-*.parquet"))
    assert [p.name for p in parts] == ["part-00000.parquet", "part-00001.parquet"]
    synth = pd.read_parquet(out / "synthetic")
    assert len(synth) == 1001
    assert [len(pd.read_parquet(p)) for p in parts] == [b - a for a, b in (shard_range(1001, r, 2) for r in range(2))]
    assert list(synth.columns) == list(ts.datasets.load("adult").columns)


def test_read_shard_covers_every_row_once(tmp_path):
    df = pd.DataFrame({"x": range(1003), "y": ["a", "b", "c"] * 334 + ["a"]})
    (tmp_path / "d").mkdir()
    df.iloc[:500].to_parquet(tmp_path / "d" / "p0.parquet", row_group_size=128)
    df.iloc[500:].to_parquet(tmp_path / "d" / "p1.parquet", row_group_size=200)
    parts = [read_shard(tmp_path / "d", r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [334, 334, 335]
    assert pd.concat(parts)["x"].tolist() == list(range(1003))


def test_read_shard_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(ts.errors.InputFileError, match="not found"):
        read_shard(tmp_path / "nope.parquet", 0, 2)


@pytest.mark.slow
def test_cli_fit_and_sample_with_nproc(torchrun_run, tmp_path):
    data, _ = torchrun_run
    model = tmp_path / "m.tsyn"
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    fit = subprocess.run([sys.executable, "-m", "tabsynth", "fit", str(data), "-o", str(model), "--model", "tvae",
                          "--epochs", "1", "--nproc", "2", "-q", "--device", "cpu"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert f"fitted tvae on {ROWS} rows in 2 processes" in fit.stdout
    out = tmp_path / "synth"
    sample = subprocess.run([sys.executable, "-m", "tabsynth", "sample", str(model), "-n", "500", "-o", str(out),
                             "--nproc", "2", "--seed", "1"], capture_output=True, text=True, timeout=600, env=env)
    assert sample.returncode == 0, sample.stderr[-3000:]
    assert len(pd.read_parquet(out)) == 500 and len(list(out.glob("part-*.parquet"))) == 2


def test_csv_input_under_torchrun_is_refused(monkeypatch, tmp_path):
    from tabsynth.distributed import Runtime
    from tabsynth.models.base import BaseSynthesizer

    with pytest.raises(ts.errors.ConfigError, match="Parquet"):
        BaseSynthesizer._read_input(tmp_path / "t.csv", Runtime(rank=0, world_size=2))


def test_a_bad_shard_stops_every_rank_with_the_error(tmp_path):
    worker = Path(__file__).with_name("_worker.py")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc-per-node={WORLD}", str(worker), "bad-shard", str(tmp_path)],
                          capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    own = (tmp_path / "error.rank1.txt").read_text()
    other = (tmp_path / "error.rank0.txt").read_text()
    assert "inf" in own.lower()
    assert other == f"process 1: {own}"
