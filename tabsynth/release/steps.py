"""Steps of ``release()`` shared by its one-table and two-table modes: the settings a bundle
publishes and the custodian's internal report."""

from __future__ import annotations

import shutil
import traceback
import warnings
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from tabsynth.errors import PrivacyError, TabsynthError, TabsynthWarning

__all__ = ["fail_closed", "internal_report", "published_settings", "say"]


def say(verbose: bool, msg: str) -> None:
    if verbose:
        print(f"tabsynth release: {msg}", flush=True)


def published_settings(synth: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The model's settings as JSON values, the values used where a default was left; never the seed."""
    if hasattr(synth, "resolved_params"):
        settings = synth.resolved_params()
    else:
        settings = synth.get_params(deep=False) if hasattr(synth, "get_params") else dict(params)
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


def internal_report(df: Any, synthetic: Any, holdout: Any, target: str | None, metadata: Any, model_name: str,
                    synth: Any, verbose: bool) -> tuple[Any, str | None]:
    """The custodian's internal report of a one-table release (it reads the real rows), or why it failed."""
    from tabsynth.report import evaluate

    try:
        rep = evaluate(df, synthetic, holdout=holdout, target=target, metadata=metadata, model=synth,
                       title=f"Internal report (custodian only): {model_name} release")
        say(verbose, "internal report done")
        return rep, None
    except Exception as exc:  # noqa: BLE001 - the DP spend already happened: keep the synthetic data
        warnings.warn(f"the internal report failed ({type(exc).__name__}: {exc}); the release goes on without it "
                      "(see internal/report_error.txt)", TabsynthWarning, stacklevel=4)
        return None, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def fail_closed(job: Any, reservation: int, staging: Path, exc: BaseException) -> NoReturn:
    """Keep the reservation counted (status ``failed``) after a failed run, clean up, and re-raise ``exc``."""
    try:
        job.ledger.rollback(reservation, touched_data=True, note=f"{type(exc).__name__}: {exc}"[:500])
    except Exception as rb_exc:  # noqa: BLE001 - the reservation stays 'reserved': still counted
        warnings.warn(f"could not close reservation {reservation} ({rb_exc}); it stays counted",
                      TabsynthWarning, stacklevel=3)
    shutil.rmtree(staging, ignore_errors=True)
    if isinstance(exc, TabsynthError) and not isinstance(exc, PrivacyError):
        try:
            wrapped = type(exc)(f"{exc} (the release failed after training started: its reservation of "
                                f"epsilon={job.epsilon:.6g} stays counted in the ledger)")
        except Exception:  # noqa: BLE001 - an exception type with another constructor
            wrapped = None
        if wrapped is not None:
            raise wrapped from exc
    raise exc
