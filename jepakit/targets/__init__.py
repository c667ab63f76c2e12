"""Target updaters: EMA, frozen teacher, stop-gradient copy, the image's own pixels."""

from . import copy, ema, frozen, pixels  # noqa: F401  (registers)
from .base import TargetUpdater

__all__ = ["TargetUpdater"]
