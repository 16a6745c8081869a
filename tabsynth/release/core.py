"""``release()``: reserve budget in the ledger, fit in DP mode, sample, write the bundle, commit."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from tabsynth.errors import ConfigError, PrivacyConfigError, PrivacyError
from tabsynth.models.registry import model_class
from tabsynth.privacy import PrivacySpent
from tabsynth.privacy.config import check_epsilon, release_delta
from tabsynth.privacy.ledger import Budget, Ledger
from tabsynth.privacy.unit import unit_label
from tabsynth.release.bundle import (
    INTERNAL,
    MANIFEST,
    PUBLIC,
    check_target_folder,
    fingerprint_table,
    verify,
    write_bundle,
)
from tabsynth.release.checks import (
    check_budget,
    check_metadata,
    check_names,
    check_positive_int,
    check_release_delta,
    check_unit,
    open_ledger,
    read_frame,
    read_holdout,
)
from tabsynth.release.sequences import (
    TwoTableRelease,
    fit_two_tables,
    prepare_two_tables,
    sample_two_tables,
    sequence_metadata,
    two_table_report,
)
from tabsynth.release.steps import fail_closed, internal_report, published_settings, say

__all__ = ["Release", "release"]


@dataclass(frozen=True)
class Release:
    """What :func:`release` made: where the bundle is and what it cost."""

    release_id: str
    dataset_id: str
    path: Path
    privacy: PrivacySpent
    remaining: Budget
    reservation_id: int
    manifest: dict[str, Any] = field(repr=False)

    @property
    def public_dir(self) -> Path:
        return self.path / PUBLIC

    @property
    def internal_dir(self) -> Path:
        return self.path / INTERNAL

    @property
    def data_path(self) -> Path:
        return self.public_dir / "data.parquet"

    @property
    def subjects_path(self) -> Path:
        """The person table of a release with a key (``events_path``: its events; ``metadata_path``: their link)."""
        return self.public_dir / "data_subjects.parquet"

    @property
    def events_path(self) -> Path:
        return self.public_dir / "data_events.parquet"

    @property
    def metadata_path(self) -> Path:
        return self.public_dir / "metadata.json"

    @property
    def model_card_path(self) -> Path:
        return self.public_dir / "model_card.md"

    @property
    def manifest_path(self) -> Path:
        return self.public_dir / MANIFEST

    @property
    def files(self) -> list[Path]:
        """Every file of the bundle."""
        return sorted(p for p in self.path.rglob("*") if p.is_file())

    @property
    def statement(self) -> str:
        return f"{self.privacy}; remaining budget of {self.dataset_id!r}: {self.remaining}"

    def verify(self) -> list[str]:
        return verify(self.path)

    def __str__(self) -> str:
        return f"release {self.release_id} -> {self.path}: {self.statement}"


def _new_release_id() -> str:
    return f"rel-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


@dataclass
class _Job:
    """One release once its arguments are checked: the data, the built model, the open ledger, where to write."""

    df: pd.DataFrame
    epsilon: float
    delta: float
    dataset_id: str
    model: str
    cls: type
    synth: Any
    settings: dict[str, Any]
    ledger: Ledger
    out: Path
    release_id: str
    n_rows: int | None
    seed: int | None
    holdout: pd.DataFrame | None
    target: str | None
    metadata: Any
    report: bool
    verbose: bool
    #: The privacy unit: "row", or "person" with ``key`` the person key column.
    unit: str = "row"
    key: str | None = None
    #: With a key: the person table, the link and the public metadata of a two-table release.
    two: TwoTableRelease | None = None


def release(data: pd.DataFrame | str | os.PathLike, epsilon: float, ledger: Ledger | str | os.PathLike,
            out: str | os.PathLike, model: str = "tabularar", *, dataset_id: str, delta: float | None = None,
            n_rows: int | None = None, epochs: int | None = None, seed: int | None = None,
            holdout: pd.DataFrame | str | os.PathLike | None = None, target: str | None = None,
            metadata: Any = None, report: bool = True, verbose: bool = False,
            budget: tuple[float, float] | None = None, subjects: pd.DataFrame | str | os.PathLike | None = None,
            key: str | None = None, order_by: str | None = None,
            order_bounds: tuple[str | None, str | None] | None = None, max_events: int | None = None,
            order_kind: str | None = None, n_subjects: int | None = None,
            non_decreasing: list[str] | None = None, **model_params: Any) -> Release:
    """Make a differentially private synthetic release of ``data`` under the ledger's budget.

    1. checks every argument (nothing is spent on a mistake);
    2. reserves ``(epsilon, delta)`` for ``dataset_id`` in the ledger, one transaction that fails
       with :class:`~tabsynth.errors.PrivacyBudgetExceeded` before any training when it does not fit;
    3. fits ``model`` (a registered family, ``tabsynth families`` lists them; default "tabularar") in DP mode, samples
       ``n_rows`` rows (default: the fit's noisy row count, never the exact one) and writes the bundle folder ``out`` (see
       :mod:`tabsynth.release.bundle`), the internal report from ``holdout``/``target`` included
       unless ``report=False``;
    4. commits the reservation at what the fit actually spent.

    A run that fails after it started training keeps its reservation counted (status ``failed``);
    a run killed outright leaves it ``reserved``, also counted. ``budget=(epsilon, delta)`` sets the
    total budget of a dataset new to the ledger (creating the ledger file if needed); an existing,
    different budget is refused. ``delta`` defaults to the ledger's delta in proportion to
    ``epsilon`` (0.4 of a (1, 1e-5) budget reserves 4e-6), at most 1e-5; the fit then spends at most
    that, ``min(reserved, n_hat ** -1.5)`` with ``n_hat`` the noisy row count, so neither the reserved
    nor the spent delta is a function of the exact row count (docs/privacy.md rule 3). A ``delta``
    given may be at most 1e-5, a fixed cap checked before anything is reserved (the fit refuses one
    at or above ``1/n_hat``).
    ``model_params`` go to the model's constructor (e.g. ``batch_size``, ``max_grad_norm``).

    With ``key``, ``data`` is an event table and the release is per person (a person's row of
    ``subjects`` and all their events): the dataset's budget must be per person with that key, the
    model (TabularAR) fits both tables (``order_by``, ``order_bounds``, ``max_events`` as in its
    ``fit``, and ``non_decreasing``), ``n_subjects`` persons are released (default: the noisy person
    count), the bundle holds both tables and ``metadata.json``. A sequence column read from a CSV is
    text: declare ``order_kind`` ("number"/"datetime"), or give ``metadata`` as
    :class:`~tabsynth.metadata.SequenceMetadata` (kinds, link, public domains). Returns a :class:`Release`.
    """
    two = None
    declared = sequence_metadata(metadata)
    given = (subjects, order_by, order_bounds, max_events, order_kind, n_subjects, non_decreasing)
    if declared is not None or key is not None or any(v is not None for v in given):
        two = {"subjects": subjects, "key": key if key is not None or declared is None else declared.key,
               "order_by": order_by, "order_bounds": order_bounds, "max_events": max_events,
               "order_kind": order_kind, "n_subjects": n_subjects, "non_decreasing": non_decreasing}
    return _run(_prepare(data, epsilon, ledger, out, model, dataset_id=dataset_id, delta=delta, n_rows=n_rows,
                         epochs=epochs, seed=seed, holdout=holdout, target=target, metadata=metadata, report=report,
                         verbose=verbose, budget=budget, model_params=model_params, two_tables=two))


def _run(job: _Job) -> Release:
    """Steps 2 to 4 of :func:`release` for a checked job: reserve, fit and write, commit."""
    staging = _staging_folder(job)
    fingerprint = _fingerprint(job)
    reservation = _reserve(job, staging, fingerprint)
    try:  # from here on the private rows may be read: any failure keeps the spend counted
        spent, remaining = _fit_and_write(job, staging, fingerprint, reservation)
    except BaseException as exc:
        fail_closed(job, reservation, staging, exc)
    _commit(job, staging, reservation, spent)
    say(job.verbose, f"wrote {job.out}; remaining budget of {job.dataset_id!r}: {remaining}")
    manifest = json.loads((job.out / PUBLIC / MANIFEST).read_text(encoding="utf-8"))
    return Release(release_id=job.release_id, dataset_id=job.dataset_id, path=job.out, privacy=spent,
                   remaining=remaining, reservation_id=reservation, manifest=manifest)


def _prepare(data: Any, epsilon: Any, ledger: Any, out: Any, model: Any, *, dataset_id: Any, delta: Any,
             n_rows: Any, epochs: Any, seed: int | None, holdout: Any, target: Any, metadata: Any, report: bool,
             verbose: bool, budget: Any, model_params: dict[str, Any], unit: str = "row",
             key: str | None = None, two_tables: dict[str, Any] | None = None) -> _Job:
    """Step 1: every check that can fail without touching the budget, then the model and the ledger.

    ``unit``/``key``: the release's privacy unit, which must be the dataset's in the ledger;
    ``two_tables``: the person-table arguments of :func:`release` (the unit is then the person)."""
    if two_tables is not None:
        if two_tables["key"] is None:
            raise ConfigError("subjects, order_by, order_bounds, max_events, order_kind and n_subjects describe an "
                              "event table: name its person id column with key=... (CLI: --key)")
        unit, key = "person", two_tables["key"]
    check_names(dataset_id, model)
    epsilon = check_epsilon(epsilon)
    df = read_frame(data, "data", private=True)
    two = None
    if two_tables is not None:
        df, two = prepare_two_tables(model_class(model), df, n_rows=n_rows, metadata=metadata, holdout=holdout,
                                     target=target, **two_tables)
        metadata = None  # a two-table release's metadata is in ``two`` (declared) and its public JSON
    if delta is not None:
        delta = check_release_delta(delta)
    budget = None if budget is None else check_budget(budget)
    n_rows = None if n_rows is None else check_positive_int(n_rows, "n_rows")
    epochs = check_positive_int(epochs, "epochs")
    if holdout is not None:
        holdout = read_holdout(holdout, df)
    if target is not None and target not in df.columns:
        raise ConfigError(f"target {target!r} is not a column; choose one of {', '.join(map(str, df.columns))}")
    if metadata is not None:
        metadata = check_metadata(metadata, df)
    out = check_target_folder(out)
    cls, synth, params = _build_model(model, epsilon, delta, seed, verbose, epochs, model_params)
    ledger = open_ledger(ledger, dataset_id, budget, unit, key)
    check_unit(ledger, dataset_id, unit, key)
    if delta is None:  # reserve the ledger's share; the fit spends at most that (rule 3)
        delta = default_release_delta(ledger.budget(dataset_id), epsilon)
        synth.set_params(dp=dataclasses.replace(synth.dp_config(), max_delta=delta))
    return _Job(df=df, epsilon=epsilon, delta=delta, dataset_id=dataset_id, model=model, cls=cls, synth=synth,
                settings=published_settings(synth, params), ledger=ledger, out=out, release_id=_new_release_id(),
                n_rows=n_rows, seed=seed, holdout=holdout, target=target, metadata=metadata, report=report,
                verbose=verbose, unit=unit, key=key, two=two)


def _build_model(model: str, epsilon: float, delta: float | None, seed: int | None, verbose: bool,
                 epochs: int | None, model_params: dict[str, Any]) -> tuple[type, Any, dict[str, Any]]:
    """The model family's class, an unfitted DP model with checked parameters, and those parameters."""
    cls = model_class(model)
    if "epsilon" not in inspect.signature(cls).parameters:
        raise PrivacyConfigError(f"this tabsynth build has no DP mode for {cls.__name__} (no epsilon parameter); "
                                 "a release needs differentially private training")
    params: dict[str, Any] = {"epsilon": epsilon, "delta": delta, "seed": seed, "verbose": verbose, **model_params}
    if epochs is not None:
        params["epochs"] = epochs
    try:
        synth = cls(**params)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from exc
    if hasattr(synth, "_validate_params"):
        synth._validate_params()
    return cls, synth, params


