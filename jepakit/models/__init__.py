"""Assembled models."""

from . import jepa  # noqa: F401  (registers)
from .jepa import JEPA, JEPAConfig

__all__ = ["JEPA", "JEPAConfig"]
