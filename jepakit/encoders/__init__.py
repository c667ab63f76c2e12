"""Encoders: images (and patch-index masks) to patch tokens."""

from . import vit  # noqa: F401  (registers)
from .vit import VIT_PRESETS, ViTConfig, ViTEncoder

__all__ = ["VIT_PRESETS", "ViTConfig", "ViTEncoder"]
