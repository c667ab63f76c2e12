"""Losses: regression between predicted and target tokens; contrastive between image and text embeddings."""

from . import contrastive, regression  # noqa: F401  (registers)
from .contrastive import ContrastiveLoss, ContrastiveLossConfig
from .regression import RegressionLoss, RegressionLossConfig

__all__ = ["ContrastiveLoss", "ContrastiveLossConfig", "RegressionLoss", "RegressionLossConfig"]
