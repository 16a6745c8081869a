"""The exceptions and warnings tabsynth raises.

Every error a user can cause is a :class:`TabsynthError`, itself a ``ValueError``, so
``except ValueError`` keeps working for callers who do not know tabsynth. Each message says
what was wrong and how to fix it.
"""

from __future__ import annotations


class TabsynthError(ValueError):
    """Base class of every error tabsynth raises for a user's mistake."""


class MetadataError(TabsynthError):
    """Metadata is invalid or does not match the table it is used with."""


class DataError(TabsynthError):
    """The input table cannot be used as given (empty, duplicate names, inf values, ...)."""


class InputFileError(DataError):
    """A file that should hold a table is missing, unreadable or not a table."""


class ConfigError(TabsynthError):
    """A hyperparameter or option has an invalid value."""


class NotFittedError(TabsynthError, AttributeError):
    """A method that needs a fitted model was called before ``fit``."""


class InvalidConditionError(TabsynthError):
    """A sampling condition names an unknown column or a value the model cannot produce."""


class ModelFileError(TabsynthError):
    """A saved model file is missing, corrupt, from an incompatible version, or unsafe."""


class PrivacyError(TabsynthError):
    """A differential-privacy setting or budget problem."""


class PrivacyConfigError(PrivacyError, ConfigError):
    """DP settings that cannot give the promised guarantee (e.g. pac > 1, delta >= 1/n)."""


class PrivacyBudgetExceeded(PrivacyError):
    """The requested spend does not fit in the remaining privacy budget."""


class TabsynthWarning(UserWarning):
    """Base class of tabsynth's warnings."""


class DataWarning(TabsynthWarning):
    """The input table has something unusual that tabsynth handled (all-missing column, ...)."""


class SamplingWarning(TabsynthWarning):
    """Sampling returned fewer rows than asked (e.g. a rare condition)."""


__all__ = [
    "TabsynthError",
    "MetadataError",
    "DataError",
    "InputFileError",
    "ConfigError",
    "NotFittedError",
    "InvalidConditionError",
    "ModelFileError",
    "PrivacyError",
    "PrivacyConfigError",
    "PrivacyBudgetExceeded",
    "TabsynthWarning",
    "DataWarning",
    "SamplingWarning",
]


class PrivacyWarning(TabsynthWarning):
    """Something a DP fit assumed or changed that the user should know (and can declare instead)."""
