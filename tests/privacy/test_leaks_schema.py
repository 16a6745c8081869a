"""Neighbouring tables D and D plus one row give the same published schema under DP: the CLI's public
domain flags, dtypes a CSV reader infers from cells, and bad cells (docs/privacy.md rules 4, 4a, 4b)."""

from __future__ import annotations

import io
import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import tabsynth as ts
from tabsynth.cli import main
from tabsynth.errors import DataError, PrivacyWarning

FIT = dict(epochs=1, batch_size=50, seed=0, verbose=False, device="cpu")


def _published(model) -> dict:
    """What a DP model publishes about its schema: kinds and dtypes, the statement's schema and delta."""
    spent = model.privacy_spent()
    return {"metadata": model.metadata_.to_dict(), "assumptions": spent.assumptions, "delta": spent.delta}


# --- the CLI's public-domain flags --------------------------------------------------------------------
def _flag_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """D, and D plus one row that flips what detection reads off the values: ``code`` id -> categorical
    (a repeated code), ``bin`` 0/1 boolean -> integer (a 2), ``email`` pii -> id (one more cell that is
    not an address)."""
    n = 40
    rng = np.random.default_rng(1)
    d = pd.DataFrame({
        "code": [f"code-{i:06d}" for i in range(n - 2)] + ["code-000000", "code-000001"],
        "bin": rng.integers(0, 2, n),
        "email": [f"person{i}@example.org" for i in range(n - 4)] + ["n/a", "none", "-", "?"],
        "grp": rng.choice(["a", "b"], n),
        "v": rng.uniform(0, 10, n).round(2),
    })
    row = pd.DataFrame({"code": ["code-000002"], "bin": [2], "email": ["unknown"], "grp": ["a"], "v": [5.0]})
    return d, pd.concat([d, row], ignore_index=True)


def test_cli_public_flags_under_dp_never_detect_the_schema(tmp_path, capsys):
    d, plus = _flag_tables()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detected = [ts.Metadata.detect(df) for df in (d, plus)]
    assert [m.columns["code"].kind for m in detected] == ["id", "categorical"]  # what detection would leak
    assert [m.columns["bin"].kind for m in detected] == ["boolean", "integer"]
    assert [m.columns["email"].kind for m in detected] == ["pii", "id"]
    published = []
    for name, df in (("d", d), ("plus", plus)):
        df.to_csv(tmp_path / f"{name}.csv", index=False)
        out = tmp_path / f"{name}.tsyn"
        rc = main(["fit", str(tmp_path / f"{name}.csv"), "-o", str(out), "--model", "tvae", "--epsilon", "1",
                   "--epochs", "1", "--batch-size", "20", "--public-domain", "grp=a,b", "--public-bounds", "v=0:10",
                   "-q", "--threads", "1"])
        assert rc == 0
        assert "personal identifiers" not in capsys.readouterr().err  # the pii detection did not run either
        published.append(_published(ts.load(out)))
    assert published[0] == published[1]
    columns = published[0]["metadata"]["columns"]
    assert {c: s["kind"] for c, s in columns.items()} == {
        "code": "categorical", "bin": "categorical", "email": "categorical", "grp": "categorical", "v": "numerical"}
    schema = published[0]["assumptions"]["schema"]
    assert "dtypes" in schema and "declared on top: grp, v" in schema


def test_cli_flags_outside_dp_still_detect(tmp_path):
    d, _ = _flag_tables()
    d.to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "d.tsyn"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["fit", str(tmp_path / "d.csv"), "-o", str(out), "--model", "tvae", "--epochs", "1",
                     "--batch-size", "20", "--public-bounds", "v=0:10", "-q", "--threads", "1"]) == 0
    kinds = {c: s.kind for c, s in ts.load(out).metadata_.columns.items()}
    assert kinds["code"] == "id" and kinds["bin"] == "boolean" and kinds["email"] == "pii"


