"""Data: the embedded captioned scenes and real formats on disk."""

from .files import CaptionedImages, ImageFolder, TarShards, decode_image
from .scenes import COLOURS, RELATIONS, SHAPES, SceneConfig, SyntheticScenes

__all__ = [
    "COLOURS",
    "RELATIONS",
    "SHAPES",
    "CaptionedImages",
    "ImageFolder",
    "SceneConfig",
    "SyntheticScenes",
    "TarShards",
    "decode_image",
]
