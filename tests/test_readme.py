"""Every code block of README.md runs as written, on less data and fewer epochs.

- ```python blocks run one after another in one namespace (as in a notebook), in a temporary folder;
- ```bash blocks run one after another with ``bash -e`` in another temporary folder, where
  ``python`` and ``tabsynth`` are this checkout's (a block that starts processes with ``--nproc``
  runs in the slow suite only);
- ```json blocks must parse as tabsynth metadata.

To keep the default suite fast the text of each block is changed before it runs, in these ways only
(``SHRINK``): 300 epochs become 1; each bundled table is cut to its first 600 rows; the sampled row
counts become a few hundred; a DP fit or release on the command line gets ``--epochs 1``, and so does a
fit of a person table with its events (in Python and on the command line), and a DP one in Python a small
network. ``pip install`` lines are not run (tests have no network and must not
change the environment); the test checks instead that the package they install is this checkout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ROWS = 600
SHRINK = [
    (r"epochs=300\b", "epochs=1"),
    (r"--epochs 300\b", "--epochs 1"),
    (r"(datasets\.load\((['\"])[a-z_]+\2\))", rf"\1.head({ROWS})"),
    (r"\b1_000_000\b", "500"),
    (r"\b10_000\b", "300"),
    (r"\b5_000\b", "100"),
    (r"-n 10000\b", "-n 300"),
    (r"(tabsynth (?:fit|release) [^\n]*--epsilon 1\b)(?![^\n]*--epochs)", r"\1 --epochs 1"),
    (r"TabularAR\(seed=0\)\.fit\(events\b", "TabularAR(seed=0, epochs=1).fit(events"),
    (r"TabularAR\(epsilon=1\.0\)\.fit\(events\b", "TabularAR(epsilon=1.0, embedding_dim=16, hidden=(16,)).fit(events"),
    (r"(tabsynth fit [^\n]*--key \w+)(?![^\n]*--epochs)", r"\1 --epochs 1"),
]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(README.read_text()) if kind == lang]


def shrink(code: str) -> str:
    for pattern, repl in SHRINK:
        code = re.sub(pattern, repl, code)
    assert "epochs=300" not in code and "--epochs 300" not in code
    return code


def _commands(code: str) -> list[str]:
    """A bash block's commands (a line continued with a backslash is one command)."""
    return [line.strip() for line in code.replace("\\\n", " ").splitlines()]


def _runnable_bash(code: str) -> str:
    """The block without its ``pip install`` lines."""
    return "\n".join(c for c in _commands(code) if not c.startswith("pip install"))


@pytest.fixture(scope="module")
def shims(tmp_path_factory) -> dict[str, str]:
    """An environment whose ``python`` and ``tabsynth`` run this checkout."""
    bin_dir = tmp_path_factory.mktemp("bin")
    for name, args in (("python", ""), ("tabsynth", " -m tabsynth")):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}"{args} "$@"\n')
        shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT))
    return env


def test_readme_has_the_blocks_a_user_needs():
    assert len(blocks("python")) >= 3 and len(blocks("bash")) >= 4 and blocks("json")
    text = README.read_text()
    assert "pip install" in text and "../shared" not in text


def test_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for code in blocks("python"):
            exec(compile(shrink(code), "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    assert (tmp_path / "report.html").exists() and (tmp_path / "model.tsyn").exists()
    assert (tmp_path / "release" / "public" / "manifest.json").exists()
    assert (tmp_path / "meta_public.json").exists()


def _run_bash(code: str, cwd: Path, env: dict) -> None:
    proc = subprocess.run(["bash", "-e", "-c", _runnable_bash(shrink(code))], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"README block failed:\n{code}\n--- stderr:\n{proc.stderr[-3000:]}"


@pytest.mark.slow  # its DP fits run in subprocesses at the library's full step rule
def test_bash_blocks_run(tmp_path, shims):
    for code in blocks("bash"):
        if "--nproc" not in code:
            _run_bash(code, tmp_path, shims)
    for path in ("meta.json", "model.tsyn", "synthetic.csv", "report.html", "private.tsyn",
                 "release_dir/public/manifest.json", "release_dir2/public/manifest.json"):
        assert (tmp_path / path).exists(), path


@pytest.mark.slow
def test_bash_blocks_with_several_processes_run(tmp_path, shims):
    parallel = [code for code in blocks("bash") if "--nproc" in code]
    assert parallel
    for code in parallel:
        _run_bash(code, tmp_path, shims)


def test_json_blocks_are_metadata_with_public_domains():
    from tabsynth.metadata import Metadata

    for text in blocks("json"):
        meta = Metadata.from_dict(json.loads(text))
        assert all(spec.is_public for spec in meta.columns.values())


def test_install_lines_install_this_checkout():
    lines = [line for code in blocks("bash") for line in _commands(code) if line.startswith("pip install")]
    assert any(re.match(r"pip install (-e )?\.(\s|$)", line) for line in lines)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "tabsynth" and project["scripts"]["tabsynth"] == "tabsynth.cli:main"


def test_links_stay_inside_the_repository():
    for target in re.findall(r"\]\(([^)#]+)\)", README.read_text()):
        if target.startswith("http"):
            continue
        path = (ROOT / target).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), target