def _staging_folder(job: _Job) -> Path:
    """The hidden folder the bundle is written in, made first so an unwritable destination spends nothing."""
    job.out.parent.mkdir(parents=True, exist_ok=True)
    staging = job.out.parent / f".{job.out.name}.staging-{job.release_id}"
    try:
        staging.mkdir()
    except OSError as exc:
        raise ConfigError(f"{job.out.parent}: cannot write the release there ({exc})") from exc
    return staging


def _reserve(job: _Job, staging: Path, fingerprint: str) -> int:
    """Step 2: reserve ``(epsilon, delta)`` in the ledger (fail closed); refused, it leaves nothing behind."""
    try:
        reservation = job.ledger.reserve(job.dataset_id, job.epsilon, job.delta, release_id=job.release_id,
                                         mechanism=f"{job.cls.__name__} DP-SGD (tabsynth)",
                                         params={"model": job.model, "n_rows": job.n_rows, **job.settings},
                                         fingerprint=fingerprint, unit=job.unit, key=job.key)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(job.verbose, f"reserved epsilon={job.epsilon:.6g}, delta={job.delta:.3g} for {job.dataset_id!r} "
                      f"(reservation {reservation}, release {job.release_id})")
    return reservation


def _fit_and_write(job: _Job, staging: Path, fingerprint: str, reservation: int) -> tuple[PrivacySpent, Budget]:
    """Step 3: fit, sample, report and move the finished bundle to ``out``; returns the spend and what is left."""
    synth, two = job.synth, job.two
    if two is not None:
        fit_two_tables(two, synth, job.df)
    else:
        synth.fit(job.df, metadata=job.metadata)
    spent = _checked_spend(job)
    say(job.verbose, "fitted; sampling and writing the bundle")
    if two is not None:
        synthetic = sample_two_tables(two, synth, job.seed)
    else:
        synthetic = synth.sample(synth.n_rows_ if job.n_rows is None else job.n_rows, seed=job.seed)
    rep, rep_error = None, None
    if job.report and two is not None:
        rep, rep_error = two_table_report(two, job.df, synthetic, synth, job.model)
    elif job.report:
        rep, rep_error = internal_report(job.df, synthetic, job.holdout, job.target, job.metadata, job.model, synth,
                                         job.verbose)
    remaining, budget = _budget_facts(job, spent)
    ledger = job.ledger
    path = write_bundle(
        staging / "bundle", synth, synthetic, spent, release_id=job.release_id, dataset_id=job.dataset_id,
        model_name=job.model, settings=published_settings(synth, job.settings),
        source_fingerprint=ledger.keyed_fingerprint(fingerprint), source_sha256=fingerprint, budget=budget,
        ledger={"reservation_id": reservation, "reserved_at_event": ledger.event_hash(reservation)},
        report=rep, report_error=rep_error, sequence_metadata=None if two is None else two.metadata)
    if job.out.exists():
        job.out.rmdir()  # still empty (checked above); filled meanwhile -> OSError, nothing replaced
    os.rename(path, job.out)
    return spent, remaining


