"""Encoders: a DataFrame to a float32 matrix with a span layout, and back without loss."""

from tabsynth.transform.base import CONTINUOUS, DISCRETE, Span
from tabsynth.transform.categorical import CategoricalEncoder
from tabsynth.transform.datetime import DatetimeEncoder
from tabsynth.transform.identifier import IdEncoder
from tabsynth.transform.numerical import NumericEncoder
from tabsynth.transform.pii import PiiEncoder
from tabsynth.transform.table import TableTransformer

__all__ = ["CONTINUOUS", "DISCRETE", "Span", "CategoricalEncoder", "DatetimeEncoder", "IdEncoder",
           "NumericEncoder", "PiiEncoder", "TableTransformer"]
