"""Losses between predicted and target tokens."""

from . import regression  # noqa: F401  (registers)
from .regression import RegressionLoss, RegressionLossConfig

__all__ = ["RegressionLoss", "RegressionLossConfig"]
