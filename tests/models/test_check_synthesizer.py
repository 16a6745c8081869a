"""The shipped family contract (tabsynth.testing.check_synthesizer) on every registered family, on
a fourth family written as a third party would, and on a broken one."""

from __future__ import annotations

import pytest

import tabsynth as ts
from tabsynth.errors import ConfigError
from tabsynth.models.registry import MODELS, model_class, model_names, register, unregister
from tabsynth.testing import check_synthesizer

SMALL = {"CTGAN": dict(epochs=1, batch_size=100, generator_dim=(32,), discriminator_dim=(32,)),
         "TVAE": dict(epochs=2, batch_size=100, compress_dims=(32,), decompress_dims=(32,)),
         "TabularAR": dict(epochs=2, batch_size=100, embedding_dim=16, hidden=(32,))}


@pytest.mark.parametrize("family", sorted(SMALL))
def test_every_registered_family_meets_the_contract(family):
    check_synthesizer(MODELS[family], SMALL[family])


@pytest.fixture
def independent():
    """The example family, registered by its one line and unregistered afterwards so that the other
    tests' view of the registry stays the library's."""
    register("Independent", "independent_family:IndependentColumns")
    yield MODELS["Independent"]
    unregister("Independent")


_ARGV = {"fit": ["fit", "x.csv", "-o", "m.tsyn"],
         "release": ["release", "x.csv", "--epsilon", "1", "--ledger", "b.db", "--dataset-id", "x", "-o", "out"]}


def _choices(command):
    """The model names the CLI's ``command`` accepts, read by parsing (a refused one raises UserError)."""
    from tabsynth.cli import UserError, build_parser

    accepted = []
    for name in ["ctgan", "tvae", "tabularar", "independent"]:
        try:
            build_parser().parse_args([*_ARGV[command], "--model", name])
        except UserError:
            continue
        accepted.append(name)
    return accepted


def test_a_family_from_its_own_module_and_one_registration_line(independent, tmp_path, capsys):
    check_synthesizer(independent, dict(epochs=5, batch_size=100))
    assert "independent" in model_names() and "independent" in _choices("fit") and "independent" in _choices("release")
    from tabsynth.cli import main

    assert main(["families"]) == 0
    assert "independent  independent_family:IndependentColumns  Independent columns" in capsys.readouterr().out
    df = ts.datasets.load("german_credit").head(300)
    rel = ts.release(df, epsilon=1.0, ledger=tmp_path / "b.db", out=tmp_path / "r", dataset_id="g",
                     budget=(2.0, 1e-5), model="independent", report=False)
    assert rel.manifest["model"]["class"].endswith(".IndependentColumns")
    assert rel.manifest["model"]["name"] == "independent" and rel.privacy.epsilon <= 1.0 + 1e-9


def test_registration_is_one_line_and_undone_by_unregister():
    assert "independent" not in model_names()
    register("Independent", "independent_family:IndependentColumns")
    try:
        assert "independent" in _choices("fit")
        assert model_class("INDEPENDENT").__name__ == "IndependentColumns"
        with pytest.raises(ConfigError, match="declared twice"):
            register("independent", "independent_family:IndependentColumns")
    finally:
        unregister("Independent")
    assert "independent" not in _choices("fit") and "independent" not in model_names()
    with pytest.raises(ConfigError, match="unknown model 'independent': choose one of ctgan, tvae, tabularar"):
        model_class("independent")
    with pytest.raises(ConfigError, match="declared twice"):
        register("TVAE", "independent_family:IndependentColumns")


def test_an_installed_package_declares_a_family_by_its_entry_point(tmp_path, monkeypatch):
    from tabsynth.models import registry

    info = tmp_path / "independent_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: independent-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[tabsynth.families]\nIndependent = independent_family:IndependentColumns\n"
                                           "tvae = independent_family:IndependentColumns\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._entry_points.cache_clear()
    try:
        with pytest.warns(UserWarning, match="'tvae' of the entry point .* is left out: the name is taken"):
            assert model_names() == ["ctgan", "tvae", "tabularar", "independent"]
        assert MODELS["Independent"].__name__ == "IndependentColumns" and MODELS["TVAE"] is ts.TVAE
        assert "independent" in _choices("release")
    finally:
        monkeypatch.undo()
        registry._entry_points.cache_clear()
    assert "independent" not in model_names()


def test_a_family_that_cannot_be_imported_is_named_with_its_declaration():
    register("Missing", "no_such_module:Family")
    try:
        assert "missing" in model_names()
        with pytest.raises(ConfigError, match="'Missing' is declared as 'no_such_module:Family', which cannot be imported"):
            model_class("missing")
    finally:
        unregister("Missing")


def test_no_family_registers_itself_on_import():
    import ast
    from pathlib import Path

    for path in Path(ts.__file__).parent.joinpath("models").glob("*.py"):
        calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]
        assert not [c for c in calls if getattr(c.func, "id", None) == "register"], f"{path.name} registers on import"


def test_a_broken_family_is_named_with_what_it_breaks():
    class Forgetful(MODELS["TVAE"]):
        def fit(self, data, metadata=None):
            super().fit(data, metadata)  # returns None instead of self

    with pytest.raises(AssertionError, match="Forgetful breaks the family contract") as info:
        check_synthesizer(Forgetful, SMALL["TVAE"])
    assert "fit must return self" in str(info.value)
    assert "registered: AssertionError: declare the family in one line" in str(info.value)
