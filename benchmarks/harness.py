#!/usr/bin/env python
"""The benchmark harness: a config (tables, methods, seeds, modes) -> one fit per task, scored alike.

A config is ``configs/NAME.toml``. Each task (table, method, mode, seed) runs ``worker.py`` in a
child process under the method's interpreter, with one torch / BLAS thread and a time limit; the
parent scores the synthetic tables with the config's table kind (``scoring.KINDS``). Each finished
task writes a JSON part ``results/NAME_parts/KEY.json`` (status ``ok``, ``failed`` or ``timeout``);
a task whose record exists, in the parts or in ``results/NAME.json``, is skipped (``--force`` redoes
it), so an interrupted run resumes. Every run ends by merging: ``results/NAME.json`` (every
record, the committed numbers) and ``results/NAME.md`` (the page, ``report.py``).

    .venv/bin/python benchmarks/harness.py suite --tables german_credit --methods ts-tvae engine
    .venv/bin/python benchmarks/harness.py suite --seeds 0 1 --time-limit 7200
    .venv/bin/python benchmarks/harness.py suite --merge
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pair  # noqa: F401 - registers the "pair" kind (a person table and its events) in scoring.KINDS
import pandas as pd
import report
import scoring
from common import ROOT, environment
from worker import METHODS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own TOML reader
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # score with this checkout's tabsynth, as the children fit with it
    sys.path.insert(0, str(ROOT))
CONFIGS = HERE / "configs"
WORKER = HERE / "worker.py"


@dataclass(frozen=True)
class Config:
    """One benchmark: what it runs (tables x methods x modes x seeds) and how its page reads."""

    name: str
    title: str
    about: str
    tables: list[str]
    methods: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    #: mode name -> worker options (epsilon, delta, epochs, params, engine_value_share)
    modes: dict[str, dict[str, Any]] = field(default_factory=lambda: {"default": {}})
    kind: str = "single"
    time_limit_s: float = 3600.0
    #: report.SCORES keys to show (all when empty)
    scores: list[str] = field(default_factory=list)
    #: {"plain": method, "dp": method}: the baseline each of our methods is compared with
    against: dict[str, str] = field(default_factory=dict)
    against_label: str = ""
    #: the two scores ``against`` counts tables won on (default: quality and TSTR)
    against_scores: list[str] = field(default_factory=lambda: ["quality", "tstr_auc"])
    #: report.SCORES keys shown in one table, ours and the ``against`` baseline side by side per table
    side_by_side: list[str] = field(default_factory=list)
    #: what the numbers show, written after a run: the page's closing section (markdown)
    notes: str = ""


def load_config(ref: str) -> Config:
    """A config by name (``configs/NAME.toml``) or path; every method and the kind must be known."""
    path = Path(ref) if ref.endswith(".toml") else CONFIGS / f"{ref}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.toml")))
        raise SystemExit(f"no benchmark config {path}: name one of {known} or give a .toml path")
    cfg = Config(name=path.stem, **tomllib.loads(path.read_text()))
    unknown = [m for m in [*cfg.methods, *cfg.against.values()] if m not in METHODS]
    if unknown or cfg.kind not in scoring.KINDS:
        raise SystemExit(f"{path}: unknown methods {unknown} or kind {cfg.kind!r}; methods are defined in "
                         f"benchmarks/worker.py ({', '.join(METHODS)}), kinds in scoring.KINDS")
    wrong = [m for m in cfg.methods if METHODS[m].kind != cfg.kind]
    if wrong:
        raise SystemExit(f"{path}: methods {wrong} fit another kind of table than {cfg.kind!r}")
    return cfg


@dataclass(frozen=True)
class Task:
    table: str
    method: str
    mode: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.table}__{self.method}__{self.mode}__s{self.seed}"


def tasks(cfg: Config) -> list[Task]:
    """Every task of a config, seed by seed so that a partial run covers every table first."""
    return [Task(t, m, mode, s) for s in cfg.seeds for t in cfg.tables for m in cfg.methods for mode in cfg.modes]


def python_for(method: str) -> str:
    venv = METHODS[method].venv
    if venv is None:
        return sys.executable
    exe = ROOT / venv / "bin" / "python"
    if not exe.exists():
        raise SystemExit(f"{exe} not found: create the peers' venvs with `make bench-setup`")
    return str(exe)


def child(cmd: list[str], time_limit: float) -> subprocess.CompletedProcess[str] | None:
    """Run ``cmd`` in a session of its own; None when it ran past ``time_limit`` (its whole group killed)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=time_limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_task(task: Task, cfg: Config, worker: Path = WORKER, keep: Path | None = None) -> dict[str, Any]:
    """Fit, sample and score one task; its record, whatever happened. With ``keep``, the synthetic
    tables are copied there (Parquet) so that ``rescore`` can score them again."""
    kind = scoring.KINDS[cfg.kind]
    train, holdout = kind.load(task.table)
    options = cfg.modes[task.mode]
    task_options = getattr(kind, "task_options", lambda spec: {})(task.table)  # e.g. a pair's key
    rec: dict[str, Any] = {"table": task.table, "method": task.method, "mode": task.mode, "seed": task.seed,
                           "options": options, "time_limit_s": cfg.time_limit_s,
                           "rows_train": sum(map(len, train.values())),
                           "rows_holdout": sum(map(len, holdout.values())),
                           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        data, out, stats = Path(tmp) / "data", Path(tmp) / "synth", Path(tmp) / "stats.json"
        data.mkdir()
        for name, frame in train.items():
            frame.to_csv(data / f"{name}.csv", index=False)
        cmd = [python_for(task.method), str(worker), "--method", task.method, "--seed", str(task.seed),
               "--data", str(data), "--out", str(out), "--stats", str(stats), "--options", json.dumps({**options, **task_options})]
        proc = child(cmd, cfg.time_limit_s)
        if proc is None:
            return {**rec, "status": "timeout"}
        if proc.returncode != 0:
            return {**rec, "status": "failed", "returncode": proc.returncode, "error": proc.stderr[-3000:]}
        rec.update(json.loads(stats.read_text()))
        synth = {p.stem: pd.read_csv(p, low_memory=False) for p in out.glob("*.csv")}
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for name, frame in synth.items():
                frame.to_parquet(keep / f"{name}.parquet")
    try:
        rec.update(kind.score(task.table, train, holdout, synth, task.seed))
    except Exception as exc:  # noqa: BLE001 - a part records why scoring failed, the run goes on
        return {**rec, "status": "failed", "error": f"scoring: {type(exc).__name__}: {exc}"}
    return {**rec, "status": "ok"}


def rescore(cfg: Config, store: Store, todo: Iterable[Task]) -> int:
    """Score again the kept synthetic tables of finished tasks (a judge added or fixed after the
    fit); the number rescored."""
    kind, recs, done = scoring.KINDS[cfg.kind], store.records(), 0
    for task in todo:
        rec, kept = recs.get(task.key), store.parts / task.key
        if rec is None or rec.get("status") not in ("ok", "failed") or not kept.is_dir() or "fit_cpu_s" not in rec:
            continue
        train, holdout = kind.load(task.table)
        synth = {p.stem: pd.read_parquet(p) for p in kept.glob("*.parquet")}
        print(f"[{time.strftime('%H:%M:%S')}] rescore {task.key}", flush=True)
        try:
            new = {**rec, **kind.score(task.table, train, holdout, synth, task.seed), "status": "ok"}
            new.pop("error", None)
        except Exception as exc:  # noqa: BLE001 - the part records why scoring failed
            new = {**rec, "status": "failed", "error": f"scoring: {type(exc).__name__}: {exc}"}
        store.write_part(new)
        done += 1
    return done


def _clean(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in rec.items()}


def key_of(rec: dict[str, Any]) -> str:
    return Task(rec["table"], rec["method"], rec.get("mode", "default"), rec["seed"]).key


class Store:
    """A benchmark's records: the committed ``NAME.json`` with the run's parts laid over it."""

    def __init__(self, cfg: Config, results: Path) -> None:
        self.json, self.md = results / f"{cfg.name}.json", results / f"{cfg.name}.md"
        self.parts = results / f"{cfg.name}_parts"

    def records(self) -> dict[str, dict[str, Any]]:
        recs = json.loads(self.json.read_text())["records"] if self.json.exists() else []
        recs += [json.loads(p.read_text()) for p in sorted(self.parts.glob("*.json"))]
        return {key_of(r): r for r in recs}

    def write_part(self, rec: dict[str, Any]) -> Path:
        self.parts.mkdir(parents=True, exist_ok=True)
        path = self.parts / f"{key_of(rec)}.json"
        path.write_text(json.dumps(_clean(rec), indent=1, sort_keys=True) + "\n")
        return path

    def merge(self, cfg: Config) -> str:
        """Write ``NAME.json`` (one record a line) and ``NAME.md``; return the page. Without a record
        nothing is written (a page from before the harness stays until a run replaces it)."""
        recs = sorted(self.records().values(), key=lambda r: (r["seed"], r["table"], r["method"], r.get("mode", "")))
        if not recs:
            return report.render(cfg, recs)
        lines = ",\n".join(json.dumps(_clean(r), sort_keys=True) for r in recs)
        self.json.parent.mkdir(parents=True, exist_ok=True)
        self.json.write_text(f'{{"benchmark": {json.dumps(cfg.name)}, "records": [\n{lines}\n]}}\n')
        page = report.render(cfg, recs)
        self.md.write_text(page)
        return page


def run(cfg: Config, todo: Iterable[Task], store: Store, force: bool = False, worker: Path = WORKER) -> int:
    """Run every task without a record (all with ``force``); the number run."""
    env, ran = None, 0
    for task in todo:
        if task.key in store.records() and not force:  # read anew: another run may have done it
            continue
        env = env or environment()
        print(f"[{time.strftime('%H:%M:%S')}] {task.key}", flush=True)
        keep = store.parts / task.key if cfg.kind != "single" else None
        rec = {**run_task(task, cfg, worker, keep), "environment": env}
        print(f"  -> {store.write_part(rec).name}: {rec['status']}", flush=True)
        ran += 1
    return ran


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("config", help="a name in benchmarks/configs/ or a .toml path")
    p.add_argument("--tables", nargs="+", help="a subset of the config's tables")
    p.add_argument("--methods", nargs="+", help="a subset of the config's methods")
    p.add_argument("--modes", nargs="+", help="a subset of the config's modes")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds instead of the config's")
    p.add_argument("--time-limit", type=float, help="seconds per fit instead of the config's")
    p.add_argument("--epochs", type=int, help="override every method's epochs (smoke runs only)")
    p.add_argument("--results", type=Path, default=HERE / "results", help="folder of the result files")
    p.add_argument("--force", action="store_true", help="redo tasks that have a record")
    p.add_argument("--merge", action="store_true", help="only merge the records into NAME.json and NAME.md")
    p.add_argument("--rescore", action="store_true",
                   help="score again the synthetic tables kept in the parts (a pair kind keeps them), no fits")
    a = p.parse_args(argv)
    if a.epochs and a.results == p.get_default("results"):
        raise SystemExit("--epochs is for smoke runs: give --results DIR so that they stay out of benchmarks/results")
    cfg = load_config(a.config)
    pick = {k: v for k, v in [("tables", a.tables), ("methods", a.methods), ("seeds", a.seeds)] if v}
    modes = {m: {**o, **({"epochs": a.epochs} if a.epochs else {})} for m, o in cfg.modes.items()
             if not a.modes or m in a.modes}
    run_cfg = replace(cfg, **pick, modes=modes, time_limit_s=a.time_limit or cfg.time_limit_s)
    store = Store(cfg, a.results)
    if a.rescore:
        rescore(run_cfg, store, tasks(run_cfg))
    elif not a.merge:
        run(run_cfg, tasks(run_cfg), store, a.force)
    print(store.merge(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
