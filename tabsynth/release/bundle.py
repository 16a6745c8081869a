"""Release bundles: writing them atomically and verifying them against their manifests.

Layout of a bundle folder::

    public/data.parquet        the synthetic rows
    public/data.csv.gz         the same rows as gzip CSV (byte-reproducible: gzip mtime 0)
                               (a person table and its events: data_subjects.* and data_events.*,
                               and metadata.json declaring the key, the sequence column and
                               which columns belong to the person)
    public/model_card.md       what was released, the DP statement, model, intended use, limits
    public/manifest.json       release facts and the SHA-256 of every public file (paths relative
                               to public/, so a shipped copy of public/ verifies on its own)
    internal/report.html       fidelity / utility / privacy-risk report: reads the real data
    internal/report.json       outside the privacy budget, for the data custodian only
    internal/manifest.json     the SHA-256 of every other file of the bundle, root-relative paths,
                               and the plain source fingerprint

Public files hold only the DP statement, the synthetic data and facts derived from them
(docs/privacy.md rule 17). That is why the hashes of internal files (functions of the real rows) and
the plain SHA-256 of the source table live in ``internal/manifest.json``; ``public/manifest.json``
carries the source fingerprint keyed with the ledger's secret.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import pandas as pd

from tabsynth.datasets import Sequences
from tabsynth.errors import ConfigError, TabsynthError
from tabsynth.privacy import PrivacySpent
from tabsynth.release.card import _changes_section, model_card  # noqa: F401 - test_changes.py reads it here

__all__ = ["BundleVerificationError", "dependency_versions", "fingerprint_table", "sha256_file", "verify",
           "write_bundle"]

FORMAT = "tabsynth-release"
MANIFEST_VERSION = 1
PUBLIC, INTERNAL, MANIFEST = "public", "internal", "manifest.json"
_FINGERPRINT_FORMAT = "tabsynth-table-fingerprint/1"
_CHUNK_ROWS = 50_000


class BundleVerificationError(TabsynthError):
    """A release bundle does not match its manifest (missing, extra or altered files)."""


# --- hashing ----------------------------------------------------------------------------------
def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint_table(df: pd.DataFrame) -> str:
    """SHA-256 of a canonical serialisation of ``df``: column names and dtypes, then the rows as CSV.

    Same values, names, order and dtypes give the same fingerprint; the index is ignored. Rows
    are hashed in chunks, so memory stays bounded for large tables. This is a private value (a
    function of every row): keep it internal, publish only a keyed form.
    """
    if not isinstance(df, pd.DataFrame):
        raise ConfigError(f"fingerprint_table needs a pandas DataFrame, got {type(df).__name__}")
    h = hashlib.sha256()
    header = {"format": _FINGERPRINT_FORMAT, "rows": len(df),
              "columns": [[str(c), str(t)] for c, t in df.dtypes.items()]}
    h.update(json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n")
    for start in range(0, len(df), _CHUNK_ROWS):
        chunk = df.iloc[start:start + _CHUNK_ROWS]
        h.update(chunk.to_csv(index=False, header=False, lineterminator="\n", na_rep="\\N").encode("utf-8"))
    return h.hexdigest()


def dependency_versions() -> dict[str, str | None]:
    """Versions of Python, tabsynth and the libraries that shape a release."""
    from tabsynth.version import __version__

    out: dict[str, str | None] = {"python": platform.python_version(), "tabsynth": __version__}
    for dist in ("torch", "opacus", "numpy", "pandas", "scikit-learn", "pyarrow", "sdmetrics"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = None
    out["platform"] = f"{platform.system()} {platform.machine()}"
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_safe(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def check_target_folder(out: str | os.PathLike) -> Path:
    """``out`` as a Path, or :class:`ConfigError` if it exists and is not an empty folder."""
    p = Path(out)
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise ConfigError(f"{p}: already exists and is not an empty folder; a release is never written over "
                          "another; choose a new folder")
    return p


# --- writing ----------------------------------------------------------------------------------
def write_bundle(out: str | os.PathLike, model: Any, synthetic: pd.DataFrame, statement: PrivacySpent | None = None,
                 *, release_id: str, dataset_id: str, model_name: str | None = None,
                 settings: dict[str, Any] | None = None, source_fingerprint: str | None = None,
                 source_sha256: str | None = None, budget: dict[str, Any] | None = None,
                 ledger: dict[str, Any] | None = None, report: Any = None, report_error: str | None = None,
                 created_at: str | None = None, sequence_metadata: Any = None) -> Path:
    """Write a release bundle to the folder ``out`` and return its path.

    ``model``: the fitted model (its class and ``get_params()`` describe the settings unless
    ``settings`` is given); ``synthetic``: the rows to release; ``statement``: the DP statement
    (``model.privacy_spent()`` when None). ``source_fingerprint``: the keyed fingerprint that may
    be published; ``source_sha256``: the plain one (internal manifest only). ``budget``: dict with
    ``composition``, ``total``, ``this_release`` and ``remaining`` (each epsilon/delta);
    ``ledger``: reservation id and event hash. ``report``: a :class:`tabsynth.Report` written to
    internal/ (``report_error`` records why it is missing instead). A person table and its event
    table (``synthetic`` a :class:`~tabsynth.datasets.Sequences`) are written as
    ``data_subjects.*`` and ``data_events.*`` with ``sequence_metadata`` (a public
    :class:`~tabsynth.metadata.SequenceMetadata`) as ``metadata.json``.

    Everything goes to a hidden sibling folder first and is renamed into place at the end, so a
    crash never leaves a complete-looking half bundle. ``out`` must not exist or be empty.
    """
    out = check_target_folder(out)
    if isinstance(synthetic, Sequences) != (sequence_metadata is not None) or not isinstance(
            synthetic, (pd.DataFrame, Sequences)):
        raise ConfigError("synthetic must be a pandas DataFrame, or a Sequences pair with its sequence_metadata; got "
                          f"{type(synthetic).__name__} with sequence_metadata={type(sequence_metadata).__name__}")
    if statement is None:
        statement = model.privacy_spent() if hasattr(model, "privacy_spent") else PrivacySpent.none()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{release_id}"
    tmp.mkdir()
    try:
        _write_into(tmp, model, synthetic, statement, release_id=release_id, dataset_id=dataset_id,
                    model_name=model_name, settings=settings, source_fingerprint=source_fingerprint,
                    source_sha256=source_sha256, budget=budget, ledger=ledger, report=report,
                    report_error=report_error, created_at=created_at or _now(), sequence_metadata=sequence_metadata)
        _fsync_dir(tmp)
        if out.exists():
            out.rmdir()  # empty (checked above); a folder created meanwhile and filled makes this fail
        os.rename(tmp, out)
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_table(pub: Path, stem: str, table: pd.DataFrame) -> dict[str, Any]:
    """``<stem>.parquet`` and ``<stem>.csv.gz`` (byte-reproducible) in ``pub``; their manifest entry."""
    table = table.reset_index(drop=True)
    table.to_parquet(pub / f"{stem}.parquet", index=False)
    table.to_csv(pub / f"{stem}.csv.gz", index=False, lineterminator="\n", compression={"method": "gzip", "mtime": 0})
    for name in (f"{stem}.parquet", f"{stem}.csv.gz"):
        _fsync_file(pub / name)
    return {"rows": len(table), "columns": [[str(c), str(t)] for c, t in table.dtypes.items()]}


def _write_data(pub: Path, synthetic: pd.DataFrame | Sequences, sequence_metadata: Any) -> dict[str, Any]:
    """The synthetic data files and the manifest's ``synthetic`` section: one table, or a person
    table, its event table and the metadata JSON that links them."""
    if not isinstance(synthetic, Sequences):
        return _write_table(pub, "data", synthetic)
    tables = {name: {"files": [f"data_{name}.parquet", f"data_{name}.csv.gz"],
                     **_write_table(pub, f"data_{name}", table)}
              for name, table in (("subjects", synthetic.subjects), ("events", synthetic.events))}
    _write_text(pub / "metadata.json", sequence_metadata.to_json() + "\n")
    return {"unit": "person", "key": synthetic.key, "order_by": synthetic.order_by, "metadata": "metadata.json",
            **tables}


def _write_into(root: Path, model: Any, synthetic: pd.DataFrame | Sequences, statement: PrivacySpent, *,
                release_id: str, dataset_id: str, model_name: str | None, settings: dict[str, Any] | None,
                source_fingerprint: str | None, source_sha256: str | None, budget: dict[str, Any] | None,
                ledger: dict[str, Any] | None, report: Any, report_error: str | None, created_at: str,
                sequence_metadata: Any = None) -> None:
    pub, internal = root / PUBLIC, root / INTERNAL
    pub.mkdir()
    data_section = _write_data(pub, synthetic, sequence_metadata)
    internal_files: list[str] = []
    if report is not None or report_error is not None:
        internal.mkdir()
        if report is not None:
            report.to_html(internal / "report.html")
            report.to_json(internal / "report.json")
            internal_files += ["report.html", "report.json"]
        if report_error is not None:
            _write_text(internal / "report_error.txt", report_error.rstrip() + "\n")
            internal_files.append("report_error.txt")
    if settings is None:
        settings = model.get_params(deep=False) if hasattr(model, "get_params") else {}
        settings = {k: v for k, v in settings.items() if k not in ("verbose", "seed")}
    manifest: dict[str, Any] = {
        "format": FORMAT, "manifest_version": MANIFEST_VERSION,
        "release_id": release_id, "dataset_id": dataset_id, "created_at": created_at,
        "source_fingerprint": source_fingerprint,
        "source_fingerprint_note": ("HMAC-SHA256 of the source table's SHA-256 under the ledger's secret key: the "
                                    "custodian can match it to the table; it tells nobody else anything"
                                    if source_fingerprint and source_fingerprint.startswith("hmac") else None),
        "privacy": {**statement.to_dict(), "statement": str(statement)},
        "budget": budget, "ledger": ledger,
        "model": {"name": model_name or type(model).__name__.lower(),
                  "class": f"{type(model).__module__}.{type(model).__qualname__}",
                  "settings": _json_safe(settings)},
        "synthetic": data_section,
        "versions": dependency_versions(),
        "internal_files": [f"{INTERNAL}/{f}" for f in internal_files] or None,
    }
    _write_text(pub / "model_card.md", model_card(manifest, synthetic))
    manifest["files"] = _listing(pub)
    _write_text(pub / MANIFEST, json.dumps(manifest, indent=2, allow_nan=False) + "\n")
    if internal.exists():
        for f in internal_files:
            _fsync_file(internal / f)
        imanifest = {"format": FORMAT + "-internal", "manifest_version": MANIFEST_VERSION,
                     "release_id": release_id, "dataset_id": dataset_id, "created_at": created_at,
                     "note": "for the data custodian only: these files and hashes are computed from real rows",
                     "source_sha256": source_sha256,
                     "files": _listing(root)}
        _write_text(internal / MANIFEST, json.dumps(imanifest, indent=2, allow_nan=False) + "\n")


def _walk(base: Path) -> list[str]:
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file() or p.is_symlink())


def _listing(base: Path) -> dict[str, dict[str, Any]]:
    return {rel: {"sha256": sha256_file(base / rel), "bytes": (base / rel).stat().st_size} for rel in _walk(base)}


# --- verifying --------------------------------------------------------------------------------
def _load_manifest(path: Path, shown: str, problems: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        problems.append(f"{shown}: missing")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"{shown}: unreadable ({type(exc).__name__}: {exc})")
        return None
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith(FORMAT) \
            or not isinstance(data.get("files"), dict):
        problems.append(f"{shown}: not a tabsynth release manifest")
        return None
    return data


def _check_files(base: Path, listing: dict[str, Any], prefix: str, skip: set[str]) -> list[str]:
    """Compare the files under ``base`` with ``listing`` (paths relative to base, shown with prefix)."""
    problems = []
    for rel, entry in listing.items():
        shown = prefix + str(rel)
        parts = Path(str(rel)).parts
        if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in parts or "\\" in rel:
            problems.append(f"{shown}: the manifest names an unsafe path")
            continue
        p = base / rel
        if p.is_symlink():
            problems.append(f"{shown}: is a symbolic link, not a file")
        elif not p.is_file():
            problems.append(f"{shown}: missing")
        elif not isinstance(entry, dict) or sha256_file(p) != entry.get("sha256"):
            problems.append(f"{shown}: altered (its SHA-256 differs from the manifest)")
        elif entry.get("bytes") is not None and p.stat().st_size != entry["bytes"]:
            problems.append(f"{shown}: altered (its size differs from the manifest)")
    for rel in _walk(base):
        if rel not in listing and rel not in skip:
            problems.append(f"{prefix}{rel}: extra file not in the manifest")
    return problems


def verify(release_dir: str | os.PathLike) -> list[str]:
    """Check a release folder against its manifests; returns the problems (empty list: intact).

    Works on a custodian's full bundle (``public/`` and ``internal/``) and on a shipped copy of
    ``public/`` alone (a folder holding ``manifest.json``). Reports missing, extra and altered files.
    """
    root = Path(release_dir)
    if not root.is_dir():
        return [f"{root}: not a folder"]
    problems: list[str] = []
    if not (root / PUBLIC).is_dir() and (root / MANIFEST).is_file():  # a shipped copy of public/
        manifest = _load_manifest(root / MANIFEST, MANIFEST, problems)
        if manifest is not None:
            problems += _check_files(root, manifest["files"], "", {MANIFEST})
        return problems
    if not (root / PUBLIC).is_dir():
        return [f"{root}: no {PUBLIC}/{MANIFEST} or {MANIFEST}: not a tabsynth release folder"]
    manifest = _load_manifest(root / PUBLIC / MANIFEST, f"{PUBLIC}/{MANIFEST}", problems)
    if manifest is not None:
        problems += _check_files(root / PUBLIC, manifest["files"], f"{PUBLIC}/", {MANIFEST})
    expects_internal = bool(manifest and manifest.get("internal_files"))
    if (root / INTERNAL).is_dir():
        imanifest = _load_manifest(root / INTERNAL / MANIFEST, f"{INTERNAL}/{MANIFEST}", problems)
        if imanifest is not None:
            problems += _check_files(root, imanifest["files"], "", {f"{INTERNAL}/{MANIFEST}"})
            if manifest is not None and imanifest.get("release_id") != manifest.get("release_id"):
                problems.append(f"{INTERNAL}/{MANIFEST}: belongs to release {imanifest.get('release_id')!r}, "
                                f"not {manifest.get('release_id')!r}")
    elif expects_internal:
        problems.append(f"{INTERNAL}/: missing (the custodian's copy holds the internal report; to check a "
                        f"shipped copy, verify its {PUBLIC}/ folder alone)")
    else:
        problems += [f"{rel}: extra file not in the manifest" for rel in _walk(root)
                     if not rel.startswith(f"{PUBLIC}/")]
    seen: dict[str, None] = {}
    for p in problems:
        seen.setdefault(p, None)
    return list(seen)
