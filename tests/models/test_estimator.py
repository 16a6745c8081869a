"""Every registered family is a well-behaved scikit-learn estimator: ``clone``, ``get_params(deep)``,
``set_params`` (nested too) and ``repr`` work as scikit-learn's own estimators do."""

from __future__ import annotations

import inspect

import pytest
from sklearn.base import clone
from sklearn.model_selection import ParameterGrid

import tabsynth as ts
from tabsynth.errors import ConfigError
from tabsynth.models.registry import MODELS

FAMILIES = sorted(MODELS)


def _constructor_names(cls) -> list[str]:
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


@pytest.mark.parametrize("family", FAMILIES)
def test_get_params_lists_every_constructor_argument(family):
    cls = MODELS[family]
    model = cls(seed=3, epochs=5)
    for deep in (False, True):
        params = model.get_params(deep=deep)
        assert list(params) == _constructor_names(cls)
        assert params["seed"] == 3 and params["epochs"] == 5
    assert model.get_params() == model.get_params(deep=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_clone_gives_an_unfitted_equal_estimator(family, mixed_df):
    cls = MODELS[family]
    dp = ts.DPConfig(epsilon=2.0, marginal_epsilon_share=0.1)
    model = cls(seed=1, epochs=1, batch_size=100, dp=dp, verbose=False)
    copy = clone(model)
    assert type(copy) is cls and copy is not model
    assert copy.get_params(deep=False) == model.get_params(deep=False)
    assert copy.dp == dp and copy.dp is not dp  # deep-copied like any non-estimator parameter
    fitted = cls(seed=1, epochs=1, batch_size=100, verbose=False).fit(mixed_df)
    fresh = clone(fitted)
    fitted_attrs = [a for a in vars(fitted) if a.endswith("_") and not a.startswith("_")]
    assert fitted_attrs, "a fitted model has fitted attributes"
    assert not any(hasattr(fresh, a) for a in fitted_attrs if a not in vars(type(fresh)))
    assert fresh.get_params(deep=False) == fitted.get_params(deep=False)


@pytest.mark.parametrize("family", FAMILIES)
def test_set_params_sets_returns_self_and_refuses_unknown_names(family):
    model = MODELS[family]()
    assert model.set_params(epochs=7, seed=2) is model
    assert model.epochs == 7 and model.seed == 2
    assert model.set_params(**model.get_params(deep=False)).get_params(deep=False) == model.get_params(deep=False)
    with pytest.raises(ConfigError, match="has no parameter 'epoch'"):
        model.set_params(epoch=3)
    with pytest.raises(ConfigError, match="no parameters to set"):
        model.set_params(dp__epsilon=1.0)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_parameter_grid_drives_clones(family):
    """What GridSearchCV does with a candidate: clone the base estimator, set a grid point on it."""
    base = MODELS[family](verbose=False)
    grid = list(ParameterGrid({"epochs": [1, 2], "batch_size": [50, 100]}))
    candidates = [clone(base).set_params(**point) for point in grid]
    assert [(m.epochs, m.batch_size) for m in candidates] == [(p["epochs"], p["batch_size"]) for p in grid]
    assert base.epochs is None or base.epochs not in (1, 2)  # the base is untouched


@pytest.mark.parametrize("family", FAMILIES)
def test_repr_rebuilds_the_estimator(family):
    model = MODELS[family](seed=4, epochs=3, epsilon=1.5)
    text = repr(model)
    assert text.startswith(f"{MODELS[family].__name__}(") and "epsilon=1.5" in text
    rebuilt = eval(text, {MODELS[family].__name__: MODELS[family], "DPConfig": ts.DPConfig})
    assert rebuilt.get_params(deep=False) == model.get_params(deep=False)