def _fingerprint(job: _Job) -> str:
    """The source fingerprint: of the table, or with a key of the event table and the person table together."""
    fingerprint = fingerprint_table(job.df)
    if job.two is not None and job.two.subjects is not None:
        fingerprint = hashlib.sha256(f"{fingerprint}:{fingerprint_table(job.two.subjects)}".encode()).hexdigest()
    return fingerprint


def _checked_spend(job: _Job) -> PrivacySpent:
    """What the fit spent; refused unless it is a DP guarantee within the reservation."""
    spent = job.synth.privacy_spent()
    name = job.cls.__name__
    if not isinstance(spent, PrivacySpent) or not spent.is_dp:
        raise PrivacyError(f"{name} reported no differential-privacy guarantee ({spent}); the release "
                           "is refused and its reservation stays counted")
    if _dec(spent.epsilon) > _dec(job.epsilon) or _dec(spent.delta) > _dec(job.delta):
        raise PrivacyError(f"{name} spent {spent}, more than the reserved epsilon={job.epsilon:.6g}, "
                           f"delta={job.delta:.3g}; the release is refused and its reservation stays counted")
    if spent.unit != job.unit or spent.unit_key not in (None, job.key):
        raise PrivacyError(f"{name}'s guarantee is {unit_label(spent.unit, spent.unit_key)}, but the release was "
                           f"reserved {unit_label(job.unit, job.key)}; the release is refused and its reservation "
                           "stays counted")
    return dataclasses.replace(spent, unit_key=job.key)


