"""``release()``: reserve budget in the ledger, fit in DP mode, sample, write the bundle, commit."""

from __future__ import annotations

import dataclasses
import inspect
import os
import secrets
import shutil
import traceback
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabsynth.errors import (ConfigError, DataError, PrivacyConfigError, PrivacyError, TabsynthError,
                             TabsynthWarning)
from tabsynth.privacy import PrivacySpent
from tabsynth.privacy.config import check_delta, check_epsilon, release_delta, resolve_delta
from tabsynth.privacy.ledger import Budget, Ledger
from tabsynth.privacy.randomness import reproducible_noise_active
from tabsynth.release.bundle import INTERNAL, MANIFEST, PUBLIC, check_target_folder, fingerprint_table, \
    verify, write_bundle

__all__ = ["MODELS", "Release", "release"]

MODELS = ("ctgan", "tvae")


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


def _model_class(name: str) -> type:
    from tabsynth.models import CTGAN, TVAE

    return {"ctgan": CTGAN, "tvae": TVAE}[name]


def _positive_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _read(data: Any, name: str) -> pd.DataFrame:
    from tabsynth.io import read_table
    from tabsynth.metadata import check_frame

    if isinstance(data, (str, os.PathLike)):
        data = read_table(data)
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"{name} must be a pandas DataFrame or a table file, got {type(data).__name__}")
    return check_frame(data)


def _new_release_id() -> str:
    return f"rel-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def _say(verbose: bool, msg: str) -> None:
    if verbose:
        print(f"tabsynth release: {msg}", flush=True)


