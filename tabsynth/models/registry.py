"""The one list of model families: persistence, releases, the report and the CLI read it here.

A family is declared by one line, never by importing its module: a built-in one in :data:`BUILTIN`
(``name -> "module:Class"``), a third-party one as an entry point of the group ``tabsynth.families``
in its package's ``pyproject.toml``::

    [project.entry-points."tabsynth.families"]
    Independent = "my_package.independent:IndependentColumns"

or, for a script or a test, by :func:`register` (``register("Independent", IndependentColumns)``).
A class is imported the first time it is asked for. The name is what model files store and what
``--model`` and ``release(model=...)`` accept, lowercased.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.metadata import entry_points

from tabsynth.errors import ConfigError

#: The built-in families, in the order the CLI lists them.
BUILTIN: dict[str, str] = {
    "CTGAN": "tabsynth.models.gan:CTGAN",
    "TVAE": "tabsynth.models.vae:TVAE",
    "TabularAR": "tabsynth.models.ar:TabularAR",
}

#: The entry-point group a package declares its families in.
ENTRY_POINT_GROUP = "tabsynth.families"

_added: dict[str, str | type] = {}
_loaded: dict[str, type] = {}  # by "module:Class"


@cache
def _entry_points() -> tuple[tuple[str, str], ...]:
    """``(name, "module:Class")`` of the installed packages' families, read once per process; one whose
    name is taken is left out with a warning, so that a faulty package cannot hide a built-in."""
    out: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if any(ep.name.lower() == key.lower() for key in [*BUILTIN, *out]):
            warnings.warn(f"model family {ep.name!r} of the entry point {ep.name} = {ep.value} is left out: the "
                          "name is taken; rename it in the package's entry points", stacklevel=2)
            continue
        out[ep.name] = ep.value
    return tuple(out.items())


def _declared() -> dict[str, str | type]:
    """Every family's name and its class or ``"module:Class"``: built-ins, entry points, then :func:`register`."""
    return {**BUILTIN, **dict(_entry_points()), **_added}


def _check_new(name: str, known: Mapping[str, object], where: str) -> None:
    if any(key.lower() == name.lower() for key in known):
        raise ConfigError(f"model family {name!r} is declared twice ({where} repeats a name already taken): "
                          "give the family another name")


def _resolve(name: str, target: str | type) -> type:
    if isinstance(target, type):
        return target
    if target not in _loaded:
        module, _, attr = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"model family {name!r} is declared as {target!r}, which cannot be imported "
                              f"({type(exc).__name__}: {exc}); install or fix the package that declares it") from exc
        if not isinstance(cls, type):
            raise ConfigError(f"model family {name!r} is declared as {target!r}, which is not a class")
        _loaded[target] = cls
    return _loaded[target]


class _Families(Mapping[str, type]):
    """Registered families by name (``"CTGAN"``, ``"TVAE"``, ...), each class imported on first access."""

    def __getitem__(self, name: str) -> type:
        declared = _declared()
        if name not in declared:
            raise KeyError(name)
        return _resolve(name, declared[name])

    def __iter__(self) -> Iterator[str]:
        return iter(_declared())

    def __len__(self) -> int:
        return len(_declared())

    def __repr__(self) -> str:
        return f"MODELS({', '.join(self)})"


#: Registered families by name, in declaration order; a read-only view of :data:`BUILTIN`, the entry
#: points and :func:`register`.
MODELS: Mapping[str, type] = _Families()


def register(name: str, family: str | type) -> None:
    """Add the family ``family`` (a class, or ``"module:Class"`` imported when first asked for) under
    ``name`` for this process; a package declares it once as an entry point instead (module docstring)."""
    _check_new(name, _declared(), f"register({name!r}, ...)")
    if not isinstance(family, (str, type)) or (isinstance(family, str) and ":" not in family):
        raise ConfigError(f"register({name!r}, ...) takes a class or a 'module:Class' string, got {family!r}")
    _added[name] = family


def unregister(name: str) -> None:
    """Remove a family added by :func:`register` (built-ins and entry points stay)."""
    if name not in _added:
        raise ConfigError(f"{name!r} was not added by register(); the families added so far: "
                          f"{', '.join(_added) or 'none'}")
    del _added[name]


def family_name(cls: type) -> str:
    """The name ``cls`` is registered under (what model files store)."""
    for name, registered in MODELS.items():
        if registered is cls:
            return name
    raise ConfigError(f"{cls.__name__} is not a registered model family: declare it in one line, an entry point "
                      f'of the group {ENTRY_POINT_GROUP!r} or register("NAME", {cls.__name__})')


def model_names() -> list[str]:
    """The lowercase names the CLI and ``release(model=...)`` accept (no family is imported)."""
    return [name.lower() for name in _declared()]


def model_class(name: str) -> type:
    """The family called ``name`` (any case); a :class:`ConfigError` listing the choices otherwise."""
    if isinstance(name, str):
        for key in _declared():
            if key.lower() == name.lower():
                return MODELS[key]
    raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(model_names())}")


def describe() -> list[tuple[str, str, str]]:
    """``(name, "module:Class", first sentence of its docstring)`` of every family, for ``tabsynth families``."""
    rows = []
    for name, cls in MODELS.items():
        first = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        summary = first.replace("; ", ". ").split(". ")[0].rstrip(".")
        rows.append((name.lower(), f"{cls.__module__}:{cls.__qualname__}", summary))
    return rows
