"""The package's shape, checked from its source: layers, cycles, Opacus confinement, sizes.

Imports must point one way, cli -> release -> report -> models -> privacy -> distributed ->
transform -> metadata -> foundation (docs/architecture.md); every import counts, including those
inside functions.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "tabsynth"

#: Rank of each top-level part of the package; a module may import only lower ranks or its own part.
RANKS = {
    "tabsynth.__main__": 11, "tabsynth": 10, "tabsynth.cli": 10,
    "tabsynth.demo": 9.5,  # the bundled job `tabsynth demo` runs: fit, sample, report
    "tabsynth.release": 9,
    "tabsynth.report": 8,
    "tabsynth.testing": 7.5,  # the family contract as a check: fits models, imported by no layer
    "tabsynth.models": 7,
    "tabsynth.privacy": 6,
    "tabsynth.distributed": 5,
    "tabsynth.transform": 4,
    "tabsynth.public_domains": 3.5,  # command-line declarations of public metadata
    "tabsynth.metadata": 3,
    "tabsynth.threads": 2, "tabsynth.io": 1, "tabsynth.datasets": 1, "tabsynth.argtypes": 1,
    "tabsynth.errors": 0, "tabsynth.version": 0,
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The tabsynth modules ``name`` imports (a ``from package import submodule`` names the submodule)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for t in targets:
            if t.split(".")[0] != "tabsynth":
                continue
            while t not in MODULES and "." in t:
                t = t.rsplit(".", 1)[0]
            if t != name:
                out.add(t)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _part(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else name


def test_every_part_has_a_rank():
    assert {_part(m) for m in MODULES} <= set(RANKS), "give the new part a rank in RANKS and docs/architecture.md"


def test_no_import_points_upward_or_sideways():
    bad = [f"{a} -> {b}" for a, deps in GRAPH.items() for b in deps
           if _part(a) != _part(b) and RANKS[_part(b)] >= RANKS[_part(a)]]
    assert not bad, "imports against the layers: " + "; ".join(sorted(bad))


def test_no_import_cycle():
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def _opacus_imports(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if any(n.split(".")[0] == "opacus" for n in names):
            return True
    return False


def test_only_privacy_imports_opacus():
    outside = [m for m, p in MODULES.items() if _opacus_imports(p) and _part(m) != "tabsynth.privacy"]
    assert not outside, f"Opacus is imported outside tabsynth.privacy: {outside}"


def _opacus_private_names() -> set[str]:
    """Underscore attributes that Opacus' own classes define (not those of torch's bases)."""
    import opacus
    import torch

    base = set(dir(torch.nn.Module)) | set(dir(torch.optim.Optimizer)) | set(dir(torch.utils.data.Sampler))
    names = set()
    for path in Path(opacus.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")} - base


def test_no_private_opacus_attribute_is_touched():
    private = _opacus_private_names()
    assert "_is_last_step_skipped" in private and "_close" in private  # the check sees what it must
    ours = set()
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                ours.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                ours.add(node.attr)
    suspects = private - ours  # a name we define ourselves is ours to use
    hits = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in suspects:
                hits.append(f"{name}:{node.lineno} .{node.attr}")
    assert not hits, f"private Opacus attributes used: {hits}"


def test_no_module_is_too_long():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by concept): {long}"


def test_no_function_is_too_long():
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if (size := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name} ({size})")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them into steps): {long}"


@pytest.mark.parametrize("family", sorted(__import__("tabsynth.models.registry", fromlist=["MODELS"]).MODELS))
def test_every_family_implements_every_declared_hook(family):
    from tabsynth.models.base import BaseSynthesizer
    from tabsynth.models.registry import MODELS

    cls = MODELS[family]
    assert issubclass(cls, BaseSynthesizer)
    assert not inspect.isabstract(cls), f"{family} leaves hooks abstract: {sorted(cls.__abstractmethods__)}"
    assert getattr(BaseSynthesizer, "__abstractmethods__", None), "BaseSynthesizer declares its hooks abstract"
