"""The shipped family contract (tabsynth.testing.check_synthesizer) on every registered family, on
a fourth family written as a third party would, and on a broken one."""

from __future__ import annotations

import pytest

import tabsynth as ts
from tabsynth.models.registry import MODELS, model_names
from tabsynth.testing import check_synthesizer

SMALL = {"CTGAN": dict(epochs=1, batch_size=100, generator_dim=(32,), discriminator_dim=(32,)),
         "TVAE": dict(epochs=2, batch_size=100, compress_dims=(32,), decompress_dims=(32,)),
         "TabularAR": dict(epochs=2, batch_size=100, embedding_dim=16, hidden=(32,))}


@pytest.mark.parametrize("family", sorted(SMALL))
def test_every_registered_family_meets_the_contract(family):
    check_synthesizer(MODELS[family], SMALL[family])


@pytest.fixture
def independent():
    """The example family, registered by importing its module, and unregistered afterwards so that the
    other tests' view of the registry stays the library's."""
    import sys

    import independent_family

    yield independent_family.IndependentColumns
    MODELS.pop("Independent", None)
    sys.modules.pop("independent_family", None)


def test_a_family_from_its_own_module_and_one_registration_line(independent, tmp_path):
    IndependentColumns = independent

    check_synthesizer(IndependentColumns, dict(epochs=5, batch_size=100))
    assert "independent" in model_names()
    from tabsynth.cli import build_parser

    args = build_parser().parse_args(["fit", "x.csv", "-o", "m.tsyn", "--model", "independent"])
    assert args.model == "independent"
    df = ts.datasets.load("german_credit").head(300)
    rel = ts.release(df, epsilon=1.0, ledger=tmp_path / "b.db", out=tmp_path / "r", dataset_id="g",
                     budget=(2.0, 1e-5), model="independent", report=False)
    assert rel.manifest["model"]["class"].endswith(".IndependentColumns")
    assert rel.manifest["model"]["name"] == "independent" and rel.privacy.epsilon <= 1.0 + 1e-9


def test_a_broken_family_is_named_with_what_it_breaks():
    class Forgetful(MODELS["TVAE"]):
        def fit(self, data, metadata=None):
            super().fit(data, metadata)  # returns None instead of self

    with pytest.raises(AssertionError, match="Forgetful breaks the family contract") as info:
        check_synthesizer(Forgetful, SMALL["TVAE"])
    assert "fit must return self" in str(info.value) and "registered: AssertionError: register" in str(info.value)
