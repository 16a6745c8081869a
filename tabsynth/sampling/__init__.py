"""Sampling machinery: conditional vectors, training-by-sampling, streaming output."""

from tabsynth.sampling.conditional import ConditionSampler
from tabsynth.sampling.writer import TableWriter

__all__ = ["ConditionSampler", "TableWriter"]
