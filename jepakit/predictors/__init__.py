"""Predictors: from context tokens and target positions to predicted target tokens."""

from . import vit_predictor  # noqa: F401  (registers)
from .vit_predictor import ViTPredictor, ViTPredictorConfig

__all__ = ["ViTPredictor", "ViTPredictorConfig"]