# --- dtypes a CSV reader infers from the cells -----------------------------------------------------------
def _dtype_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """D with a whole-number column and a number column, and D plus one row holding a gap in the first
    and ``12a`` in the second: read back from CSV by pandas, int64 -> float64 and float64 -> object."""
    rng = np.random.default_rng(2)
    n = 120
    d = pd.DataFrame({"age": rng.integers(18, 90, n), "score": rng.normal(50, 10, n).round(1),
                      "grp": rng.choice(["a", "b", "c"], n)})
    row = pd.DataFrame({"age": [None], "score": ["12a"], "grp": ["a"]})
    return d, pd.concat([d.astype(object), row], ignore_index=True)


def _fit_quietly(data, metadata=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        return ts.TVAE(epsilon=1.0, **FIT).fit(data, metadata=metadata)


def test_one_row_does_not_change_the_dp_schema_of_a_csv(tmp_path):
    d, plus = _dtype_tables()
    paths = [tmp_path / "d.csv", tmp_path / "plus.csv"]
    for df, path in zip((d, plus), paths):
        df.to_csv(path, index=False)
    inferred = [pd.read_csv(p).dtypes.astype(str).to_dict() for p in paths]
    assert inferred[0]["age"] == "int64" and inferred[1]["age"] == "float64"  # what the reader flips
    assert inferred[0]["score"] == "float64" and inferred[1]["score"] == "object"

    # a path read by the fit: its cells are text, so no cell sets a dtype
    fits = [_fit_quietly(p) for p in paths]
    assert _published(fits[0]) == _published(fits[1])
    assert [dict(m.sample(50, seed=1).dtypes.astype(str)) for m in fits] == [{"age": "object", "score": "object",
                                                                            "grp": "object"}] * 2
    # declared kinds: the gap and the unparseable cell are missing values, counted by the noisy missing rate
    meta = ts.Metadata.from_dict({"columns": {"age": {"kind": "integer", "dtype": "float64"},
                                              "score": {"kind": "numerical", "dtype": "float64"},
                                              "grp": {"kind": "categorical", "dtype": "object"}}})
    fits = [_fit_quietly(p, meta) for p in paths]
    assert _published(fits[0]) == _published(fits[1])
    assert fits[1].metadata_.columns["score"].kind == "numerical"
    assert "missing" in fits[1].privacy_spent().parts["preprocessing"].details["columns"]["score"]["statistic"]


def test_integer_and_float_dtypes_are_one_numeric_kind_under_dp(tmp_path):
    d, plus = _dtype_tables()
    plus = plus.assign(score=pd.to_numeric(plus["score"], errors="coerce"))
    frames = [d, pd.read_csv(io.StringIO(plus.to_csv(index=False)))]  # age: int64, then float64
    assert [str(f["age"].dtype) for f in frames] == ["int64", "float64"]
    fits = [_fit_quietly(f) for f in frames]
    assert _published(fits[0]) == _published(fits[1])
    assert fits[0].metadata_.columns["age"].kind == "numerical" and fits[0].metadata_.columns["age"].dtype == "float64"
    assert [str(m.sample(50, seed=1)["age"].dtype) for m in fits] == ["float64", "float64"]
    stated = fits[0].privacy_spent().assumptions
    assert stated["kinds"]["age"] == "numerical" and "integer and float one kind" in stated["schema"]


# --- bad cells -------------------------------------------------------------------------------------
def _bad_cells() -> tuple[pd.DataFrame, ts.Metadata]:
    rng = np.random.default_rng(3)
    n = 200
    df = pd.DataFrame({"visit": pd.Series(pd.date_range("2021-01-01", periods=n, freq="D")).dt.strftime("%Y-%m-%d"),
                       "x": rng.normal(40, 8, n).round(1), "grp": rng.choice(["a", "b"], n)})
    df.loc[150, "visit"] = "SECRET-7731"
    df.loc[151, "x"] = np.inf
    return df, ts.Metadata.from_dtypes(df).with_column("visit", kind="datetime")


def test_bad_cells_are_missing_under_dp_and_never_quoted(capsys):
    df, meta = _bad_cells()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fits = [ts.TVAE(epsilon=1.0, **{**FIT, "verbose": True}).fit(t, metadata=meta)
                for t in (df, df.drop(index=[150, 151]))]
    said = capsys.readouterr()
    text = said.out + said.err + " ".join(str(w.message) for w in caught)
    for secret in ("SECRET", "7731", "position", "infinite"):
        assert secret not in text
    assert _published(fits[0]) == _published(fits[1])
    assert fits[0].metadata_.columns["visit"].kind == "datetime"


def test_bad_cells_outside_dp_keep_the_precise_messages():
    df, meta = _bad_cells()
    with pytest.raises(DataError, match="1 infinite value"):
        ts.TVAE(**FIT).fit(df, metadata=meta)
    with pytest.raises((DataError, ValueError), match="SECRET-7731.*position 150"):
        ts.TVAE(**FIT).fit(df.replace(np.inf, 1.0), metadata=meta)


def test_a_declared_cell_reader_reads_one_cell_at_a_time():
    from tabsynth.metadata.public import declared_values

    df = pd.DataFrame({"n": ["1", "2.5", "12a", "1e999", None], "b": ["true", "0", "maybe", "FALSE", None],
                       "t": ["2021-01-02", "2021-01-03 10:00+01:00", "SECRET", None, "2021-02-01"]})
    meta = ts.Metadata.from_dtypes(df).with_column("n", kind="numerical").with_column("b", kind="boolean") \
        .with_column("t", kind="datetime")
    out = declared_values(df, meta)
    assert out["n"].tolist()[:2] == [1.0, 2.5] and out["n"].isna().tolist() == [False, False, True, True, True]
    assert out["b"].tolist() == [True, False, None, False, None]
    assert out["t"].isna().tolist() == [False, False, True, True, False]
    assert out["t"][1] == pd.Timestamp("2021-01-03 09:00")
    # each cell alone: the same cell reads the same beside any other rows
    assert declared_values(df.iloc[[1, 4]], meta)["t"].tolist() == out["t"].iloc[[1, 4]].tolist()


# --- text columns only ---------------------------------------------------------------------------
@pytest.mark.parametrize("k", [3, 5, 7])
def test_partition_selection_shares_never_sum_above_delta(k):
    from tabsynth.privacy.accountant import Accountant

    acc = Accountant(0.5, 5e-6)  # a CSV read as text selects every column: 5 columns overspent by one ulp
    share = acc.selection_delta(k)
    for i in range(k):
        acc.add_selection(f"c{i}", share)
    assert acc.statement().delta <= 5e-6 and share == pytest.approx(acc.delta_sel / k, rel=1e-12)


def test_dp_tvae_fits_a_table_without_numbers():
    df = pd.DataFrame({"a": list("xyz") * 40, "b": list("ab") * 60})
    model = _fit_quietly(df)
    assert not model.net_.sigma.sigma.requires_grad and model.sample(10).shape == (10, 2)


def test_release_from_a_csv_reads_no_dtype_off_a_cell_and_refuses_no_bad_cell(tmp_path):
    """``ts.release`` on a CSV path: the gap, the ``12a`` cell and an infinity neither change the
    published schema nor refuse the release, and no message quotes them."""
    d, plus = _dtype_tables()
    plus = plus.astype({"score": object})
    plus.loc[len(plus) - 1, "score"] = "inf"
    schemas = []
    for i, df in enumerate((d, plus)):
        path = tmp_path / f"t{i}.csv"
        df.to_csv(path, index=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rel = ts.release(path, epsilon=1.0, ledger=tmp_path / f"b{i}.db", out=tmp_path / f"r{i}",
                             dataset_id="t", budget=(2.0, 1e-5), report=False, epochs=1)
        manifest = rel.manifest
        schemas.append((manifest["columns"] if "columns" in manifest else None, manifest["privacy"]["assumptions"]))
        # as a value of its own: hex digests and ids may hold "12a" by chance
        assert not re.search(r"(?<![0-9a-f])12a(?![0-9a-f])", json.dumps(manifest))
        assert "inf" not in json.dumps(manifest["privacy"]["assumptions"])
    assert schemas[0] == schemas[1]
