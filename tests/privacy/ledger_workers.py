"""Child-process bodies for the ledger's multi-process tests (spawned, so they live in a module).

A spawned child only needs the ledger, which uses nothing but the standard library. To keep the
tests fast, ``_ledger()`` imports it without running ``tabsynth/__init__.py`` (which loads torch):
it registers a bare ``tabsynth`` package object pointing at the real source folder. The ledger
code that runs is the real one.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sqlite3
import sys
import time
import types

FP = "ab" * 32


def _ledger():
    if "tabsynth" not in sys.modules:
        spec = importlib.util.find_spec("tabsynth")
        pkg = types.ModuleType("tabsynth")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__version__ = importlib.metadata.version("tabsynth")
        sys.modules["tabsynth"] = pkg
    from tabsynth.errors import PrivacyBudgetExceeded
    from tabsynth.privacy.ledger import Ledger

    return Ledger, PrivacyBudgetExceeded


def reserve(path: str, barrier, results) -> None:
    Ledger, PrivacyBudgetExceeded = _ledger()
    led = Ledger(path)
    barrier.wait()
    try:
        rid = led.reserve("ds", 0.4, 1e-6, release_id=f"r{os.getpid()}", mechanism="test", params={},
                          fingerprint=FP)
        results.put(("ok", rid))
    except PrivacyBudgetExceeded as exc:
        results.put(("exceeded", str(exc)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def reserve_then_hang(path: str, ready) -> None:
    Ledger, _ = _ledger()
    Ledger(path).reserve("ds", 0.6, 1e-6, release_id="killed", mechanism="DP-SGD", params={"epochs": 5},
                         fingerprint=FP)
    ready.set()
    time.sleep(120)  # "training": the parent kills us here


def hold_write_lock(path: str, ready) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO meta (key, value) VALUES ('half-written', 'x')")
    ready.set()
    time.sleep(120)
