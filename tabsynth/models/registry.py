"""The one list of model families: persistence, releases, the report and the CLI read it here.

A family joins by decorating its class with :func:`register`; the name is what model files store
and what ``--model`` (lowercased) accepts.
"""

from __future__ import annotations

from collections.abc import Callable

from tabsynth.errors import ConfigError

#: Registered families by name (``"CTGAN"``, ``"TVAE"``, ...), in registration order.
MODELS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator adding a model family under ``name``."""
    def add(cls: type) -> type:
        if name in MODELS and MODELS[name] is not cls:
            raise ValueError(f"model family {name!r} is registered twice")
        MODELS[name] = cls
        return cls

    return add


def family_name(cls: type) -> str:
    """The name ``cls`` is registered under (what model files store)."""
    for name, registered in MODELS.items():
        if registered is cls:
            return name
    raise ConfigError(f"{cls.__name__} is not a registered model family: add register('NAME')({cls.__name__}) "
                      "to its module")


def model_names() -> list[str]:
    """The lowercase names the CLI and ``release(model=...)`` accept."""
    return [name.lower() for name in MODELS]


def model_class(name: str) -> type:
    """The family called ``name`` (any case); a :class:`ConfigError` listing the choices otherwise."""
    for key, cls in MODELS.items():
        if isinstance(name, str) and key.lower() == name.lower():
            return cls
    raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(model_names())}")
