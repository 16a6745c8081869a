"""Defaults live once, in the code: each family's docstring states none by hand, and the
generated "Default: ..." sentence of every parameter is what the code resolves, with and without DP."""

from __future__ import annotations

import inspect
import re

import pytest

from tabsynth.models.defaults import default_sentence, default_values
from tabsynth.models.registry import MODELS

FAMILIES = sorted(MODELS)


def _args(doc: str) -> str:
    return doc.split("Args:", 1)[1].split("\n\n", 1)[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_no_default_is_written_by_hand(family):
    raw = _args(MODELS[family]._raw_doc)
    assert not re.search(r"\bdefaults?\b", raw, re.IGNORECASE), "state defaults in the code, not the docstring"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_parameter_is_documented_with_the_codes_default(family, monkeypatch, library_dp_steps):
    cls = MODELS[family]
    monkeypatch.setattr(cls, "_DP_STEPS", library_dp_steps[family])  # the tests' shrunk rule is not the doc's
    args = _args(cls.__doc__)
    names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    documented = {n.strip() for line in re.findall(r"^ {8}([\w, ]+):", args, re.M) for n in line.split(",")}
    assert set(names) <= documented, f"undocumented: {sorted(set(names) - documented)}"
    for name, (plain, private) in default_values(cls).items():
        if re.search(rf"^ {{8}}{name}:", args, re.M):
            assert default_sentence(plain, private) in args, name


def test_the_sentence_follows_the_code():
    tvae = MODELS["TVAE"]

    class Longer(tvae):
        _DEFAULTS = {**tvae._DEFAULTS, "epochs": (123, None)}

        def __init__(self, epochs=None, batch_size=None, embedding_dim=64, compress_dims=(128, 128),
                     decompress_dims=(128, 128), l2scale=1e-5, lr=None, loss_factor=2.0, marginal_weight=1.0,
                     numerical="mode", max_categories=500, device="auto", seed=None, verbose=True,
                     precision="fp32", epsilon=None, delta=None, max_grad_norm=None, dp=None):
            self._store(locals())

    Longer.__doc__ = tvae._raw_doc
    from tabsynth.models.defaults import document_defaults

    document_defaults(Longer)
    assert "Default: 123; under DP auto:" in Longer.__doc__ and "Default: 64." in Longer.__doc__
    assert Longer(epochs=None).resolved_params()["epochs"] == 123
