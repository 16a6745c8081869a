"""Privacy-budgeted releases: ``release()`` makes a bundle under a ledger's budget, ``verify()`` checks one.

>>> from tabsynth.release import release, verify
>>> r = release(df, epsilon=1.0, ledger="budget.db", out="release_dir/", dataset_id="adult-2026",
...             budget=(3.0, 1e-5))  # the first release of a dataset sets its total budget
>>> verify("release_dir/")          # [] when every file matches the manifests

The package itself is callable too (``tabsynth.release(df, ...)`` is :func:`release`), so that the
top-level name works whether ``tabsynth`` exports the module or the function.
"""

from __future__ import annotations

import sys
import types

from tabsynth.privacy.ledger import Budget, Ledger, Spend
from tabsynth.release.bundle import BundleVerificationError, fingerprint_table, verify, write_bundle
from tabsynth.release.core import Release, release

__all__ = ["Budget", "BundleVerificationError", "Ledger", "Release", "Spend", "fingerprint_table",
           "release", "verify", "write_bundle"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs) -> Release:
        return release(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
