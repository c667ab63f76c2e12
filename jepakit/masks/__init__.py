"""Maskers: which patches the context encoder sees and which the predictor predicts."""

from . import block, inverse_block, multiblock, multiblock3d, none, random_mask, tube  # noqa: F401  (registers)
from .base import Masker, MaskerConfig, Masks, VideoMaskerConfig

__all__ = ["Masker", "MaskerConfig", "Masks", "VideoMaskerConfig"]