def release(data: pd.DataFrame | str | os.PathLike, epsilon: float, ledger: Ledger | str | os.PathLike,
            out: str | os.PathLike, model: str = "ctgan", *, dataset_id: str, delta: float | None = None,
            n_rows: int | None = None, epochs: int | None = None, seed: int | None = None,
            holdout: pd.DataFrame | str | os.PathLike | None = None, target: str | None = None,
            metadata: Any = None, report: bool = True, verbose: bool = False,
            budget: tuple[float, float] | None = None, **model_params: Any) -> Release:
    """Make a differentially private synthetic release of ``data`` under the ledger's budget.

    1. checks every argument (nothing is spent on a mistake);
    2. reserves ``(epsilon, delta)`` for ``dataset_id`` in the ledger, one transaction that fails
       with :class:`~tabsynth.errors.PrivacyBudgetExceeded` before any training when it does not fit;
    3. fits ``model`` ("ctgan" or "tvae") in DP mode, samples ``n_rows`` rows (default: the fit's
       noisy row count, never the exact one) and writes the bundle folder ``out`` (see
       :mod:`tabsynth.release.bundle`), the internal report from ``holdout``/``target`` included
       unless ``report=False``;
    4. commits the reservation at what the fit actually spent.

    A run that fails after it started training keeps its reservation counted (status ``failed``);
    a run killed outright leaves it ``reserved``, also counted. ``budget=(epsilon, delta)`` sets the
    total budget of a dataset new to the ledger (creating the ledger file if needed); an existing,
    different budget is refused. ``delta`` defaults to the ledger's delta in proportion to
    ``epsilon`` (0.4 of a (1, 1e-5) budget reserves 4e-6), at most 1e-5; the fit then spends at most
    that, ``min(reserved, n_hat ** -1.5)`` with ``n_hat`` the noisy row count, so neither the reserved
    nor the spent delta is a function of the exact row count (docs/privacy.md rule 3).
    ``model_params`` go to the model's constructor (e.g. ``batch_size``, ``max_grad_norm``).
    Returns a :class:`Release`.
    """
    # --- 1. every check that can fail without touching the budget ------------------------------
    if not isinstance(dataset_id, str) or not dataset_id.strip():
        raise ConfigError(f"dataset_id must be a non-empty string naming the source table, got {dataset_id!r}")
    if model not in MODELS:
        raise ConfigError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    if reproducible_noise_active():
        raise PrivacyConfigError("release() refuses to run inside reproducible_noise(): that test mode derives the "
                                 "DP noise from a seed, so the release would not be private")
    epsilon = check_epsilon(epsilon)
    df = _read(data, "data")
    n = len(df)
    if delta is not None:
        delta = _checked_delta(delta, n)
    budget = None if budget is None else _checked_budget(budget)
    n_rows = None if n_rows is None else _positive_int(n_rows, "n_rows")
    epochs = _positive_int(epochs, "epochs")
    if holdout is not None:
        holdout = _read(holdout, "holdout")
        if list(holdout.columns) != list(df.columns):
            raise DataError("holdout must have the same columns as data, in the same order; "
                            f"differences: {sorted(set(map(str, df.columns)) ^ set(map(str, holdout.columns)))}")
    if target is not None and target not in df.columns:
        raise ConfigError(f"target {target!r} is not a column; choose one of {', '.join(map(str, df.columns))}")
    if metadata is not None:
        from tabsynth.metadata import Metadata

        metadata = metadata if isinstance(metadata, Metadata) else Metadata.from_json(metadata)
        metadata.check_frame(df)
    out = check_target_folder(out)
    cls = _model_class(model)
    if "epsilon" not in inspect.signature(cls.__init__).parameters:
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
    ledger = _open_ledger(ledger, dataset_id, budget)
    if delta is None:  # reserve the ledger's share; the fit spends at most that (rule 3)
        delta = default_release_delta(ledger.budget(dataset_id), epsilon)
        synth.set_params(dp=dataclasses.replace(synth.dp_config(), max_delta=delta))
    settings = _settings(synth, params)
    release_id = _new_release_id()

    # the staging folder first: an unwritable destination fails before anything is spent
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.staging-{release_id}"
    try:
        staging.mkdir()
    except OSError as exc:
        raise ConfigError(f"{out.parent}: cannot write the release there ({exc})") from exc
    fingerprint = fingerprint_table(df)

    # --- 2. reserve (fail closed) ------------------------------------------------------------
    try:
        reservation = ledger.reserve(dataset_id, epsilon, delta, release_id=release_id,
                                     mechanism=f"{cls.__name__} DP-SGD (tabsynth)",
                                     params={"model": model, "n_rows": n_rows, **settings}, fingerprint=fingerprint)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _say(verbose, f"reserved epsilon={epsilon:.6g}, delta={delta:.3g} for {dataset_id!r} "
                  f"(reservation {reservation}, release {release_id})")

    # --- 3. fit, sample, write ---------------------------------------------------------------
    # From the first line below the private rows may be read: any failure keeps the spend counted.
    finished = bundle_written = False
    try:
        synth.fit(df, metadata=metadata)
        spent = synth.privacy_spent()
        if not isinstance(spent, PrivacySpent) or not spent.is_dp:
            raise PrivacyError(f"{cls.__name__} reported no differential-privacy guarantee ({spent}); the release "
                               "is refused and its reservation stays counted")
        if _dec(spent.epsilon) > _dec(epsilon) or _dec(spent.delta) > _dec(delta):
            raise PrivacyError(f"{cls.__name__} spent {spent}, more than the reserved epsilon={epsilon:.6g}, "
                               f"delta={delta:.3g}; the release is refused and its reservation stays counted")
        _say(verbose, "fitted; sampling and writing the bundle")
        synthetic = synth.sample(synth.n_rows_ if n_rows is None else n_rows, seed=seed)
        rep, rep_error = None, None
        if report:
            rep, rep_error = _report(df, synthetic, holdout, target, metadata, model, synth, verbose)
        total = ledger.budget(dataset_id)
        now_left = ledger.remaining(dataset_id)  # counts this reservation at its reserved size
        remaining = Budget(float(_dec(now_left.epsilon) + _dec(epsilon) - _dec(spent.epsilon)),
                           float(_dec(now_left.delta) + _dec(delta) - _dec(spent.delta)))
        budget = {"composition": ledger.composition,
                  "total": {"epsilon": total.epsilon, "delta": total.delta},
                  "this_release": {"epsilon": spent.epsilon, "delta": spent.delta},
                  "reserved": {"epsilon": epsilon, "delta": delta},
                  "remaining": {"epsilon": remaining.epsilon, "delta": remaining.delta}}
        path = write_bundle(
            staging / "bundle", synth, synthetic, spent, release_id=release_id, dataset_id=dataset_id,
            model_name=model, settings=settings, source_fingerprint=ledger.keyed_fingerprint(fingerprint),
            source_sha256=fingerprint, budget=budget,
            ledger={"reservation_id": reservation, "reserved_at_event": ledger.event_hash(reservation)},
            report=rep, report_error=rep_error)
        if out.exists():
            out.rmdir()  # still empty (checked above); filled meanwhile -> OSError, nothing replaced
        os.rename(path, out)
        bundle_written = True
        shutil.rmtree(staging, ignore_errors=True)
        ledger.commit(reservation, epsilon=spent.epsilon, delta=spent.delta,
                      note=f"bundle written to {out.name}")
        finished = True
    except BaseException as exc:
        if finished:
            raise
        if bundle_written:  # complete on disk; only the ledger's status label is missing
            raise PrivacyError(f"the release was written to {out}, but the ledger commit failed ({exc}); "
                               f"reservation {reservation} stays counted as 'reserved'") from exc
        try:
            ledger.rollback(reservation, touched_data=True, note=f"{type(exc).__name__}: {exc}"[:500])
        except Exception as rb_exc:  # noqa: BLE001 - the reservation stays 'reserved': still counted
            warnings.warn(f"could not close reservation {reservation} ({rb_exc}); it stays counted",
                          TabsynthWarning, stacklevel=2)
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, TabsynthError) and not isinstance(exc, PrivacyError):
            try:
                wrapped = type(exc)(f"{exc} (the release failed after training started: its reservation of "
                                    f"epsilon={epsilon:.6g} stays counted in the ledger)")
            except Exception:  # noqa: BLE001 - an exception type with another constructor
                wrapped = None
            if wrapped is not None:
                raise wrapped from exc
        raise
    _say(verbose, f"wrote {out}; remaining budget of {dataset_id!r}: {remaining}")
    manifest = json.loads((out / PUBLIC / MANIFEST).read_text(encoding="utf-8"))
    return Release(release_id=release_id, dataset_id=dataset_id, path=out, privacy=spent, remaining=remaining,
                   reservation_id=reservation, manifest=manifest)


