"""Target updaters: EMA, frozen teacher, stop-gradient copy."""

from . import copy, ema, frozen  # noqa: F401  (registers)
from .base import TargetUpdater

__all__ = ["TargetUpdater"]
