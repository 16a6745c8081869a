import pytest

import tabsynth as ts


@pytest.mark.parametrize("name, shape", [("adult", (32561, 15)), ("adult_test", (16281, 15)),
                                         ("german_credit", (1000, 21)), ("credit_data", (4454, 14)),
                                         ("flchain", (7874, 11)), ("hmda", (2380, 14)),
                                         ("telco_churn", (7043, 20)), ("nmes1988", (4406, 19)),
                                         ("rotterdam", (2982, 15)), ("nass_cds", (26217, 15)),
                                         ("yrbss", (13583, 13))])
def test_load(name, shape):
    df = ts.datasets.load(name)
    assert df.shape == shape
    assert ts.datasets.TARGETS[name] in df.columns


def test_unknown_name():
    with pytest.raises(ts.errors.InputFileError, match="unknown dataset 'iris'; choose one of"):
        ts.datasets.load("iris")


def test_version_and_errors_are_valueerrors():
    assert ts.__version__
    assert issubclass(ts.errors.TabsynthError, ValueError)
    assert issubclass(ts.errors.NotFittedError, ts.errors.TabsynthError)
