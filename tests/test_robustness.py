"""Odd and bad inputs through the public API: each works or raises a TabsynthError.

Grow the corpus whenever a user finds an input that crashes: add a frame to ``CORPUS`` (it must
fit and sample on every model family) or a case to the refusals below. Every model family
(every subclass of ``BaseSynthesizer``) runs every case.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import tabsynth as ts
from tabsynth.errors import ConfigError, DataError, DataWarning, TabsynthError
from tabsynth.models.base import BaseSynthesizer

FAMILIES = sorted(BaseSynthesizer.__subclasses__(), key=lambda cls: cls.__name__)
N = 120


def _base() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=N), "group": rng.choice(["a", "b"], N)})


def _numpy_str_sentences() -> pd.DataFrame:
    words = pd.Series([np.str_(f"patient {i} seen on visit {i % 7}, no change") for i in range(N)], dtype=object)
    return _base().assign(note=words)


def _mixed_utc_offsets() -> pd.DataFrame:
    start = pd.Timestamp("2021-03-01 08:00")
    stamps = [(start + pd.Timedelta(hours=i)).tz_localize("UTC" if i % 2 else "Europe/Oslo").to_pydatetime()
              for i in range(N)]
    return _base().assign(admitted=pd.Series(stamps, dtype=object))


def _lab_with_words() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    lab = [f"{v:.2f}" for v in rng.uniform(0.4, 10.8, N)]
    for i in (5, 50, 90):
        lab[i] = "unknown"
    return _base().assign(creatinine=lab)


#: name -> (frame, what the fitted model's samples must satisfy)
CORPUS = {
    "numpy.str_ sentences": (_numpy_str_sentences, lambda syn: syn["note"].notna().all()),
    "datetimes with mixed UTC offsets": (_mixed_utc_offsets,
                                         lambda syn: str(syn["admitted"].dt.tz) == "UTC"),
    "numbers with a few 'unknown' words": (
        _lab_with_words, lambda syn: pd.to_numeric(syn["creatinine"]).dropna().between(0.3, 11).all()),
}


def _fit(cls, df: pd.DataFrame):
    return cls(epochs=1, batch_size=60, seed=0, verbose=False).fit(df)


@pytest.mark.parametrize("case", list(CORPUS))
@pytest.mark.parametrize("cls", FAMILIES, ids=lambda c: c.__name__)
def test_odd_inputs_fit_and_sample(cls, case):
    make, check = CORPUS[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        syn = _fit(cls, make()).sample(40, seed=1)
    assert len(syn) == 40 and check(syn)


def test_words_in_a_numeric_column_are_missing_with_a_warning():
    with pytest.warns(DataWarning, match=r"'creatinine'.*'unknown' x3"):
        meta = ts.Metadata.detect(_lab_with_words())
    assert meta.columns["creatinine"].kind == "numerical" and meta.columns["creatinine"].nullable


def test_many_words_keep_a_column_categorical():
    df = _lab_with_words()
    df.loc[:20, "creatinine"] = "unknown"
    assert ts.Metadata.detect(df).columns["creatinine"].kind == "categorical"


def test_mixed_utc_offsets_warn():
    with pytest.warns(DataWarning, match="mixes UTC offsets"):
        assert ts.Metadata.detect(_mixed_utc_offsets()).columns["admitted"].kind == "datetime"


@pytest.mark.parametrize("cls", FAMILIES, ids=lambda c: c.__name__)
def test_values_near_float_limits_are_refused_naming_the_column(cls):
    df = _base().assign(huge=np.linspace(1e299, 1e300, N))
    with pytest.raises(DataError, match=r"column 'huge'.*rescale"):
        _fit(cls, df)


@pytest.mark.parametrize("cls", FAMILIES, ids=lambda c: c.__name__)
def test_sampling_beyond_memory_is_refused_pointing_to_sample_to_file(cls):
    model = _fit(cls, _base())
    with pytest.raises(ConfigError, match="sample_to_file"):
        model.sample(10**12)
    assert len(model.sample(10)) == 10


@pytest.mark.parametrize("bad", [
    pd.DataFrame(),
    pd.DataFrame({"x": [1.0, np.inf, 2.0] * 10}),
    pd.DataFrame({"x": [1, "a", 2.5] * 10}),
])
@pytest.mark.parametrize("cls", FAMILIES, ids=lambda c: c.__name__)
def test_bad_tables_raise_tabsynth_errors(cls, bad):
    with pytest.raises(TabsynthError):
        _fit(cls, bad)
