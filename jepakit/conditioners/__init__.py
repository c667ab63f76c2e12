"""Conditioners: act on every predictor layer through its hook (text conditioning)."""

from . import holistic, none, xattn  # noqa: F401  (registers)
from .base import Conditioner, PredictorHook

__all__ = ["Conditioner", "PredictorHook"]
