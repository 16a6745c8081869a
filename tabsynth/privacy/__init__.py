"""Differential privacy: the only code that reads private rows in DP mode."""

from tabsynth.privacy.spent import PrivacyPart, PrivacySpent

__all__ = ["PrivacyPart", "PrivacySpent"]