def _checked_delta(delta: Any, n: int) -> float:
    delta = check_delta(delta)
    if delta <= 0:
        raise PrivacyConfigError("delta must be greater than 0 for DP-SGD training; leave it unset for the default "
                                 "(the ledger's delta in proportion to epsilon)")
    return resolve_delta(delta, n)  # refuses delta >= 1/n before anything is reserved


def _checked_budget(budget: Any) -> tuple[float, float]:
    if not isinstance(budget, (tuple, list)) or len(budget) != 2:
        raise ConfigError(f"budget must be a pair (epsilon, delta), e.g. budget=(3.0, 1e-5), got {budget!r}")
    return check_epsilon(budget[0], "budget epsilon"), check_delta(budget[1], "budget delta")


def _open_ledger(ledger: Ledger | str | os.PathLike, dataset_id: str,
                 budget: tuple[float, float] | None) -> Ledger:
    """The ledger, created with ``budget`` for a new dataset; a different existing budget is refused."""
    if not isinstance(ledger, Ledger):
        if budget is None and not Path(ledger).exists():
            raise PrivacyError(f"{ledger}: no ledger file there; check the path, or create the ledger by giving the "
                               "dataset's total budget (budget=(epsilon, delta); CLI: --budget-epsilon E "
                               "--budget-delta D)")
        ledger = Ledger(ledger)
    if budget is not None:
        now = ledger.set_budget(dataset_id, *budget, only_if_new=True)
        if (now.epsilon, now.delta) != budget:
            raise ConfigError(
                f"dataset {dataset_id!r} already has a budget of epsilon={now.epsilon:.6g}, delta={now.delta:.6g} "
                f"in {ledger.path}; drop the budget (CLI: --budget-epsilon/--budget-delta), or change it "
                f"deliberately with: tabsynth ledger {ledger.path} --dataset-id {dataset_id} --set-budget E D")
    return ledger


def default_release_delta(total: Budget, epsilon: float) -> float:
    """The ledger's delta in proportion to ``epsilon`` (:func:`tabsynth.privacy.config.release_delta`)."""
    return release_delta(total.epsilon, total.delta, epsilon)


def _settings(synth: Any, params: dict[str, Any]) -> dict[str, Any]:
    if hasattr(synth, "resolved_params"):
        settings = synth.resolved_params()
    else:
        settings = synth.get_params() if hasattr(synth, "get_params") else dict(params)
    settings = {k: v for k, v in settings.items() if k not in ("verbose", "seed")}  # the seed is never published
    out = {}
    for k, v in settings.items():
        if isinstance(v, (np.integer, np.floating)):
            v = v.item()
        elif isinstance(v, tuple):
            v = list(v)
        elif not isinstance(v, (str, int, float, bool, list, dict, type(None))):
            v = str(v)
        out[k] = v
    return out


def _report(df, synthetic, holdout, target, metadata, model_name, synth, verbose):
    from tabsynth.report import evaluate

    try:
        rep = evaluate(df, synthetic, holdout=holdout, target=target, metadata=metadata, model=synth,
                       title=f"Internal report (custodian only): {model_name} release")
        _say(verbose, "internal report done")
        return rep, None
    except Exception as exc:  # noqa: BLE001 - the DP spend already happened: keep the synthetic data
        warnings.warn(f"the internal report failed ({type(exc).__name__}: {exc}); the release goes on without it "
                      "(see internal/report_error.txt)", TabsynthWarning, stacklevel=3)
        return None, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
