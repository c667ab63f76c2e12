"""Losses: regression between predicted and target tokens; contrastive between image and text embeddings;
regularisers of a batch of embeddings against collapse."""

from . import contrastive, embedding, regression  # noqa: F401  (registers)
from .contrastive import ContrastiveLoss, ContrastiveLossConfig
from .embedding import EmbeddingLoss, EmbeddingLossConfig
from .regression import RegressionLoss, RegressionLossConfig

__all__ = [
    "ContrastiveLoss",
    "ContrastiveLossConfig",
    "EmbeddingLoss",
    "EmbeddingLossConfig",
    "RegressionLoss",
    "RegressionLossConfig",
]