def _budget_facts(job: _Job, spent: PrivacySpent) -> tuple[Budget, dict[str, Any]]:
    """The budget left once the reservation is committed at ``spent``, and the manifest's budget section."""
    total = job.ledger.budget(job.dataset_id)
    now_left = job.ledger.remaining(job.dataset_id)  # counts this reservation at its reserved size
    remaining = Budget(float(_dec(now_left.epsilon) + _dec(job.epsilon) - _dec(spent.epsilon)),
                       float(_dec(now_left.delta) + _dec(job.delta) - _dec(spent.delta)))
    budget = {"composition": job.ledger.composition,
              "total": {"epsilon": total.epsilon, "delta": total.delta},
              "this_release": {"epsilon": spent.epsilon, "delta": spent.delta},
              "reserved": {"epsilon": job.epsilon, "delta": job.delta},
              "remaining": {"epsilon": remaining.epsilon, "delta": remaining.delta}}
    return remaining, budget


def _commit(job: _Job, staging: Path, reservation: int, spent: PrivacySpent) -> None:
    """Step 4: commit the reservation at what the fit spent; the bundle is complete on disk already."""
    try:
        shutil.rmtree(staging, ignore_errors=True)
        job.ledger.commit(reservation, epsilon=spent.epsilon, delta=spent.delta,
                          note=f"bundle written to {job.out.name}")
    except BaseException as exc:  # only the ledger's status label is missing
        raise PrivacyError(f"the release was written to {job.out}, but the ledger commit failed ({exc}); "
                           f"reservation {reservation} stays counted as 'reserved'") from exc


def default_release_delta(total: Budget, epsilon: float) -> float:
    """The ledger's delta in proportion to ``epsilon`` (:func:`tabsynth.privacy.config.release_delta`)."""
    return release_delta(total.epsilon, total.delta, epsilon)
